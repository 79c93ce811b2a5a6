"""Vocoder quality metrics and the Griffin-Lim reference, numpy + librosa.

Both metrics compare a vocoder's audio with the original on log10 magnitudes
floored at the MelSpec's ``log_floor`` (1e-5, the models' own floor), so
silence below the floor costs nothing and the two metrics share one scale:

- multi-resolution log-STFT L1: mean over n_fft 512, 1024, 2048 (hop n_fft/4,
  periodic Hann, centred, reflect-padded) of ``mean |log10 |X| - log10 |Y||``.
  Sensitive to phase (a wrong phase smears partials across frames and bins at
  the resolutions other than the mel's own), so it is the deciding metric.
- log-mel L1: ``mean |log_mel(x) - log_mel(y)|`` with the bundle's MelSpec.

Griffin-Lim is the yardstick: ``librosa.griffinlim`` (fast Griffin-Lim,
momentum 0.99, random start with a fixed seed) run for 64 iterations on the
mel pseudo-inverse magnitude of the same mel, with the MelSpec's window, hop
and centring; a vocoder's score is its error divided by Griffin-Lim's.
"""
from __future__ import annotations

import numpy as np

from melsynth.engine.dsp.features import MelSpec, log_mel, mel_to_linear

MR_STFT_FFTS = (512, 1024, 2048)
GRIFFIN_LIM_ITERATIONS = 64
GRIFFIN_LIM_SEED = 0


def _log_magnitude(audio: np.ndarray, n_fft: int, floor: float) -> np.ndarray:
    """``(samples,) -> (n_fft//2+1, frames)`` log10 STFT magnitude, centred, reflect-padded."""
    x = np.asarray(audio, dtype=np.float64)
    pad = n_fft // 2
    x = np.pad(x, (pad, pad), mode="reflect" if x.size > pad else "constant")
    hop = n_fft // 4
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * window, axis=1)).T
    return np.log10(np.maximum(mag, floor))


def _check_pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.ndim != 1 or estimate.ndim != 1:
        raise ValueError(f"metrics need 1-D audio, got shapes {reference.shape} and {estimate.shape}")
    if reference.shape != estimate.shape:
        raise ValueError(f"reference has {reference.size} samples, estimate {estimate.size}: trim first")
    if reference.size == 0:
        raise ValueError("metrics need non-empty audio")
    return reference, estimate


def mr_stft_l1(reference: np.ndarray, estimate: np.ndarray, floor: float = 1e-5,
               ffts: tuple[int, ...] = MR_STFT_FFTS) -> float:
    """Multi-resolution log10-STFT L1 between two equal-length signals (0 when identical)."""
    reference, estimate = _check_pair(reference, estimate)
    errors = [float(np.mean(np.abs(_log_magnitude(reference, n, floor) - _log_magnitude(estimate, n, floor))))
              for n in ffts]
    return float(np.mean(errors))


def log_mel_l1(spec: MelSpec, reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean absolute difference of the two signals' log10 mels (the models' features)."""
    reference, estimate = _check_pair(reference, estimate)
    return float(np.mean(np.abs(log_mel(spec, reference) - log_mel(spec, estimate))))


def fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad ``audio`` to ``n_samples``."""
    audio = np.asarray(audio)
    if audio.size >= n_samples:
        return audio[:n_samples]
    return np.concatenate([audio, np.zeros(n_samples - audio.size, dtype=audio.dtype)])


def griffin_lim(spec: MelSpec, log_mel_frames: np.ndarray, n_samples: int,
                iterations: int = GRIFFIN_LIM_ITERATIONS, seed: int = GRIFFIN_LIM_SEED) -> np.ndarray:
    """The reference: librosa fast Griffin-Lim on the mel pseudo-inverse magnitude -> ``(n_samples,)``."""
    import librosa

    magnitude = mel_to_linear(spec, log_mel_frames).astype(np.float64)
    audio = librosa.griffinlim(
        magnitude, n_iter=iterations, hop_length=spec.hop_length, win_length=spec.win_length,
        n_fft=spec.n_fft, window="hann", center=True, length=n_samples, pad_mode="reflect",
        momentum=0.99, init="random", random_state=seed)
    return audio.astype(np.float32)
