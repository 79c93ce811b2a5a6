"""Knobs: directions in the prior's latent space, unsupervised (GANSpace) and named.

A knob moves *every* latent step of the stream by ``value * sigma * vector``, so
all directions here are found and checked for that use: a shift shared by a
whole latent sequence.

PCA directions (GANSpace, Harkonen et al. 2020)
    Sample >= 1e5 latents; hold each for a few steps (so the latent-rate layers
    see it as their whole context) and record the generator's latent-rate
    features (``Generator.first_layer``). PCA of those features gives the main
    axes of variation; regressing the latents on the top components' coordinates
    maps each axis back to a latent direction ``u_i``. ``vector = u_i / |u_i|``,
    ``sigma = std(coordinate_i) * |u_i|`` (the latent distance that moves the
    component by one standard deviation).

Named directions
    Measure properties of generated mel (``PROPERTIES``: loudness, brightness,
    register, activity) on sequences of independent latents and regress each on
    the sum of the sequence's latents. For Gaussian latents the regression
    slope is the expected derivative of the property along a shared shift
    (Stein's lemma), i.e. exactly the knob's average effect.
    ``sigma = 1`` (the latents are N(0, I), so one standard deviation along any
    unit vector). Each is verified: from ``n`` random starting sequences, moving
    ``+2 sigma`` must raise its property in at least 90 % of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.prior.latents import hold_phrase

# (batch, latent, steps) -> (batch, n_mels, steps * latent_frames) normalised mel
SampleFn = Callable[[np.ndarray], np.ndarray]

VERIFY_SHIFT_SIGMAS = 2.0
VERIFY_RATE_REQUIRED = 0.9


# --------------------------------------------------------------------------- properties
def _mel_centres_hz(spec: MelSpec) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(n_mels=spec.n_mels + 2, fmin=spec.fmin, fmax=spec.fmax, htk=False)[1:-1]


def loudness_db(log_mel: np.ndarray, spec: MelSpec) -> np.ndarray:
    """``(n, n_mels, T) -> (n,)``: mean over frames of the frame's mel energy in dB."""
    energy = np.sum(np.power(10.0, 2.0 * log_mel.astype(np.float64)), axis=1)
    return np.mean(10.0 * np.log10(np.maximum(energy, 1e-20)), axis=1)


def brightness_hz(log_mel: np.ndarray, spec: MelSpec) -> np.ndarray:
    """``(n, n_mels, T) -> (n,)``: spectral centroid (Hz) of the window's summed mel magnitude."""
    mag = np.power(10.0, log_mel.astype(np.float64)).sum(axis=2)
    return (mag @ _mel_centres_hz(spec)) / np.maximum(mag.sum(axis=1), 1e-20)


def register_octaves(log_mel: np.ndarray, spec: MelSpec, prominence: float = 1.0) -> np.ndarray:
    """``(n, n_mels, T) -> (n,)``: pitch height, log2 Hz of the lowest prominent spectral peak.

    Per frame, the lowest mel bin that is a local maximum within ``prominence``
    (log10 units: 20 dB) of the frame's maximum: for harmonic sounds the
    fundamental or a low partial. Averaged over frames weighted by frame energy.
    """
    x = log_mel.astype(np.float64)
    peak = np.zeros_like(x, dtype=bool)
    peak[:, 1:-1] = (x[:, 1:-1] >= x[:, :-2]) & (x[:, 1:-1] >= x[:, 2:])
    strong = peak & (x >= x.max(axis=1, keepdims=True) - prominence)
    first = np.argmax(strong, axis=1)                     # (n, T): lowest qualifying bin
    first = np.where(strong.any(axis=1), first, np.argmax(x, axis=1))
    octaves = np.log2(np.maximum(_mel_centres_hz(spec)[first], 1.0))
    weight = np.power(10.0, 2.0 * x).sum(axis=1)
    return (octaves * weight).sum(axis=1) / np.maximum(weight.sum(axis=1), 1e-20)


def activity(log_mel: np.ndarray, spec: MelSpec) -> np.ndarray:
    """``(n, n_mels, T) -> (n,)``: onset density, mean positive spectral flux (log10 units per frame)."""
    flux = np.maximum(np.diff(log_mel.astype(np.float64), axis=2), 0.0).mean(axis=1)
    return flux.mean(axis=1)


PROPERTIES: dict[str, Callable[[np.ndarray, MelSpec], np.ndarray]] = {
    "loudness": loudness_db,
    "brightness": brightness_hz,
    "register": register_octaves,
    "activity": activity,
}


# --------------------------------------------------------------------------- sampling protocol
@dataclass(frozen=True)
class Protocol:
    """How a starting point is drawn and measured: ``warmup_steps`` of context, then ``measure_steps``."""

    latent_size: int
    latent_frames: int
    warmup_steps: int = 4
    measure_steps: int = 4
    batch: int = 64
    phrase_size: int = 0     # the prior's held phrase inputs (``training.prior.latents``)

    @property
    def steps(self) -> int:
        return self.warmup_steps + self.measure_steps

    def measure(self, sample: SampleFn, z: np.ndarray, spec: MelSpec,
                names: tuple[str, ...] = tuple(PROPERTIES)) -> dict[str, np.ndarray]:
        """Properties of the measured frames of ``z (n, latent, steps)``: ``{name: (n,)}``."""
        out: dict[str, list[np.ndarray]] = {k: [] for k in names}
        start = self.warmup_steps * self.latent_frames
        for i in range(0, z.shape[0], self.batch):
            mel = np.asarray(sample(z[i:i + self.batch].astype(np.float32)), dtype=np.float32)
            log_mel = spec.denormalize(mel[:, :, start:])
            for k in names:
                out[k].append(PROPERTIES[k](log_mel, spec))
        return {k: np.concatenate(v) for k, v in out.items()}

    def latents(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return hold_phrase(rng.standard_normal((n, self.latent_size, self.steps)).astype(np.float32),
                           self.phrase_size)


# --------------------------------------------------------------------------- named directions
@dataclass
class NamedDirection:
    name: str
    vector: np.ndarray          # unit, (latent_size,)
    sigma: float
    r2: float                   # of the regression it came from
    verify_rate: float = float("nan")
    mean_change: float = float("nan")   # property change at +2 sigma, mean over starting points
    cross: dict[str, float] = field(default_factory=dict)  # standardised change of every property

    @property
    def verified(self) -> bool:
        return self.verify_rate >= VERIFY_RATE_REQUIRED

    def to_bundle(self) -> dict:
        return {"name": self.name, "kind": "named", "vector": [float(v) for v in self.vector],
                "sigma": float(self.sigma)}


def regress_directions(z: np.ndarray, properties: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, float]]:
    """``{name: (unit vector, R^2)}``: least squares of each property on the sequence's summed latent."""
    u = z.sum(axis=2) / np.sqrt(z.shape[2])               # (n, latent): N(0, I) again
    design = np.concatenate([u, np.ones((u.shape[0], 1))], axis=1)
    out = {}
    for name, p in properties.items():
        coef, *_ = np.linalg.lstsq(design, p, rcond=None)
        beta = coef[:-1]
        norm = float(np.linalg.norm(beta))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError(f"property {name!r} does not vary with the latent (zero regression slope)")
        resid = p - design @ coef
        r2 = 1.0 - float(resid.var() / p.var()) if p.var() > 0 else 0.0
        out[name] = (beta / norm, r2)
    return out


def verify_directions(sample: SampleFn, protocol: Protocol, directions: list[NamedDirection], spec: MelSpec,
                      n: int = 1000, rng: np.random.Generator | None = None,
                      shift_sigmas: float = VERIFY_SHIFT_SIGMAS) -> None:
    """Fill ``verify_rate``, ``mean_change`` and ``cross`` of each direction (in place).

    ``verify_rate``: fraction of ``n`` random starting sequences whose property
    rises when every step moves by ``+shift_sigmas * sigma`` along the direction.
    """
    rng = rng or np.random.default_rng(1)
    z0 = protocol.latents(n, rng)
    base = protocol.measure(sample, z0, spec)
    scale = {k: float(np.std(v)) or 1.0 for k, v in base.items()}
    for d in directions:
        shift = (shift_sigmas * d.sigma * d.vector).astype(np.float32)[None, :, None]
        moved = protocol.measure(sample, z0 + shift, spec)
        delta = moved[d.name] - base[d.name]
        d.verify_rate = float(np.mean(delta > 0))
        d.mean_change = float(np.mean(delta))
        d.cross = {k: float(np.mean(moved[k] - base[k]) / scale[k]) for k in base}


def named_directions(sample: SampleFn, protocol: Protocol, spec: MelSpec, n_regress: int = 4000,
                     n_verify: int = 1000, seed: int = 0,
                     refine: Callable[[str, np.ndarray], np.ndarray] | None = None) -> list[NamedDirection]:
    """Regress, optionally ``refine(name, vector) -> vector`` (``training.prior.direction_fit``),
    then verify one direction per entry of ``PROPERTIES`` on starting points of their own."""
    rng = np.random.default_rng(seed)
    z = protocol.latents(n_regress, rng)
    found = regress_directions(z, protocol.measure(sample, z, spec))
    directions = [NamedDirection(name, vec, 1.0, r2) for name, (vec, r2) in found.items()]
    if refine is not None:
        for d in directions:
            d.vector = np.asarray(refine(d.name, d.vector), dtype=np.float32)
    verify_directions(sample, protocol, directions, spec, n=n_verify, rng=np.random.default_rng(seed + 1))
    return directions


# --------------------------------------------------------------------------- PCA (GANSpace)
@dataclass
class PCADirection:
    name: str
    vector: np.ndarray
    sigma: float
    explained: float            # share of the feature variance of this component

    def to_bundle(self) -> dict:
        return {"name": self.name, "kind": "pca", "vector": [float(v) for v in self.vector],
                "sigma": float(self.sigma)}


def pca_directions(features: Callable[[np.ndarray], np.ndarray], latent_size: int, count: int = 12,
                   n_latents: int = 100_000, seed: int = 0, batch: int = 4096) -> list[PCADirection]:
    """GANSpace: PCA of ``features(z (n, latent)) -> (n, channels)``, mapped back to latent space by regression."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_latents, latent_size)).astype(np.float32)
    y = np.concatenate([np.asarray(features(z[i:i + batch]), dtype=np.float64) for i in range(0, n_latents, batch)])
    y -= y.mean(axis=0)
    cov = y.T @ y / (n_latents - 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:count]
    comps = vecs[:, order]
    coords = y @ comps                                   # (n, count)
    design = np.concatenate([coords, np.ones((n_latents, 1))], axis=1)
    u, *_ = np.linalg.lstsq(design, z.astype(np.float64), rcond=None)   # z ~ coords @ u
    total = float(vals.sum())
    out = []
    for i in range(count):
        ui = u[i]
        norm = float(np.linalg.norm(ui))
        if norm == 0.0:
            continue
        out.append(PCADirection(f"pc{i + 1}", (ui / norm).astype(np.float32),
                                float(coords[:, i].std() * norm), float(vals[order[i]] / total)))
    return out


# --------------------------------------------------------------------------- torch glue
def generator_features_fn(generator, hold_steps: int = 8, device: str = "cpu"):
    """``z (n, latent) -> (n, channels[0])``: latent-rate features of ``z`` held for ``hold_steps`` steps."""
    import torch

    def features(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            zt = torch.from_numpy(z).to(device)[:, :, None].expand(-1, -1, hold_steps).contiguous()
            return generator.first_layer(zt)[:, :, -1].float().cpu().numpy()

    return features


def format_directions(named: list[NamedDirection], pca: list[PCADirection] | None = None) -> str:
    """A table of the named directions' verification (and the PCA directions' sigma)."""
    names = list(PROPERTIES)
    lines = [f"named directions: +{VERIFY_SHIFT_SIGMAS:g} sigma must raise the property in "
             f">= {VERIFY_RATE_REQUIRED:.0%} of starting points",
             f"  {'direction':<11} {'rate':>6} {'R2':>5} {'mean change':>12}   standardised change of "
             + " ".join(f"{n:>10}" for n in names)]
    for d in named:
        lines.append(f"  {d.name:<11} {d.verify_rate:6.1%} {d.r2:5.2f} {d.mean_change:12.4g} "
                     f"{'ok ' if d.verified else 'LOW'}                      "
                     + " ".join(f"{d.cross.get(n, float('nan')):10.2f}" for n in names))
    if pca:
        lines.append("PCA directions (GANSpace): " + ", ".join(
            f"{d.name} sigma {d.sigma:.2f} ({d.explained:.0%})" for d in pca))
    return "\n".join(lines)
