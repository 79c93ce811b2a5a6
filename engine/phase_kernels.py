"""numba kernels for the Griffin-Lim iterations of ``engine.phase`` (optional).

Each kernel does what a handful of numpy calls on small arrays do, in one call
and with the same float32 operations in the same order, so the results are
bit-identical (``engine.phase`` checks that once per process before using
them, and keeps to numpy where numba is missing, fails or differs).
``np.abs`` of complex values stays in numpy: its SIMD loops round
differently from any scalar ``hypot``.

Compiled on first use (``cache=True``: later processes load the machine code
from ``__pycache__``); ``engine.phase`` does that when a ``StreamingPhase`` is
built, never while audio runs.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is optional
    numba = None


def _jit(func):
    return numba.njit(cache=True, nogil=True)(func) if numba is not None else None


def overlap_add_py(td: np.ndarray, window: np.ndarray, num: np.ndarray, hop: int, n: int, weights: np.ndarray,
                   first_out: int, signal: np.ndarray, frames: np.ndarray) -> None:
    """Overlap-add ``td[:n] * window`` onto ``num`` and weight ``len(weights)`` frames of the sum.

    ``td`` ``(rows, n_fft)`` float32: the frames' irfft; ``window`` ``(n_fft,)``; ``num``
    ``(span,)``: committed num from the oldest active frame on; ``weights`` ``(n_out, n_fft)``;
    ``signal`` ``(>= span,)`` scratch; ``frames`` ``(>= n_out, n_fft)`` float64 out:
    ``frames[i] = signal[(first_out + i) * hop:][:n_fft] * weights[i]`` (float32 products).
    Block ``b`` of the signal adds its frames' shares in the order the original loop did:
    block 0 of frame ``b``, then block 1 of frame ``b - 1``, ...
    """
    n_out, n_fft = weights.shape
    signal[:num.shape[0]] = num
    # slices of contiguous rows: inner loops the compiler vectorises
    for r in range(n_fft // hop):
        window_r = window[r * hop:(r + 1) * hop]
        for a in range(n):
            share = td[a, r * hop:(r + 1) * hop]
            block = signal[(a + r) * hop:(a + r + 1) * hop]
            for s in range(hop):
                block[s] += share[s] * window_r[s]
    for i in range(n_out):
        frame = signal[(first_out + i) * hop:(first_out + i) * hop + n_fft]
        weight, out = weights[i], frames[i]
        for j in range(n_fft):
            out[j] = frame[j] * weight[j]


def momentum_py(wide: np.ndarray, n: int, alpha: np.float32, previous: np.ndarray, spectra: np.ndarray) -> None:
    """``rebuilt = complex64(wide[:n])``; ``spectra[:n] = rebuilt - alpha * previous[:n]``;
    ``previous[:n] = rebuilt`` (fast Griffin-Lim's momentum step; ``alpha = 0``: plain)."""
    for a in range(n):
        for k in range(wide.shape[1]):
            re = np.float32(wide[a, k].real)
            im = np.float32(wide[a, k].imag)
            if alpha == 0:
                spectra[a, k] = complex(re, im)
                continue
            old = previous[a, k]
            spectra[a, k] = complex(re - alpha * old.real, im - alpha * old.imag)
            previous[a, k] = complex(re, im)


def impose_py(spectra: np.ndarray, size: np.ndarray, mags: np.ndarray, n: int, tiny: np.float32) -> None:
    """``spectra[:n] *= mags[:n] / maximum(size[:n], tiny)`` (``size``: ``|spectra|``)."""
    for a in range(n):
        for k in range(spectra.shape[1]):
            s = size[a, k]
            if s < tiny:  # np.maximum: NaN stays NaN
                s = tiny
            gain = mags[a, k] / s
            z = spectra[a, k]
            spectra[a, k] = complex(z.real * gain, z.imag * gain)


overlap_add = _jit(overlap_add_py)
momentum = _jit(momentum_py)
impose = _jit(impose_py)
