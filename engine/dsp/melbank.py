"""The Slaney mel filterbank in numpy: librosa's ``filters.mel(htk=False, norm="slaney")``.

The same operations in the same order as librosa 0.10-0.11, so the weights are the same
bits (``tests/engine/dsp/test_melbank.py`` compares them), without importing librosa,
which costs the app's start a second or more.
"""
from __future__ import annotations

import numpy as np

_F_SP = 200.0 / 3  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0  # where the log part begins
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: float) -> float:
    """Slaney mel of one frequency (librosa.hz_to_mel on a scalar)."""
    hz = np.asanyarray(hz)
    mel = (hz - 0.0) / _F_SP
    if hz >= _MIN_LOG_HZ:
        mel = _MIN_LOG_MEL + np.log(hz / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Frequencies of an array of Slaney mels (librosa.mel_to_hz on a vector)."""
    freqs = 0.0 + _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` float32 triangular filters, each scaled to a constant energy."""
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights
