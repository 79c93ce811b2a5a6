"""The axes along which ``losses.window_moment_loss`` holds the spread of window means.

Two choices of ``k`` axes in the (standardised) code space, each with the real variance
along it:

* ``code_axes``: the principal axes of the real code window means. The codes' largest
  spread need not be the mel's: a code direction the decoder barely hears can top the list.
* ``mel_axes``: the directions of largest spread of the *mel* those window means predict.
  A least-squares map ``W`` from a step's code to the mean spectrum of its frames (fitted on
  real pairs), then the principal axes ``A`` of the predicted window spectra::

        window mean m (C,)  --W (C, n_mels)-->  predicted band means (n_mels,)  --A (n_mels, k)-->  k numbers
                  basis = W @ A  (C, k)          variance along it = A's eigenvalues

  The map is linear, so a window's predicted spectrum is the map of its mean code, and the
  loss's ``(m - mean) @ basis`` is the spread of the predicted spectra along ``A``: what
  ``melsynth eval prior`` calls ``spread_ratio`` (the band-mean covariance of windows).

``(windows, C)`` window means in; ``(C, k)`` axes and ``(k,)`` variances out; numpy, float64.
"""
from __future__ import annotations

import numpy as np


def _top(covariance: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    variance, axes = np.linalg.eigh(covariance)
    top = np.argsort(variance)[::-1][:k]
    return axes[:, top], variance[top]


def code_axes(window_means: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` principal axes ``(C, k)`` of ``window_means (windows, C)`` and the variance along each."""
    return _top(np.cov(window_means, rowvar=False), k)


def code_to_spectrum(step_codes: np.ndarray, step_spectra: np.ndarray) -> np.ndarray:
    """Least-squares ``W (C, n_mels)`` with ``step_spectra ≈ step_codes @ W + b``, from ``(n, C)`` and ``(n, n_mels)``."""
    if step_codes.shape[0] != step_spectra.shape[0] or step_codes.shape[0] <= step_codes.shape[1] + 1:
        raise ValueError(f"need more paired steps than code dimensions, got {step_codes.shape} and {step_spectra.shape}")
    x = np.hstack([step_codes, np.ones((step_codes.shape[0], 1))])
    w, *_ = np.linalg.lstsq(x, step_spectra, rcond=None)
    return w[:-1]


def mel_axes(window_means: np.ndarray, step_codes: np.ndarray, step_spectra: np.ndarray, k: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Code-space axes ``(C, k)`` whose projections are the top ``k`` principal components of the
    spectra the window means predict (``code_to_spectrum``), and the real variance along each."""
    w = code_to_spectrum(step_codes, step_spectra)
    predicted = (window_means - window_means.mean(axis=0)) @ w
    axes, variance = _top(np.cov(predicted, rowvar=False), k)
    return w @ axes, variance
