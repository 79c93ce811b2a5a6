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
    real_chunks   random real train chunks of ``chunk_frames`` (one latent step, 16
                  frames) end to end: cut-and-paste, the level a generator should reach
    ============  =========================================================

    ``fd_ratio = model / floor``. All sets have the same number of windows, so
    the finite-sample bias is the same in every figure.

    ``fd_<part>`` (and ``fd_<part>_floor``): FD-mel of each of the four blocks of
    features alone, model and floor (``FEATURE_GROUPS``). They say which part of a
    window a prior gets wrong: its average spectrum, its spread, or its motion.

NDB (Richardson & Weiss 2018)
    k-means (k = 50) on ``10 * n_windows`` train frames; each bin's share of
    ``n_windows`` frames (one per window, so nearly independent) is compared
    with its share of those train frames by a two-proportion z-test at
    alpha = 0.05. The model should match its training distribution, so it is
    compared with train bins; two floors: other train frames (sampling noise
    alone, ``ndb_floor_train``) and test-split frames (other works,
    ``ndb_floor``). The real-chunk baseline's NDB is ``ndb_real_chunks``.

Render statistics (``training.prior.render_stats``; audio from ``training.prior.render_eval``)
    onset rate, spectral flatness, spectral contrast and chroma movement of the
    model's renders (``melsynth render`` at the default walk, ``--seeds`` x
    ``--render-seconds`` after 4 latent steps of warm-up, ``render_eval.model_renders``), of real test-split clips resynthesised from their mel by
    the same vocoder (``test_*``), and of real-chunk cut-and-paste (``real_chunks_*``);
    ``*_ratio`` = that figure / the test split's.
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

from melsynth.engine.argtypes import finite_float, int_range, seed
from melsynth.engine.dsp.features import MelSpec
from melsynth.training.prior.latents import held_sample_fn

# (batch, latent, steps) -> (batch, n_mels, steps * latent_frames) normalised mel
SampleFn = Callable[[np.ndarray], np.ndarray]

DEFAULT_WINDOWS = 2000
DEFAULT_WINDOW_FRAMES = 128
DEFAULT_CHUNK_FRAMES = 16          # the prior's latent_frames: one latent step of real mel
CONTACT_SECONDS = 6.0              # contact sheet: 8 generated and 8 real windows of 6 s
CONTACT_WINDOWS = 8
REAL_CLIPS = 16                    # render stats: real test-split clips (and real-chunk clips) per reference
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


# window_features' four blocks, in order: which part of a window a prior gets wrong
FEATURE_GROUPS = ("band_mean", "band_std", "diff_mean", "diff_std")
FEATURE_GROUP_LABELS = {"band_mean": "band means", "band_std": "band spreads", "diff_mean": "motion means",
                        "diff_std": "motion spreads"}


def group_frechet_distances(a: GaussianStats, b: GaussianStats) -> dict[str, float]:
    """FD-mel of each block of ``window_features`` alone (``FEATURE_GROUPS``), from the full stats.

    The blocks do not add up to the whole: the whole also counts how they covary.
    """
    n = a.mean.shape[0] // len(FEATURE_GROUPS)
    out = {}
    for i, name in enumerate(FEATURE_GROUPS):
        s = slice(i * n, (i + 1) * n)
        out[name] = frechet_distance(GaussianStats(a.mean[s], a.cov[s, s], a.n), GaussianStats(b.mean[s], b.cov[s, s], b.n))
    return out


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


def real_chunk_windows(real, n: int, window_frames: int, chunk_frames: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``(n, n_mels, window_frames)``: cut-and-paste of real audio, the level a generator should reach.

    Each window is cropped from ``SplitMels.chunk_sequence`` at a random offset within its
    first chunk, so (like ``generate_windows``) seams do not sit at fixed frames.
    """
    n_chunks = -(-window_frames // chunk_frames) + 1
    out = []
    for _ in range(n):
        seq = real.chunk_sequence(n_chunks, chunk_frames, rng)
        start = int(rng.integers(0, chunk_frames))
        out.append(seq[:, start:start + window_frames])
    return np.stack(out)


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
                     windows_per_sequence: int = 1, warmup_steps: int = EVAL_WARMUP_STEPS) -> np.ndarray:
    """``(n, n_mels, window_frames)`` log10 mel windows of the prior, after ``warmup_steps`` of context.

    Each sequence of latents (from ``rng``, N(0, I)) yields ``windows_per_sequence``
    consecutive windows, starting at a random frame offset after the warm-up
    (so windows are not aligned to latent steps). One per sequence by default: the
    windows are then independent draws, as the test-split windows they are scored
    against are. Windows of one sequence share its phrase latent (``latents``): eight
    per sequence would score an eighth as many phrases as windows.
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


def walk_latents(latent_size: int, steps: int, seed: int, speed: float, spread: float,
                 phrase_size: int = 0) -> np.ndarray:
    """``(latent_size, steps)``: the engine's latents for a render of ``seed`` (``melsynth render --seed``).

    The latent point of ``seed`` wandering by the engine's seeded walk at ``speed`` and ``spread``,
    built by the engine's own ``RandomWalk`` and ``latent_point``, step for step as the app plays.
    """
    from melsynth.engine.offline.render import walk_controls
    from melsynth.engine.stream.controls import RandomWalk, latent_point

    controls = walk_controls(seed, speed, spread)
    walk = RandomWalk(latent_size, controls.walk_seed, phrase_size)
    return np.stack([latent_point(controls, (), latent_size, walk.advance(controls.safe_walk_speed).copy())
                     for _ in range(steps)], axis=1).astype(np.float32)


def walk_sample_fn(sample: SampleFn, speed: float, spread: float, first_seed: int = 1,
                   phrase_size: int = 0) -> SampleFn:
    """``sample`` fed the engine's walk instead of i.i.d. latents: sequence ``k`` of the calls plays
    seed ``first_seed + k`` (only the shape of the noise handed in is used)."""
    count = [0]

    def walked(z: np.ndarray) -> np.ndarray:
        b, latent_size, steps = z.shape
        seeds = range(first_seed + count[0], first_seed + count[0] + b)
        count[0] += b
        return sample(np.stack([walk_latents(latent_size, steps, s, speed, spread, phrase_size) for s in seeds]))

    return walked


# --------------------------------------------------------------------------- the reference
class PriorReference:
    """Everything about the corpus that scoring a prior needs, computed once.

    Real windows of the train and test splits, the floor and baseline FDs and
    the NDB bins. ``score(windows)`` then costs only the model's features.
    """

    def __init__(self, corpus_dir: str | Path, n_windows: int = DEFAULT_WINDOWS,
                 window_frames: int = DEFAULT_WINDOW_FRAMES, seed: int = 0, spec: MelSpec | None = None,
                 cluster_frames: int | None = None, reference_split: str = "test",
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES):
        from melsynth.training.prior.data import load_split

        self.spec = spec or MelSpec()
        self.n_windows = n_windows
        self.window_frames = window_frames
        self.chunk_frames = chunk_frames
        self.corpus_dir = str(corpus_dir)
        self.render_reference_figures: dict = {}
        cluster_frames = cluster_frames or 10 * n_windows   # 20,000 train frames for 2,000 windows
        rng = np.random.default_rng(seed)
        train = load_split(corpus_dir, "train", self.spec, min_frames=window_frames)
        reference = load_split(corpus_dir, reference_split, self.spec, min_frames=window_frames)
        self.train_hours, self.reference_hours = train.hours, reference.hours
        self.reference_split = reference_split
        self._splits = {"train": train, reference_split: reference}   # memory-mapped; not saved
        train_windows = train.sample_windows(n_windows, window_frames, rng)
        ref_windows = reference.sample_windows(n_windows, window_frames, rng)
        self.real_examples = ref_windows[:8]
        self.reference_stats = GaussianStats.of(window_features(ref_windows))
        with one_blas_thread():
            self.reference_root = _sqrt_psd(self.reference_stats.cov)
        train_frames = train.sample_frames(cluster_frames, rng)
        train_stats = GaussianStats.of(window_features(train_windows))
        self.fd_group_floor = group_frechet_distances(self.reference_stats, train_stats)
        self.fd = {
            "floor": self._fd_of(train_stats),
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
        # Drawn last, so the other figures equal those of references made before this baseline existed.
        chunk_windows = real_chunk_windows(train, n_windows, window_frames, chunk_frames, rng)
        self.fd["real_chunks"] = self.fd_to_reference(chunk_windows)
        with one_blas_thread():
            self.ndb_real_chunks, _ = ndb_test(self.train_bins, assign_bins(
                one_frame_per_window(chunk_windows, rng), self.centres), NDB_BINS)
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
                "reference_split": self.reference_split,
                "fd": {k: _finite_or_none(v) for k, v in self.fd.items()}, "ndb_floor": int(self.ndb_floor),
                "fd_group_floor": {k: _finite_or_none(v) for k, v in self.fd_group_floor.items()},
                "ndb_floor_train": int(self.ndb_floor_train), "seed": self._seed,
                "n": self.reference_stats.n, "chunk_frames": self.chunk_frames,
                "ndb_real_chunks": _finite_or_none(self.ndb_real_chunks), "corpus_dir": self.corpus_dir,
                "render_reference": self.render_reference_figures}).encode(), dtype=np.uint8),
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
            # references saved before the real-chunk baseline: its figures are NaN
            self.fd["real_chunks"] = _nan_if_none(self.fd.get("real_chunks"))
            self.ndb_real_chunks = _nan_if_none(meta.get("ndb_real_chunks"))
            floors = meta.get("fd_group_floor", {})
            self.fd_group_floor = {g: _nan_if_none(floors.get(g)) for g in FEATURE_GROUPS}
            self.chunk_frames = int(meta.get("chunk_frames", DEFAULT_CHUNK_FRAMES))
            self.corpus_dir = meta.get("corpus_dir")
            self.render_reference_figures = dict(meta.get("render_reference", {}))
            self._splits = {}
            self.real_examples = z["real_examples"]
            self.reference_stats = GaussianStats(z["mean"], z["cov"], int(meta["n"]))
            self.reference_root = z["root"]
            self.centres, self.train_bins = z["centres"], z["train_bins"]
        return self

    def split(self, name: str):
        """The ``SplitMels`` of ``name`` ("train" or the reference split), reloaded if this reference was loaded."""
        if name not in self._splits:
            from melsynth.training.prior.data import load_split

            if not self.corpus_dir:
                raise ValueError(f"this reference has no corpus folder to read split {name!r} from")
            self._splits[name] = load_split(self.corpus_dir, name, self.spec, min_frames=self.chunk_frames)
        return self._splits[name]

    def real_render_stats(self, kind: str, vocoder, clips: int, seconds: float) -> dict[str, float]:
        """Mean render stats of ``clips`` real clips of ``seconds`` through ``vocoder``.

        ``kind`` "test": reference-split clips resynthesised from their mel; "real_chunks":
        cut-and-paste of random ``chunk_frames`` train chunks. Computed once per (kind,
        vocoder, clips, seconds) with this reference's seed, then kept (and saved with it).
        """
        from melsynth.training.prior.render_eval import real_chunk_clips, real_clips
        from melsynth.training.prior.render_stats import mean_render_stats

        if kind not in ("test", "real_chunks"):
            raise ValueError(f"kind must be 'test' or 'real_chunks', got {kind!r}")
        vname = f"{getattr(vocoder, 'kind', '?')}:{getattr(vocoder, 'name', '?')}"
        key = f"{kind}:{vname}:{int(clips)}x{float(seconds):g}s"
        if key not in self.render_reference_figures:
            rng = np.random.default_rng(self._seed + (29 if kind == "test" else 31))
            if kind == "test":
                audio = real_clips(self.split(self.reference_split), vocoder, clips, seconds, rng, self.spec)
            else:
                audio = real_chunk_clips(self.split("train"), vocoder, clips, seconds, self.chunk_frames, rng,
                                         self.spec)
            self.render_reference_figures[key] = mean_render_stats(audio, self.spec.sample_rate)
        return self.render_reference_figures[key]

    def fd_to_reference(self, windows: np.ndarray) -> float:
        """FD-mel of ``(n, n_mels, window_frames)`` log10-mel windows against the reference split."""
        return self._fd_of(GaussianStats.of(window_features(windows)))

    def _fd_of(self, stats: GaussianStats) -> float:
        return frechet_distance(self.reference_stats, stats, root_a=self.reference_root)

    def spread_ratio(self, stats: GaussianStats) -> float:
        """How much windows' average spectra vary, against the reference split's: 1 is alike.

        The trace of the covariance of the band means (``window_features``' first ``n_mels``
        columns), model over reference. A GAN that drops modes plays too little variety from
        one 3 s window to the next (below 1) long before its frames look wrong; FD-mel counts
        that in its covariance term without saying so.
        """
        n = self.spec.n_mels
        ref = float(np.trace(self.reference_stats.cov[:n, :n]))
        return float(np.trace(stats.cov[:n, :n])) / ref if ref > 0 else math.inf

    def score(self, windows: np.ndarray) -> dict[str, float]:
        """Metrics of ``(n, n_mels, window_frames)`` log10-mel windows (a model's)."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.shape[1:] != (self.spec.n_mels, self.window_frames):
            raise ValueError(f"windows must be (n, {self.spec.n_mels}, {self.window_frames}), got {windows.shape}")
        stats = GaussianStats.of(window_features(windows))
        fd_model = self._fd_of(stats)
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
            "fd_real_chunks": self.fd["real_chunks"],
            "fd_ratio_real_chunks": self.fd["real_chunks"] / floor if floor > 0 else math.inf,
            "spread_ratio": self.spread_ratio(stats),
            **{f"fd_{g}": v for g, v in group_frechet_distances(self.reference_stats, stats).items()},
            **{f"fd_{g}_floor": v for g, v in self.fd_group_floor.items()},
            "ndb": float(ndb),
            "ndb_floor": float(self.ndb_floor),
            "ndb_floor_train": float(self.ndb_floor_train),
            "ndb_real_chunks": float(self.ndb_real_chunks),
            "ndb_bins": float(NDB_BINS),
            "windows": float(len(windows)),
        }


def _finite_or_none(x: float) -> float | None:
    """JSON has no NaN: a missing figure is saved as null."""
    return float(x) if math.isfinite(x) else None


def _nan_if_none(x) -> float:
    return math.nan if x is None else float(x)


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


def contact_sheet(path: str | Path, generated: np.ndarray, real: np.ndarray, spec: MelSpec | None = None,
                  title: str = "") -> Path:
    """A PNG of ``(8, n_mels, frames)`` generated log10-mel windows beside 8 real ones, written atomically.

    A 4 x 4 grid at 1280 x 960 pixels: the generated windows fill the left two columns,
    the real ones the right two, all on one colour scale (``norm_low..norm_high``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from melsynth.engine.atomic import atomic_write

    spec = spec or MelSpec()
    n = min(len(generated), len(real), CONTACT_WINDOWS)
    if n < 1:
        raise ValueError(f"contact sheet needs generated and real windows, got {len(generated)} and {len(real)}")
    rows = -(-n // 2)
    fig, axes = plt.subplots(rows, 4, figsize=(16, 3 * rows), dpi=80, squeeze=False)
    for col in range(4):
        label, data = ("generated", generated) if col < 2 else ("real (test split)", real)
        for row in range(rows):
            i, ax = row * 2 + col % 2, axes[row][col]
            if i >= n:
                ax.axis("off")
                continue
            ax.imshow(data[i], origin="lower", aspect="auto", vmin=spec.norm_low, vmax=spec.norm_high,
                      cmap="magma", extent=(0, data.shape[2] / spec.frame_rate, 0, spec.n_mels))
            ax.set_title(f"{label} {i + 1}", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.suptitle(title or "generated (left) vs real (right)")
    fig.tight_layout()
    out = atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=80))
    plt.close(fig)
    return out


def contact_windows(sample: SampleFn, latent_size: int, latent_frames: int, reference: PriorReference,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """8 generated and 8 real (reference split) ``(8, n_mels, 6 s of frames)`` log10-mel windows."""
    frames = int(round(CONTACT_SECONDS * reference.spec.frame_rate))
    generated = generate_windows(sample, latent_size, latent_frames, CONTACT_WINDOWS, frames, rng,
                                 spec=reference.spec, batch=1, windows_per_sequence=1)
    split = reference.split(reference.reference_split)
    frames_real = min(frames, max(m.shape[1] for m in split.mels))
    return generated, split.sample_windows(CONTACT_WINDOWS, frames_real, rng)


# --------------------------------------------------------------------------- learning curve
def learning_curve_point(sample: SampleFn, reference: PriorReference, latent_size: int, latent_frames: int,
                         windows: np.ndarray | None = None, vocoder=None, clips: int = 2, seconds: float = 10.0,
                         seed: int = 1234, batch: int = 16, reference_clips: int = REAL_CLIPS,
                         render_sample: SampleFn | None = None) -> dict[str, float]:
    """The figures a trainer logs at each validation (torch-free; ``sample`` as ``SampleFn``).

    ``{fd_ratio, ndb, onset_rate, flatness, contrast_db, chroma_movement}`` plus
    ``*_ratio`` of the render stats against ``reference_clips`` reference-split clips of
    ``seconds`` (resynthesised by the same vocoder; computed once, about 8 s of CPU for
    16 x 10 s, and kept in ``reference``: save it to keep them). FD/NDB score ``windows``
    (``(n, n_mels, window_frames)`` log10 mel, e.g. those the trainer already drew) or,
    if None, ``reference.n_windows`` fresh ones. Render stats come from ``clips`` x
    ``seconds`` of mel generated by ``render_sample`` (default ``sample``; the trainer hands
    it the engine's walk at its default speed and spread, ``walk_sample_fn``, since that is
    what ``melsynth render`` and ``eval prior``'s render stats play), vocoded by ``vocoder``
    (default: the classical vocoder with the shipped params). About 1 s of CPU beyond
    the sampling and scoring (2 x 10 s).
    """
    from melsynth.training.prior.render_eval import classical_vocoder, generated_clips, stats_block

    rng = np.random.default_rng(seed)
    if windows is None:
        windows = generate_windows(sample, latent_size, latent_frames, reference.n_windows, reference.window_frames,
                                   rng, spec=reference.spec, batch=batch)
    scores = reference.score(windows)
    vocoder = vocoder or classical_vocoder(reference.spec)
    audio = generated_clips(render_sample or sample, latent_size, latent_frames, vocoder, clips, seconds, rng,
                            reference.spec)
    test = reference.real_render_stats("test", vocoder, reference_clips, seconds)
    return {"fd_ratio": scores["fd_ratio"], "ndb": scores["ndb"],
            **stats_block(audio, reference=test, sample_rate=reference.spec.sample_rate)}


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
        f"  real chunks{metrics['fd_real_chunks']:10.3f}   ratio {metrics['fd_ratio_real_chunks']:.3f}",
        *([f"spread of window spectra (band-mean covariance trace, model / test): {metrics['spread_ratio']:.3f}"]
          if "spread_ratio" in metrics else []),
        *(["FD-mel of each part alone (model / floor): " + ", ".join(
            f"{FEATURE_GROUP_LABELS[g]} {metrics['fd_' + g]:.2f} / {metrics['fd_' + g + '_floor']:.2f}"
            for g in FEATURE_GROUPS)] if "fd_band_mean" in metrics else []),
        f"NDB (k={int(metrics['ndb_bins'])}, vs train-frame bins): model {int(metrics['ndb'])} bins differ; "
        f"floors: other train frames {int(metrics['ndb_floor_train'])}, test-split frames {int(metrics['ndb_floor'])}; "
        f"real chunks {_int_or_nan(metrics['ndb_real_chunks'])}",
    ]
    if "fd_ratio_walk" in metrics:
        lines.append(f"the engine's walk (speed {metrics['walk_speed']:g}, spread {metrics['walk_spread']:g}; one window "
                     f"per seed): fd_ratio {metrics['fd_ratio_walk']:.3f}, NDB {int(metrics['ndb_walk'])}")
    lines += [
        "beats baselines: " + ("yes" if metrics["fd_mel"] < min(metrics["fd_gaussian"], metrics["fd_shuffled"])
                               else "no") + "; beats real chunks: "
        + ("yes" if metrics["fd_mel"] < metrics["fd_real_chunks"] else "no"),
    ]
    if "onset_rate" in metrics:
        lines += format_render_stats(metrics)
    return "\n".join(lines)


def _int_or_nan(x: float) -> str:
    return "n/a" if not math.isfinite(x) else str(int(x))


def format_render_stats(metrics: dict[str, float]) -> list[str]:
    """Table lines of the render stats: model, test split, real chunks, with ratios to the test split."""
    from melsynth.training.prior.render_stats import STAT_KEYS

    head = "render stats".ljust(30) + "".join(k.rjust(17) for k in STAT_KEYS)
    rows = [head]
    for label, prefix, ratio in (("model renders", "", True), ("test split (resynthesised)", "test_", False),
                                 ("real chunks", "real_chunks_", True)):
        rows.append(label.ljust(30) + "".join(f"{metrics[prefix + k]:17.4g}" for k in STAT_KEYS))
        if ratio:
            rows.append("  / test".ljust(30) + "".join(f"{metrics[prefix + k + '_ratio']:17.3f}" for k in STAT_KEYS))
    return rows


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
    seeds = _seeds_arg(args.seeds)
    if not (args.render_seconds > 0 and args.real_clips >= 1):
        from melsynth.engine.errors import MelsynthError

        raise MelsynthError(f"--render-seconds must be positive and --real-clips >= 1, got {args.render_seconds} "
                            f"and {args.real_clips}")
    reference = PriorReference(args.corpus, n_windows=args.windows, window_frames=args.window_frames,
                               seed=args.seed, spec=bundle.mel, chunk_frames=prior.latent_frames)
    rng = np.random.default_rng(args.seed + 1)
    engine_sample = prior_sample_fn(prior)
    sample = held_sample_fn(engine_sample, prior.phrase_size)   # the prior's own latent distribution
    generated = generate_windows(sample, prior.latent_size, prior.latent_frames, args.windows,
                                 args.window_frames, rng, spec=bundle.mel, batch=1)
    metrics = reference.score(generated)
    if not args.no_walk:
        from melsynth.engine.stream.controls import WALK_SPEED, WALK_SPREAD

        walked = generate_windows(walk_sample_fn(engine_sample, WALK_SPEED, WALK_SPREAD, phrase_size=prior.phrase_size),
                                  prior.latent_size,
                                  prior.latent_frames, args.windows, args.window_frames, rng, spec=bundle.mel,
                                  batch=1, windows_per_sequence=1)
        walk_scores = reference.score(walked)
        metrics.update(fd_ratio_walk=walk_scores["fd_ratio"], ndb_walk=walk_scores["ndb"],
                       walk_speed=WALK_SPEED, walk_spread=WALK_SPREAD)
    if not args.no_render:
        metrics.update(bundle_render_stats(bundle, reference, seeds, args.render_seconds, args.real_clips))
    metrics["seconds"] = round(time.monotonic() - t0, 1)
    print(f"bundle {bundle.root}  corpus {args.corpus} (train {reference.train_hours:.2f} h, "
          f"{reference.reference_split} {reference.reference_hours:.2f} h)")
    print(format_report(metrics))
    if args.json:
        from melsynth.engine.atomic import atomic_write_json

        atomic_write_json(args.json, {"bundle": str(bundle.root), "corpus": str(args.corpus), **metrics})
    if args.record:
        print(f"recorded in {record_eval(bundle.json_path, metrics)} (prior.figures.eval)")
    if args.plots:
        for p in save_plots(args.plots, generated[:8], reference.real_examples, metrics, bundle.mel):
            print(f"wrote {p}")
        gen6, real6 = contact_windows(sample, prior.latent_size, prior.latent_frames, reference,
                                      np.random.default_rng(args.seed + 2))
        sheet = contact_sheet(Path(args.plots) / "contact_sheet.png", gen6, real6, bundle.mel,
                              title=f"{bundle.name}: generated (left) vs {reference.reference_split} split (right), "
                                    f"{CONTACT_SECONDS:g} s windows; fd_ratio {metrics['fd_ratio']:.2f}")
        print(f"wrote {sheet}")
    return 0


def record_eval(bundle_json: Path, metrics: dict[str, float]) -> Path:
    """Write ``metrics`` into ``bundle.json``'s ``prior.figures.eval`` (atomically; the rest kept), the
    record the bundle carries of how its prior scores."""
    import json

    from melsynth.engine.runtime.bundle import write_bundle_json

    data = json.loads(Path(bundle_json).read_text())
    prior = data.get("prior")
    if not isinstance(prior, dict):
        raise ValueError(f"{bundle_json}: no prior entry to record the figures in")
    prior.setdefault("figures", {})["eval"] = {k: v for k, v in metrics.items() if k != "seconds"}
    return write_bundle_json(Path(bundle_json).parent, data)


def _seeds_arg(text: str) -> tuple[int, ...]:
    from melsynth.training.prior.render_eval import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as exc:
        from melsynth.engine.errors import MelsynthError

        raise MelsynthError(str(exc)) from None


def bundle_render_stats(bundle, reference: PriorReference, seeds, seconds: float,
                        real_clips: int = REAL_CLIPS) -> dict[str, float]:
    """Render stats of the bundle's renders (``melsynth render`` at the default walk, one ``seconds``
    clip per seed), and of ``real_clips`` test-split clips and as many real-chunk clips of the same
    length, resynthesised by the bundle's default vocoder; ``*_ratio`` against the test split's."""
    from melsynth.training.prior.render_eval import classical_vocoder, model_renders, stats_block

    rate = bundle.mel.sample_rate
    vocoder = classical_vocoder(bundle=bundle)
    test = reference.real_render_stats("test", vocoder, real_clips, seconds)
    chunks = reference.real_render_stats("real_chunks", vocoder, real_clips, seconds)
    return {**stats_block(model_renders(bundle, seeds, seconds), reference=test, sample_rate=rate),
            **{"test_" + k: v for k, v in test.items()},
            **{"real_chunks_" + k: v for k, v in chunks.items()},
            **{"real_chunks_" + k: v for k, v in _ratios(chunks, test).items()},
            "render_seeds": float(len(seeds)), "render_seconds": float(seconds), "real_clips": float(real_clips)}


def _ratios(stats: dict[str, float], test: dict[str, float]) -> dict[str, float]:
    from melsynth.training.prior.render_stats import stat_ratios

    return stat_ratios(stats, test)


def register_eval(group_sub) -> None:
    """Add ``melsynth eval prior``."""
    p = group_sub.add_parser("prior", help="FD-mel, baselines, NDB and render stats of a bundle's prior "
                             "against a corpus",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bundle", default=None, help="model bundle folder; unset: $MELSYNTH_BUNDLE or models/default")
    p.add_argument("--corpus", required=True, help="built corpus folder (manifest.json + mel cache)")
    p.add_argument("--json", default=None, help="write the metrics to this JSON file")
    p.add_argument("--record", action="store_true", help="also write them into the bundle's bundle.json "
                   "(prior.figures.eval): the figures a shipped bundle carries")
    p.add_argument("--plots", default=None, help="write PNGs into this folder: a grid of generated vs real "
                   "windows and contact_sheet.png (8 generated 6 s windows beside 8 test-split ones)")
    p.add_argument("--windows", type=int_range(1, 10 ** 7), default=DEFAULT_WINDOWS, help="windows per set (>= 2000 for the record)")
    p.add_argument("--window-frames", type=int_range(1, 100_000), default=DEFAULT_WINDOW_FRAMES, help="frames per window")
    p.add_argument("--seed", type=seed(), default=0, help="seed of the window and latent draws")
    p.add_argument("--seeds", default="4", help="render seeds for the render stats: a count (4 = seeds 1-4), "
                   "a range (11-14) or a list (1,5,9)")
    p.add_argument("--render-seconds", type=finite_float(0, 3600, lo_open=True), default=20.0, help="length of each render (and real clip)")
    p.add_argument("--real-clips", type=int_range(1, 10000), default=REAL_CLIPS, help="test-split (and real-chunk) clips of "
                   "--render-seconds for the render stats' reference (real files vary a lot: 16 as the issue)")
    p.add_argument("--no-render", action="store_true", help="skip the render stats (FD/NDB only)")
    p.add_argument("--no-walk", action="store_true", help="skip FD/NDB of windows played by the engine's walk "
                   "at its default speed and spread (one window per seed)")
    p.set_defaults(func=_eval_prior)
