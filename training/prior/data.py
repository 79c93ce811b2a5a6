"""The corpus's mel frames for the prior: whole files in memory, random windows.

numpy only (evaluation imports it without torch). Each corpus file's log10 mel
comes from the corpus's mel cache (``training.corpus.cache``, memory-mapped);
entries missing from the cache are computed first (``cache.ensure_cache``).

Windows are drawn uniformly over all frames of a split (a file with probability
proportional to its number of windows, then a start within it), not tiled by
epoch as ``training.corpus.dataset.MelWindowDataset`` does: a GAN wants a fresh
random crop every step, and evaluation wants i.i.d. windows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melsynth.engine.dsp.features import MelSpec


class CorpusDataError(ValueError):
    """A corpus the prior cannot read windows from (message names the folder or file)."""


@dataclass
class SplitMels:
    """All files of one split: ``mels[i]`` is ``(n_mels, frames_i)`` float32 log10 mel."""

    corpus_dir: Path
    split: str
    mels: list[np.ndarray]
    paths: list[str]

    @property
    def n_frames(self) -> int:
        return int(sum(m.shape[1] for m in self.mels))

    @property
    def hours(self) -> float:
        return self.n_frames / MelSpec().frame_rate / 3600

    def sample_windows(self, n: int, window_frames: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, n_mels, window_frames)`` float32 log10 mel windows, uniformly over the split's frames."""
        starts = self.sample_starts(n, window_frames, rng)
        return np.stack([self.mels[f][:, s:s + window_frames] for f, s in starts]).astype(np.float32)

    def sample_starts(self, n: int, window_frames: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        counts = np.array([max(0, m.shape[1] - window_frames + 1) for m in self.mels], dtype=np.float64)
        if counts.sum() == 0:
            raise CorpusDataError(f"{self.corpus_dir}: split {self.split!r} has no file of at least "
                                  f"{window_frames} frames ({window_frames / MelSpec().frame_rate:.1f} s)")
        files = rng.choice(len(self.mels), size=n, p=counts / counts.sum())
        return [(int(f), int(rng.integers(0, counts[f]))) for f in files]

    def chunk_sequence(self, n_chunks: int, chunk_frames: int, rng: np.random.Generator) -> np.ndarray:
        """``(n_mels, n_chunks * chunk_frames)``: ``n_chunks`` random real chunks of ``chunk_frames`` frames
        (one latent step's worth), each from a random place in the split, end to end (cut-and-paste)."""
        if n_chunks < 1 or chunk_frames < 1:
            raise ValueError(f"need n_chunks >= 1 and chunk_frames >= 1, got {n_chunks} and {chunk_frames}")
        starts = self.sample_starts(n_chunks, chunk_frames, rng)
        return np.concatenate([np.asarray(self.mels[f][:, s:s + chunk_frames]) for f, s in starts],
                              axis=1).astype(np.float32)

    def sample_frames(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, n_mels)`` single frames drawn uniformly over the split."""
        lengths = np.array([m.shape[1] for m in self.mels], dtype=np.int64)
        files = rng.choice(len(self.mels), size=n, p=lengths / lengths.sum())
        offsets = np.minimum((rng.random(n) * lengths[files]).astype(np.int64), lengths[files] - 1)
        out = np.empty((n, self.mels[0].shape[0]), dtype=np.float32)
        for f in np.unique(files):
            rows = np.flatnonzero(files == f)
            out[rows] = np.asarray(self.mels[f][:, offsets[rows]]).T
        return out


def load_split(corpus_dir: str | os.PathLike, split: str, spec: MelSpec | None = None,
               min_frames: int = 1) -> SplitMels:
    """The mels of every file of ``split`` (memory-mapped); raises naming the corpus if there are none."""
    from melsynth.training.corpus import cache
    from melsynth.training.corpus.manifest import read_manifest

    spec = spec or MelSpec()
    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    entries = manifest.split_files(split)
    missing = [e for e in entries if not cache.entry_is_valid(cache.entry_path(corpus_dir, spec, e.sha256), spec,
                                                              e.samples)]
    if missing:  # (ensure_cache needs soundfile; a complete cache does not)
        cache.ensure_cache(corpus_dir, spec, missing, progress=len(missing) > 20)
    mels, paths = [], []
    for entry in entries:
        path = cache.entry_path(corpus_dir, spec, entry.sha256)
        try:
            mel = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise CorpusDataError(f"{path}: unreadable mel cache entry: {exc}") from exc
        if mel.ndim != 2 or mel.shape[0] != spec.n_mels:
            raise CorpusDataError(f"{path}: mel cache entry has shape {mel.shape}, want ({spec.n_mels}, frames)")
        if mel.shape[1] >= min_frames:
            mels.append(mel)
            paths.append(entry.path)
    if not mels:
        raise CorpusDataError(f"{corpus_dir}: split {split!r} has no file of at least {min_frames} frames")
    return SplitMels(corpus_dir, split, mels, paths)
