"""How close the prior's mel sequences are to the corpus: FD-mel, baselines, NDB, plots.

numpy only at module level (``melsynth eval prior`` runs without torch).

FD-mel
    Each window of ``window_frames`` log10-mel frames becomes one feature vector:
    per band, the window's mean and standard deviation, and the mean and
    standard deviation of its frame-to-frame difference (4 x 256 = 1024 numbers:
    spectral envelope, dynamics, and motion). The Frechet distance between the
    Gaussians fitted to two sets of such vectors is FD-mel. Every set is compared
    with the same reference, windows of the *test* split:

    ============  =========================================================
    floor         train-split windows (real against real: works differ)
    model         generated windows
    gaussian      frames drawn i.i.d. from N(per-band mean, covariance) of train frames
    shuffled      train frames drawn at random, i.e. real frames with time order destroyed
    ============  =========================================================

    ``fd_ratio = model / floor``. All sets have the same number of windows, so
    the finite-sample bias is the same in every figure.

NDB (Richardson & Weiss 2018)
    k-means (k = 50) on ``10 * n_windows`` train frames; each bin's share of
    ``n_windows`` frames (one per window, so nearly independent) is compared
    with its share of those train frames by a two-proportion z-test at
    alpha = 0.05. The model should match its training distribution, so it is
    compared with train bins; two floors: other train frames (sampling noise
    alone, ``ndb_floor_train``) and test-split frames (other works,
    ``ndb_floor``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from melsynth.engine.argtypes import int_range, seed
from melsynth.engine.dsp.features import MelSpec

# (batch, latent, steps) -> (batch, n_mels, steps * latent_frames) normalised mel
SampleFn = Callable[[np.ndarray], np.ndarray]

DEFAULT_WINDOWS = 2000
DEFAULT_WINDOW_FRAMES = 128
NDB_BINS = 50
EVAL_WARMUP_STEPS = 4


# --------------------------------------------------------------------------- FD-mel
def window_features(windows: np.ndarray) -> np.ndarray:
    """``(n, n_mels, frames)`` log10 mel -> ``(n, 4 * n_mels)``: mean, std, diff mean, diff std per band."""
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 3 or w.shape[2] < 2:
        raise ValueError(f"windows must be (n, n_mels, frames >= 2), got shape {w.shape}")
    d = np.diff(w, axis=2)
    return np.concatenate([w.mean(2), w.std(2), d.mean(2), d.std(2)], axis=1)


@dataclass(frozen=True)
class GaussianStats:
    mean: np.ndarray
    cov: np.ndarray
    n: int

    @classmethod
    def of(cls, features: np.ndarray) -> "GaussianStats":
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"need (n >= 2, dims) features, got shape {f.shape}")
        return cls(f.mean(0), np.cov(f, rowvar=False), f.shape[0])


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


@contextlib.contextmanager
def one_blas_thread():
    """numpy's BLAS/LAPACK on one thread: on a shared 2-core machine a threaded
    1024 x 1024 eigendecomposition is 10-40x slower than a single-threaded one."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with librosa's scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def frechet_distance(a: GaussianStats | np.ndarray, b: GaussianStats | np.ndarray,
                     root_a: np.ndarray | None = None) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of two feature sets (or their stats).

    The trace of the matrix square root is computed as the sum of the square roots of
    the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)`` (symmetric, PSD): stable without scipy.
    ``root_a`` (``S_a^(1/2)``) may be passed to score many sets against one reference.
    """
    a = a if isinstance(a, GaussianStats) else GaussianStats.of(a)
    b = b if isinstance(b, GaussianStats) else GaussianStats.of(b)
    with one_blas_thread():
        root_a = _sqrt_psd(a.cov) if root_a is None else root_a
        middle = root_a @ b.cov @ root_a
        tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = a.mean - b.mean
    return float(max(0.0, diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * tr_sqrt))


# --------------------------------------------------------------------------- baselines
def gaussian_frame_windows(frames: np.ndarray, n: int, window_frames: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, n_mels, window_frames)``: i.i.d. frames from N(mean, cov) of ``frames (count, n_mels)``."""
    frames = np.asarray(frames, dtype=np.float64)
    mean = frames.mean(0)
    cov = np.cov(frames, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    factor = vecs * np.sqrt(np.clip(vals, 0, None))
    noise = rng.standard_normal((n * window_frames, mean.size))
    out = mean + noise @ factor.T
    return out.reshape(n, window_frames, mean.size).transpose(0, 2, 1).astype(np.float32)


def shuffled_frame_windows(real, n: int, window_frames: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, n_mels, window_frames)``: real frames drawn at random over the split (time order destroyed)."""
    frames = real.sample_frames(n * window_frames, rng)
    return frames.reshape(n, window_frames, -1).transpose(0, 2, 1).copy()


# --------------------------------------------------------------------------- NDB
def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 30) -> np.ndarray:
    """``(n, d) -> (k, d)`` centres: k-means++ seeding, then Lloyd iterations."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} points, got {x.shape[0]}")
    sq = (x * x).sum(1)
    centres = [x[rng.integers(x.shape[0])]]
    dist = np.maximum(sq - 2 * x @ centres[0] + centres[0] @ centres[0], 0)
    for _ in range(1, k):
        p = dist / dist.sum() if dist.sum() > 0 else np.full(x.shape[0], 1.0 / x.shape[0])
        c = x[rng.choice(x.shape[0], p=p)]
        centres.append(c)
        dist = np.minimum(dist, np.maximum(sq - 2 * x @ c + c @ c, 0))
    c = np.stack(centres)
    for _ in range(iterations):
        labels = np.argmin(sq[:, None] - 2 * x @ c.T + (c * c).sum(1)[None], axis=1)
        onehot = np.zeros((x.shape[0], k))
        onehot[np.arange(x.shape[0]), labels] = 1.0
        counts = onehot.sum(0)
        sums = onehot.T @ x
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)  # empty bin: keep centre
        if np.allclose(new, c):
            break
        c = new
    return c


def assign_bins(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    d = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None]
    return np.argmin(d, axis=1)


def ndb_test(reference_bins: np.ndarray, sample_bins: np.ndarray, k: int, z_crit: float = 1.959964
             ) -> tuple[int, np.ndarray]:
    """Number of bins whose share differs significantly (two-proportion z-test), and the z scores."""
    n1, n2 = len(reference_bins), len(sample_bins)
    p1 = np.bincount(reference_bins, minlength=k) / n1
    p2 = np.bincount(sample_bins, minlength=k) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n1 + 1 / n2), 1e-30))
    z = (p2 - p1) / se
    return int(np.sum(np.abs(z) > z_crit)), z


def one_frame_per_window(windows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(n, n_mels, frames) -> (n, n_mels)``: a random frame of each window."""
    idx = rng.integers(0, windows.shape[2], size=windows.shape[0])
    return windows[np.arange(windows.shape[0]), :, idx]


# --------------------------------------------------------------------------- generation
def generate_windows(sample: SampleFn, latent_size: int, latent_frames: int, n: int, window_frames: int,
                     rng: np.random.Generator, spec: MelSpec | None = None, batch: int = 16,
                     windows_per_sequence: int = 8, warmup_steps: int = EVAL_WARMUP_STEPS) -> np.ndarray:
    """``(n, n_mels, window_frames)`` log10 mel windows of the prior, after ``warmup_steps`` of context.

    Each sequence of independent N(0, I) latents yields ``windows_per_sequence``
    consecutive windows, starting at a random frame offset after the warm-up
    (so windows are not aligned to latent steps).
    """
    spec = spec or MelSpec()
    need = warmup_steps * latent_frames + latent_frames + windows_per_sequence * window_frames
    steps = -(-need // latent_frames)
    out = []
    while sum(len(o) for o in out) < n:
        z = rng.standard_normal((batch, latent_size, steps)).astype(np.float32)
        mel = np.asarray(sample(z), dtype=np.float32)
        if mel.shape != (batch, spec.n_mels, steps * latent_frames):
            raise ValueError(f"the prior returned shape {mel.shape}, expected "
                             f"{(batch, spec.n_mels, steps * latent_frames)}")
        for b in range(batch):
            start = warmup_steps * latent_frames + int(rng.integers(0, latent_frames))
            seq = mel[b, :, start:start + windows_per_sequence * window_frames]
            out.append(seq.reshape(spec.n_mels, windows_per_sequence, window_frames).transpose(1, 0, 2))
    return spec.denormalize(np.concatenate(out)[:n]).astype(np.float32)


# --------------------------------------------------------------------------- the reference
class PriorReference:
    """Everything about the corpus that scoring a prior needs, computed once.

    Real windows of the train and test splits, the floor and baseline FDs and
    the NDB bins. ``score(windows)`` then costs only the model's features.
    """

    def __init__(self, corpus_dir: str | Path, n_windows: int = DEFAULT_WINDOWS,
                 window_frames: int = DEFAULT_WINDOW_FRAMES, seed: int = 0, spec: MelSpec | None = None,
                 cluster_frames: int | None = None, reference_split: str = "test"):
        from melsynth.training.prior.data import load_split

        self.spec = spec or MelSpec()
        self.n_windows = n_windows
        self.window_frames = window_frames
        cluster_frames = cluster_frames or 10 * n_windows   # 20,000 train frames for 2,000 windows
        rng = np.random.default_rng(seed)
        train = load_split(corpus_dir, "train", self.spec, min_frames=window_frames)
        reference = load_split(corpus_dir, reference_split, self.spec, min_frames=window_frames)
        self.train_hours, self.reference_hours = train.hours, reference.hours
        self.reference_split = reference_split
        train_windows = train.sample_windows(n_windows, window_frames, rng)
        ref_windows = reference.sample_windows(n_windows, window_frames, rng)
        self.real_examples = ref_windows[:8]
        self.reference_stats = GaussianStats.of(window_features(ref_windows))
        with one_blas_thread():
            self.reference_root = _sqrt_psd(self.reference_stats.cov)
        train_frames = train.sample_frames(cluster_frames, rng)
        self.fd = {
            "floor": self.fd_to_reference(train_windows),
            "gaussian": self.fd_to_reference(gaussian_frame_windows(train_frames, n_windows, window_frames, rng)),
            "shuffled": self.fd_to_reference(shuffled_frame_windows(train, n_windows, window_frames, rng)),
        }
        with one_blas_thread():
            self.centres = kmeans(train_frames, NDB_BINS, rng)
            self.train_bins = assign_bins(train_frames, self.centres)
            # Two floors: other train frames (sampling noise alone) and test-split frames (other works).
            self.ndb_floor_train, _ = ndb_test(self.train_bins, assign_bins(
                one_frame_per_window(train_windows, rng), self.centres), NDB_BINS)
            self.ndb_floor, _ = ndb_test(self.train_bins, assign_bins(one_frame_per_window(ref_windows, rng),
                                                                      self.centres), NDB_BINS)
        self._seed = seed

    # A run keeps its reference for its whole life (the corpus may grow meanwhile), so that
    # every point of its learning curve is measured against the same real windows.
    def save(self, path: str | Path) -> Path:
        """Write everything ``score`` needs to one ``.npz`` (atomically)."""
        from melsynth.engine.atomic import atomic_write

        arrays = {
            "meta": np.frombuffer(json.dumps({
                "spec": self.spec.to_dict(), "n_windows": self.n_windows, "window_frames": self.window_frames,
                "train_hours": self.train_hours, "reference_hours": self.reference_hours,
                "reference_split": self.reference_split, "fd": self.fd, "ndb_floor": int(self.ndb_floor),
                "ndb_floor_train": int(self.ndb_floor_train), "seed": self._seed,
                "n": self.reference_stats.n}).encode(), dtype=np.uint8),
            "real_examples": self.real_examples, "mean": self.reference_stats.mean, "cov": self.reference_stats.cov,
            "root": self.reference_root, "centres": self.centres, "train_bins": self.train_bins,
        }
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | Path) -> "PriorReference":
        """A reference written by ``save``."""
        self = cls.__new__(cls)
        with np.load(path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            self.spec = MelSpec.from_dict(meta["spec"])
            self.n_windows, self.window_frames = int(meta["n_windows"]), int(meta["window_frames"])
            self.train_hours, self.reference_hours = float(meta["train_hours"]), float(meta["reference_hours"])
            self.reference_split, self.fd, self._seed = meta["reference_split"], dict(meta["fd"]), int(meta["seed"])
            self.ndb_floor, self.ndb_floor_train = int(meta["ndb_floor"]), int(meta["ndb_floor_train"])
            self.real_examples = z["real_examples"]
            self.reference_stats = GaussianStats(z["mean"], z["cov"], int(meta["n"]))
            self.reference_root = z["root"]
            self.centres, self.train_bins = z["centres"], z["train_bins"]
        return self

    def fd_to_reference(self, windows: np.ndarray) -> float:
        """FD-mel of ``(n, n_mels, window_frames)`` log10-mel windows against the reference split."""
        return frechet_distance(self.reference_stats, GaussianStats.of(window_features(windows)),
                                root_a=self.reference_root)

    def score(self, windows: np.ndarray) -> dict[str, float]:
        """Metrics of ``(n, n_mels, window_frames)`` log10-mel windows (a model's)."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.shape[1:] != (self.spec.n_mels, self.window_frames):
            raise ValueError(f"windows must be (n, {self.spec.n_mels}, {self.window_frames}), got {windows.shape}")
        fd_model = self.fd_to_reference(windows)
        with one_blas_thread():
            bins = assign_bins(one_frame_per_window(windows, np.random.default_rng(self._seed + 17)), self.centres)
        ndb, _ = ndb_test(self.train_bins, bins, NDB_BINS)
        floor = self.fd["floor"]
        return {
            "fd_mel": fd_model,
            "fd_floor": floor,
            "fd_ratio": fd_model / floor if floor > 0 else math.inf,
            "fd_gaussian": self.fd["gaussian"],
            "fd_shuffled": self.fd["shuffled"],
            "fd_ratio_gaussian": self.fd["gaussian"] / floor if floor > 0 else math.inf,
            "fd_ratio_shuffled": self.fd["shuffled"] / floor if floor > 0 else math.inf,
            "ndb": float(ndb),
            "ndb_floor": float(self.ndb_floor),
            "ndb_floor_train": float(self.ndb_floor_train),
            "ndb_bins": float(NDB_BINS),
            "windows": float(len(windows)),
        }


# --------------------------------------------------------------------------- plots
def mel_grid_image(generated: np.ndarray, real: np.ndarray, spec: MelSpec | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8: generated windows on the top row, real ones below (log10 mel, same colour scale)."""
    spec = spec or MelSpec()
    n = min(len(generated), len(real))
    rows = [np.concatenate(list(generated[:n]), axis=1), np.concatenate(list(real[:n]), axis=1)]
    gap = np.full((4, rows[0].shape[1]), spec.norm_high)
    img = np.concatenate([rows[0], gap, rows[1]], axis=0)[::-1]  # low bins at the bottom
    t = np.clip((img - spec.norm_low) / (spec.norm_high - spec.norm_low), 0, 1)
    # A small perceptual colour ramp (dark blue -> orange -> yellow) without matplotlib.
    stops = np.array([[0, 0, 16], [60, 20, 120], [200, 60, 60], [250, 170, 40], [255, 250, 200]], float)
    pos = t * (len(stops) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = (pos - lo)[..., None]
    return (stops[lo] * (1 - frac) + stops[lo + 1] * frac).astype(np.uint8)


def save_plots(out_dir: str | Path, generated: np.ndarray, real: np.ndarray, metrics: dict[str, float],
               spec: MelSpec | None = None) -> list[Path]:
    """A PNG grid of generated windows beside real ones (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = spec or MelSpec()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = min(4, len(generated), len(real))
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 6.4), squeeze=False)
    for row, (label, data) in enumerate((("generated", generated), ("real (test split)", real))):
        for i in range(n):
            ax = axes[row][i]
            ax.imshow(data[i], origin="lower", aspect="auto", vmin=spec.norm_low, vmax=spec.norm_high,
                      cmap="magma", extent=(0, data.shape[2] / spec.frame_rate, 0, spec.n_mels))
            ax.set_title(f"{label} {i + 1}", fontsize=9)
            ax.set_xlabel("s")
            if i == 0:
                ax.set_ylabel("mel bin")
    fig.suptitle(f"prior: fd_ratio {metrics.get('fd_ratio', float('nan')):.2f}, "
                 f"NDB {int(metrics.get('ndb', -1))}/{NDB_BINS}")
    fig.tight_layout()
    path = out_dir / "prior_windows.png"
    from melsynth.engine.atomic import atomic_write

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return [path]


# --------------------------------------------------------------------------- CLI
def prior_sample_fn(prior) -> SampleFn:
    """A batch sampler over an ``engine.prior.Prior`` (whose offline path takes one sequence)."""

    def sample(z: np.ndarray) -> np.ndarray:
        return np.stack([prior.offline(zb.T) for zb in z])

    return sample


def format_report(metrics: dict[str, float]) -> str:
    lines = [
        f"FD-mel (vs {int(metrics['windows'])} test-split windows)",
        f"  model      {metrics['fd_mel']:10.3f}   fd_ratio {metrics['fd_ratio']:.3f}",
        f"  floor      {metrics['fd_floor']:10.3f}   (train vs test, real)",
        f"  gaussian   {metrics['fd_gaussian']:10.3f}   ratio {metrics['fd_ratio_gaussian']:.3f}",
        f"  shuffled   {metrics['fd_shuffled']:10.3f}   ratio {metrics['fd_ratio_shuffled']:.3f}",
        f"NDB (k={int(metrics['ndb_bins'])}, vs train-frame bins): model {int(metrics['ndb'])} bins differ; "
        f"floors: other train frames {int(metrics['ndb_floor_train'])}, test-split frames {int(metrics['ndb_floor'])}",
        "beats baselines: " + ("yes" if metrics["fd_mel"] < min(metrics["fd_gaussian"], metrics["fd_shuffled"])
                               else "no"),
    ]
    return "\n".join(lines)


def _eval_prior(args: argparse.Namespace) -> int:
    from melsynth.engine.runtime.bundle import default_bundle_path, load_bundle
    from melsynth.engine.runtime.prior import load_prior

    bundle_path = Path(args.bundle) if args.bundle else default_bundle_path()
    bundle = load_bundle(bundle_path)
    if bundle.prior is None:
        from melsynth.engine.errors import MelsynthError

        raise MelsynthError(f"{bundle.json_path}: the bundle has no prior (export one with `melsynth export prior`)")
    prior = load_prior(bundle)
    t0 = time.monotonic()
    reference = PriorReference(args.corpus, n_windows=args.windows, window_frames=args.window_frames,
                               seed=args.seed, spec=bundle.mel)
    rng = np.random.default_rng(args.seed + 1)
    generated = generate_windows(prior_sample_fn(prior), prior.latent_size, prior.latent_frames, args.windows,
                                 args.window_frames, rng, spec=bundle.mel, batch=1)
    metrics = reference.score(generated)
    metrics["seconds"] = round(time.monotonic() - t0, 1)
    print(f"bundle {bundle.root}  corpus {args.corpus} (train {reference.train_hours:.2f} h, "
          f"{reference.reference_split} {reference.reference_hours:.2f} h)")
    print(format_report(metrics))
    if args.json:
        from melsynth.engine.atomic import atomic_write_json

        atomic_write_json(args.json, {"bundle": str(bundle.root), "corpus": str(args.corpus), **metrics})
    if args.plots:
        for p in save_plots(args.plots, generated[:8], reference.real_examples, metrics, bundle.mel):
            print(f"wrote {p}")
    return 0


def register_eval(group_sub) -> None:
    """Add ``melsynth eval prior``."""
    p = group_sub.add_parser("prior", help="FD-mel, baselines and NDB of a bundle's prior against a corpus",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bundle", default=None, help="model bundle folder; unset: $MELSYNTH_BUNDLE or models/default")
    p.add_argument("--corpus", required=True, help="built corpus folder (manifest.json + mel cache)")
    p.add_argument("--json", default=None, help="write the metrics to this JSON file")
    p.add_argument("--plots", default=None, help="write a PNG grid of generated vs real windows into this folder")
    p.add_argument("--windows", type=int_range(1, 10 ** 7), default=DEFAULT_WINDOWS, help="windows per set (>= 2000 for the record)")
    p.add_argument("--window-frames", type=int_range(1, 100_000), default=DEFAULT_WINDOW_FRAMES, help="frames per window")
    p.add_argument("--seed", type=seed(), default=0, help="seed of the window and latent draws")
    p.set_defaults(func=_eval_prior)
