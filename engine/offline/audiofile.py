"""Reading any audio file as mono at the model rate, writing WAV atomically.

``read_audio`` takes whatever soundfile reads (WAV, FLAC, OGG, MP3 with a
recent libsndfile) and falls back on librosa (ffmpeg/audioread) for the rest;
stereo and multichannel files are averaged to mono, any rate is resampled
with soxr. Every failure is an ``AudioFileError`` naming the file.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from melsynth.engine.dsp.features import FeatureError


class AudioFileError(FeatureError):
    """An audio file that cannot be read or written; ``str()`` names it."""


def _decode(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return audio.mean(axis=1), int(rate)
    except Exception as sf_exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # librosa warns before falling back on audioread
                audio, rate = librosa.load(str(path), sr=None, mono=True)
            return np.asarray(audio, dtype=np.float32), int(rate)
        except Exception as lr_exc:
            raise AudioFileError(f"{path}: unreadable audio file (soundfile: {sf_exc}; "
                                 f"librosa: {type(lr_exc).__name__}: {lr_exc})") from None


def read_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """``(samples,)`` float32 mono at ``sample_rate``, from any readable audio file."""
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: file is empty (0 bytes)")
    audio, rate = _decode(path)
    if audio.size == 0:
        raise AudioFileError(f"{path}: no samples")
    if not np.all(np.isfinite(audio)):
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    if rate != sample_rate:
        import soxr

        audio = soxr.resample(audio, rate, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(audio, dtype=np.float32)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio as 16-bit PCM WAV, atomically (temp file + rename)."""
    import soundfile as sf

    from melsynth.engine.atomic import atomic_write_bytes

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioFileError(f"{path}: expected mono audio, got shape {audio.shape}")
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    try:
        return atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot write: {exc.strerror or exc}") from exc
