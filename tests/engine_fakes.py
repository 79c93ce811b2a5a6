"""Small numpy models with the engine's Prior and Vocoder interfaces (test fixtures only).

They let the engine's tests run in milliseconds and exercise what real models
rarely do on demand (state, non-finite output). Tests that need real ONNX
sessions use the tiny bundles built by the model helpers' factories.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.runtime.bundle import SCHEMA_VERSION, Direction, load_bundle, write_bundle_json


class FakeVocoder:
    """Streaming additive synth: 8 partials whose amplitudes follow 8 mel bands; phase is the state."""

    kind = "fake"
    latency_samples = 0

    def __init__(self, spec: MelSpec, name: str = "fake", scale: float = 1.0, emit_nan_every: int = 0,
                 freq_scale: float = 1.0):
        self.name = name
        self.spec = spec
        self.scale = scale
        self.emit_nan_every = emit_nan_every
        self.bands = np.linspace(8, spec.n_mels - 8, 8).astype(int)
        self.freqs = np.linspace(110.0, 2200.0, 8) * freq_scale
        self.pushes = 0
        self.resets = 0
        self.reset()

    def reset(self) -> None:
        self.phase = np.zeros(8)
        self.resets += 1

    def push(self, log_mel: np.ndarray) -> np.ndarray:
        hop, sr = self.spec.hop_length, self.spec.sample_rate
        out = np.empty(log_mel.shape[1] * hop, dtype=np.float32)
        t = np.arange(hop)
        for i in range(log_mel.shape[1]):
            amp = self.scale * 0.05 * np.power(10.0, np.clip(log_mel[self.bands, i], -8, 3))
            ph = self.phase[:, None] + 2 * np.pi * self.freqs[:, None] * t[None, :] / sr
            out[i * hop:(i + 1) * hop] = (amp[:, None] * np.sin(ph)).sum(axis=0)
            self.phase = (self.phase + 2 * np.pi * self.freqs * hop / sr) % (2 * np.pi)
        self.pushes += 1
        if self.emit_nan_every and self.pushes % self.emit_nan_every == 0:
            out[::7] = np.nan
        return out

    def offline(self, log_mel: np.ndarray) -> np.ndarray:
        self.reset()
        out = self.push(log_mel)
        self.reset()
        return out

    def flush(self) -> np.ndarray:
        self.reset()
        return np.zeros(0, dtype=np.float32)


class FakePrior:
    """Causal toy prior: frames glide from the previous latent to this one; the previous latent is the state."""

    def __init__(self, spec: MelSpec, latent_size: int = 8, latent_frames: int = 4, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.spec = spec
        self.latent_size = latent_size
        self.latent_frames = latent_frames
        self.w = (rng.standard_normal((spec.n_mels, latent_size)) / np.sqrt(latent_size)).astype(np.float32)
        self.b = np.linspace(0.3, -0.9, spec.n_mels).astype(np.float32)
        dirs = []
        for i, name in enumerate(("loudness", "brightness")):
            v = np.zeros(latent_size, dtype=np.float32)
            v[i] = 1.0
            dirs.append(Direction(name, "named", v, 0.8 + 0.2 * i))
        self.directions = tuple(dirs)
        self.steps = 0
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(self.latent_size, dtype=np.float32)

    def get_state(self):
        return self._state.copy()

    def set_state(self, state) -> None:
        self._state = np.array(state, dtype=np.float32, copy=True)

    def step(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        w = (np.arange(1, self.latent_frames + 1, dtype=np.float32) / self.latent_frames)[None, :]
        lat = self._state[:, None] * (1 - w) + z[:, None] * w  # (latent, L)
        self._state = z.copy()
        self.steps += 1
        return np.tanh(self.w @ lat + self.b[:, None])

    def offline(self, z: np.ndarray) -> np.ndarray:
        self.reset()
        out = np.concatenate([self.step(zk) for zk in z], axis=1)
        self.reset()
        return out


def make_fake_bundle(root: Path, name: str = "fake-test") -> Path:
    """A bundle.json with only a classical vocoder (no ONNX files): the fakes stand in for its models."""
    spec = MelSpec()
    root.mkdir(parents=True, exist_ok=True)
    write_bundle_json(root, {
        "schema_version": SCHEMA_VERSION, "name": name, "mel": spec.to_dict(),
        "default_vocoder": "classical",
        "vocoders": {"classical": {"kind": "classical", "params": {}},
                     "other": {"kind": "classical", "params": {}}},
    })
    return root


def fake_loader(prior_kwargs: dict | None = None, vocoder_kwargs: dict | None = None):
    """A ``ModelLoader`` returning fresh fakes; the ``other`` vocoder is louder and pitched elsewhere."""
    def load(bundle, vocoder_name):
        spec = bundle.mel
        vk = dict(vocoder_kwargs or {})
        if vocoder_name == "other":
            vk.setdefault("scale", 3.0)
            vk.setdefault("freq_scale", 1.37)  # another model: other partials, no phase cancellation
        return FakePrior(spec, **(prior_kwargs or {})), FakeVocoder(spec, name=vocoder_name, **vk)
    return load


def fake_bundle(tmp_path: Path, name: str = "fake-test"):
    return load_bundle(make_fake_bundle(tmp_path / name, name))


def declick_fall(k, length):
    """What the device edge's fades should be (``engine.device.ringbuffer``), written out here:
    a raised-cosine fall, 1 at ``k`` = 0 and 0 from ``k`` = ``length`` on."""
    k = np.asarray(k, np.float64)
    return np.where(k < length, 0.5 + 0.5 * np.cos(np.pi * np.minimum(k, length) / length), 0.0)
