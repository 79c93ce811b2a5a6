"""Mel cache: one memory-mapped ``.npy`` of log10 mel per audio file.

Layout inside a corpus folder::

    mel_cache/<MelSpec.key()>/spec.json          the MelSpec the entries were made with
    mel_cache/<MelSpec.key()>/<sha256[:32]>.npy  (n_mels, frames) float32 log10 mel
    audio_cache/<sha256[:32]>.npy                (samples,) int16, the FLAC's samples
                                                 (made by the vocoder sampler on first use)

The folder is keyed by the feature definition and each entry by the audio's
checksum, so changing the MelSpec or re-rendering a file never serves a stale
mel. Mels come from ``engine.dsp.features.log_mel`` (the one definition) applied to
the audio exactly as stored in the FLAC (16-bit samples), so frame ``t`` of the
cache is the mel of the file's samples centred on ``t * hop``.

Long files are processed in chunks of frames; each chunk gets the samples its
frames' windows need (plus the real signal edges), so the result equals
``log_mel`` of the whole file while memory stays bounded::

    frames  |<---- chunk k ---->|
    samples  [t0*hop - n_fft/2,  t1*hop + n_fft/2)   (reflect-padded only at file ends)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from melsynth.engine.atomic import atomic_write, atomic_write_json
from melsynth.engine.dsp.features import MelSpec, log_mel

CACHE_DIR = "mel_cache"
CHUNK_FRAMES = 4096


def cache_dir(corpus_dir: str | os.PathLike, spec: MelSpec) -> Path:
    return Path(corpus_dir) / CACHE_DIR / spec.key()


def entry_path(corpus_dir: str | os.PathLike, spec: MelSpec, sha256: str) -> Path:
    return cache_dir(corpus_dir, spec) / f"{sha256[:32]}.npy"


def chunked_log_mel(spec: MelSpec, audio: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """``(samples,) -> (n_mels, 1 + samples // hop)``; equals ``log_mel(spec, audio)``."""
    audio = np.asarray(audio, dtype=np.float32)
    n_frames = spec.n_frames(audio.size)
    pad = spec.n_fft // 2
    hop = spec.hop_length
    if n_frames <= chunk_frames or audio.size <= 2 * pad or pad % hop:
        return log_mel(spec, audio)
    out = np.empty((spec.n_mels, n_frames), dtype=np.float32)
    for t0 in range(0, n_frames, chunk_frames):
        t1 = min(n_frames, t0 + chunk_frames)
        # Frame t's window covers samples [t*hop - pad, t*hop + pad). Where that
        # reaches past a file edge, take the edge into the segment so log_mel's
        # reflect padding is the whole file's.
        seg_hi = min(audio.size, (t1 - 1) * hop + pad)
        # Start a short last segment earlier (on the hop grid): log_mel reflect-pads
        # only segments longer than pad, and earlier samples change no kept frame.
        seg_lo = max(0, min(t0 * hop - pad, (audio.size - spec.n_fft - 1) // hop * hop))
        mel = log_mel(spec, audio[seg_lo:seg_hi])
        # Segment frame j is centred on sample seg_lo + j*hop (seg_lo is a multiple of hop).
        first = t0 - seg_lo // hop
        out[:, t0:t1] = mel[:, first:first + (t1 - t0)]
    return out


def write_entry(corpus_dir: str | os.PathLike, spec: MelSpec, sha256: str, audio: np.ndarray) -> Path:
    """Compute and store the mel of ``audio`` (float32 as read from the FLAC)."""
    path = entry_path(corpus_dir, spec, sha256)
    spec_file = path.parent / "spec.json"
    if not spec_file.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(spec_file, spec.to_dict())
    mel = chunked_log_mel(spec, audio)
    atomic_write(path, lambda f: np.save(f, mel, allow_pickle=False))
    return path


def entry_is_valid(path: Path, spec: MelSpec, samples: int) -> bool:
    """An entry exists and has the shape this MelSpec gives the file."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return arr.shape == (spec.n_mels, spec.n_frames(samples)) and arr.dtype == np.float32


def open_entry(corpus_dir: str | os.PathLike, spec: MelSpec, sha256: str) -> np.ndarray:
    """Memory-mapped ``(n_mels, frames)`` float32 mel of one file (read-only)."""
    return np.load(entry_path(corpus_dir, spec, sha256), mmap_mode="r")


def ensure_cache(corpus_dir: str | os.PathLike, spec: MelSpec, entries, progress: bool = True) -> int:
    """Compute the missing or wrong-shaped cache entries of ``entries`` (FileEntry list).

    Returns how many were computed.
    """
    import soundfile as sf

    todo = [e for e in entries
            if not entry_is_valid(entry_path(corpus_dir, spec, e.sha256), spec, e.samples)]
    if not todo:
        return 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"mel cache {spec.key()}", unit="file")
    for e in todo:
        audio, _sr = sf.read(str(Path(corpus_dir) / e.path), dtype="float32", always_2d=False)
        write_entry(corpus_dir, spec, e.sha256, audio)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return len(todo)


# --- audio cache: the FLACs' 16-bit samples as memory-mapped .npy -------------------------
# FLAC decoding of a random 8192-sample crop costs ~5 ms; a memory-mapped int16
# array costs microseconds. Keyed by the FLAC's checksum (independent of MelSpec).

AUDIO_CACHE_DIR = "audio_cache"


def audio_entry_path(corpus_dir: str | os.PathLike, sha256: str) -> Path:
    return Path(corpus_dir) / AUDIO_CACHE_DIR / f"{sha256[:32]}.npy"


def ensure_audio_cache(corpus_dir: str | os.PathLike, entries, progress: bool = True) -> int:
    """Write missing ``(samples,)`` int16 arrays of ``entries``' FLACs; returns how many."""
    import soundfile as sf

    def valid(e) -> bool:
        try:
            arr = np.load(audio_entry_path(corpus_dir, e.sha256), mmap_mode="r")
        except (OSError, ValueError):
            return False
        return arr.shape == (e.samples,) and arr.dtype == np.int16

    todo = [e for e in entries if not valid(e)]
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="audio cache", unit="file")
    for e in todo:
        pcm, _sr = sf.read(str(Path(corpus_dir) / e.path), dtype="int16", always_2d=False)
        atomic_write(audio_entry_path(corpus_dir, e.sha256), lambda f: np.save(f, pcm, allow_pickle=False))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return len(todo)


def open_audio_entry(corpus_dir: str | os.PathLike, sha256: str) -> np.ndarray:
    """Memory-mapped ``(samples,)`` int16 samples of one file (read-only)."""
    return np.load(audio_entry_path(corpus_dir, sha256), mmap_mode="r")


def describe(corpus_dir: str | os.PathLike) -> dict[str, dict]:
    """{key: spec dict} of the caches present in a corpus folder."""
    root = Path(corpus_dir) / CACHE_DIR
    out = {}
    if root.is_dir():
        for d in sorted(root.iterdir()):
            spec_file = d / "spec.json"
            if spec_file.is_file():
                out[d.name] = json.loads(spec_file.read_text())
    return out
