"""Linear magnitude from log-mel frames: pseudo-inverse, sharpened by non-negative least squares.

The mel pseudo-inverse (``engine.features.mel_to_linear``) is the minimum-norm
solution of ``mel = M s``: smooth, and clipped at 0, so it spreads each
partial over the whole mel band. A few Lee-Seung multiplicative updates
for ``min ||M s - mel||^2, s >= 0`` started from it (what
``librosa.feature.inverse.mel_to_stft`` solves with L-BFGS) put the energy
back on fewer bins; the iterations keep ``s >= 0`` and never revive a bin
that the data does not support. Measured on the corpus's validation split
with the true phase, MR-STFT / Griffin-Lim-64: pseudo-inverse 0.573, 3
updates 0.538, 10 updates 0.534; with RTISI-LA phase 1.000 / 0.964 / 0.954.

``M^T M`` is banded (the triangular filters overlap their neighbours only), so
one update is a sparse matrix-vector product. Frames are processed one at a
time, so a frame's magnitude does not depend on how a stream was chunked.
"""
from __future__ import annotations

import functools

import numpy as np

from engine.features import MelSpec, mel_filterbank, mel_pseudo_inverse

# Floor of the starting point: a multiplicative update cannot move a bin away from 0.
_START_FLOOR = 1e-8
_TINY = 1e-20


@functools.lru_cache(maxsize=8)
def _sparse_operators(spec: MelSpec):
    """``M^T`` ``(n_freqs, n_mels)`` and ``M^T M`` ``(n_freqs, n_freqs)`` (banded) as CSR."""
    import scipy.sparse

    basis = mel_filterbank(spec)
    return scipy.sparse.csr_matrix(basis.T), scipy.sparse.csr_matrix(basis.T @ basis)


class MelMagnitude:
    """``(n_mels, k)`` log10 mel -> ``(n_freqs, k)`` float32 linear magnitude."""

    def __init__(self, spec: MelSpec, iterations: int = 3):
        if not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"magnitude_iterations must be an int >= 0, got {iterations!r}")
        self.spec = spec
        self.iterations = iterations
        self.pinv = mel_pseudo_inverse(spec)
        self.basis_t, self.gram = _sparse_operators(spec)

    def frame(self, log_mel_frame: np.ndarray) -> np.ndarray:
        """``(n_mels,) -> (n_freqs,)``."""
        mel = np.power(np.float32(10.0), log_mel_frame.astype(np.float32))
        mag = np.maximum(self.pinv @ mel, 0.0)
        if self.iterations:
            np.maximum(mag, _START_FLOOR, out=mag)
            target = self.basis_t @ mel
            for _ in range(self.iterations):
                mag *= target / np.maximum(self.gram @ mag, _TINY)
        return mag

    def __call__(self, log_mel: np.ndarray) -> np.ndarray:
        out = np.empty((self.spec.n_freqs, log_mel.shape[1]), dtype=np.float32)
        for i in range(log_mel.shape[1]):
            out[:, i] = self.frame(log_mel[:, i])
        return out
