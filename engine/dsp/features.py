"""The mel contract: one feature definition for training and engine.

``MelSpec`` is the frozen description of melsynth's features; everything that
turns audio into mel frames (numpy here, torch in ``training.features``) reads
its numbers and its filterbank from this module, so the two sides cannot drift.

Frame alignment (``center=True``, reflect padding of ``n_fft // 2``)::

    audio      |0 ............................................ N-1|
    padded  |pad|0 ............................................ N-1|pad|
    frame t        centred on sample t * hop
    frames  = 1 + N // hop

A vocoder that turns ``F`` frames back into audio returns ``F * hop`` samples
whose sample ``n`` lies under frame ``n / hop``; trimming to ``N`` keeps the
output time-aligned with the input.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from melsynth.engine.dsp.melbank import slaney_mel_filterbank


class FeatureError(ValueError):
    """A MelSpec or audio array that the feature code cannot serve."""


@dataclass(frozen=True)
class MelSpec:
    """Log-mel features of melsynth's models.

    ``log10(max(mel_magnitude, log_floor))`` (MelGAN's compression), then an
    affine map of ``[norm_low, norm_high]`` onto ``[-1, 1]`` for networks that
    want normalised input (the prior's ``tanh`` output lives in that space).
    """

    sample_rate: int = 11025
    n_mels: int = 256
    hop_length: int = 256
    n_fft: int = 1024
    win_length: int = 1024
    fmin: float = 0.0
    fmax: float = 5512.5
    log_floor: float = 1e-5
    norm_low: float = -5.0
    norm_high: float = 2.0

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate={self.sample_rate} must be positive")
        if self.n_mels <= 0:
            problems.append(f"n_mels={self.n_mels} must be positive")
        if self.hop_length <= 0:
            problems.append(f"hop_length={self.hop_length} must be positive")
        if self.win_length > self.n_fft or self.win_length <= 0:
            problems.append(f"win_length={self.win_length} must be in 1..n_fft={self.n_fft}")
        if self.hop_length > self.win_length:
            problems.append(f"hop_length={self.hop_length} exceeds win_length={self.win_length}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(f"need 0 <= fmin={self.fmin} < fmax={self.fmax} <= Nyquist={self.sample_rate / 2}")
        if not self.log_floor > 0:
            problems.append(f"log_floor={self.log_floor} must be positive")
        if not self.norm_high > self.norm_low:
            problems.append(f"norm_high={self.norm_high} must exceed norm_low={self.norm_low}")
        if problems:
            raise FeatureError("invalid MelSpec: " + "; ".join(problems))

    # --- derived quantities -------------------------------------------------
    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    @property
    def log_min(self) -> float:
        return float(np.log10(self.log_floor))

    # --- (de)serialisation --------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MelSpec":
        if not isinstance(data, dict):
            raise FeatureError(f"MelSpec must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FeatureError(f"unknown MelSpec field(s): {', '.join(unknown)}")
        return cls(**data)

    def key(self) -> str:
        """Short stable hash: caches keyed by it are invalidated by any change."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # --- normalisation --------------------------------------------------------
    def normalize(self, log_mel: np.ndarray) -> np.ndarray:
        """log10 mel -> [-1, 1] (not clipped)."""
        return (log_mel - self.norm_low) * (2.0 / (self.norm_high - self.norm_low)) - 1.0

    def denormalize(self, norm_mel: np.ndarray) -> np.ndarray:
        return (norm_mel + 1.0) * ((self.norm_high - self.norm_low) / 2.0) + self.norm_low


@functools.lru_cache(maxsize=8)
def _filterbank_cached(spec: MelSpec) -> np.ndarray:
    fb = slaney_mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax)
    empty = np.flatnonzero(fb.max(axis=1) <= 0)
    if empty.size:
        raise FeatureError(
            f"MelSpec n_fft={spec.n_fft} gives {empty.size} empty mel filters "
            f"(first: {empty[0]}); raise n_fft or lower n_mels")
    fb.setflags(write=False)
    return fb


def mel_filterbank(spec: MelSpec) -> np.ndarray:
    """The one mel filterbank: ``(n_mels, n_freqs)`` float32, read-only."""
    return _filterbank_cached(spec)


@functools.lru_cache(maxsize=8)
def _pinv_cached(spec: MelSpec) -> np.ndarray:
    # rcond: 256 mels over 513 bins leave a few filters collinear (singular values ~1e-13 vs ~0.02);
    # numpy's default cutoff keeps them and the inverse gets 5e11 entries that cancel badly in float32.
    inv = np.linalg.pinv(mel_filterbank(spec).astype(np.float64), rcond=1e-6).astype(np.float32)
    inv.setflags(write=False)
    return inv


def mel_pseudo_inverse(spec: MelSpec) -> np.ndarray:
    """``(n_freqs, n_mels)``: least-squares map from mel back to linear magnitude."""
    return _pinv_cached(spec)


def analysis_window(spec: MelSpec) -> np.ndarray:
    """Periodic Hann window of ``win_length``, zero-padded to ``n_fft`` (as torch.stft)."""
    n = np.arange(spec.win_length)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * n / spec.win_length)
    left = (spec.n_fft - spec.win_length) // 2
    out = np.zeros(spec.n_fft, dtype=np.float64)
    out[left:left + spec.win_length] = win
    return out


def _as_mono_float(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise FeatureError(f"audio must be 1-D mono samples, got shape {audio.shape}")
    if audio.size == 0:
        raise FeatureError("audio is empty")
    if not np.all(np.isfinite(audio)):
        raise FeatureError("audio contains NaN or infinite samples")
    return audio.astype(np.float64, copy=False)


def stft(spec: MelSpec, audio: np.ndarray) -> np.ndarray:
    """``(samples,) -> (n_freqs, frames)`` complex STFT, centred, reflect-padded."""
    x = _as_mono_float(audio)
    pad = spec.n_fft // 2
    mode = "reflect" if x.size > pad else "constant"
    x = np.pad(x, (pad, pad), mode=mode)
    n_frames = 1 + (x.size - spec.n_fft) // spec.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, spec.n_fft)[:: spec.hop_length][:n_frames]
    return np.fft.rfft(frames * analysis_window(spec), axis=1).T


def mel_magnitude(spec: MelSpec, audio: np.ndarray) -> np.ndarray:
    """``(samples,) -> (n_mels, frames)`` linear mel magnitude."""
    mag = np.abs(stft(spec, audio)).astype(np.float32)
    return mel_filterbank(spec) @ mag


def log_mel(spec: MelSpec, audio: np.ndarray) -> np.ndarray:
    """``(samples,) -> (n_mels, frames)`` float32 log10 mel: the models' input."""
    return np.log10(np.maximum(mel_magnitude(spec, audio), spec.log_floor)).astype(np.float32)


def mel_to_linear(spec: MelSpec, log_mel_frames: np.ndarray) -> np.ndarray:
    """``(n_mels, frames) -> (n_freqs, frames)`` magnitude from the pseudo-inverse.

    The amplitude prior of every vocoder: blurred but of the right level.
    """
    mel = np.power(10.0, np.asarray(log_mel_frames, dtype=np.float32))
    return np.maximum(mel_pseudo_inverse(spec) @ mel, 0.0)
