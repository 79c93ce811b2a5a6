"""The window-moment axes: the codes' own principal axes, or the directions the spectrum hears."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.training.prior.moments import code_axes, code_to_spectrum, mel_axes


def _codes_and_spectra(n: int, rng: np.random.Generator):
    """Code 0 varies widely but the spectrum ignores it; code 1 varies little and moves every band."""
    codes = rng.standard_normal((n, 3)) * np.array([5.0, 0.5, 1.0])
    bands = np.linspace(1.0, 2.0, 8)
    spectra = codes[:, 1:2] * bands + 0.1 * codes[:, 2:3] + 0.3 + 0.01 * rng.standard_normal((n, 8))
    return codes, spectra, bands


def test_mel_axes_follow_the_spectrum_where_code_axes_follow_the_codes():
    rng = np.random.default_rng(0)
    codes, spectra, bands = _codes_and_spectra(5000, rng)
    code_basis, _ = code_axes(codes, 1)
    mel_basis, mel_variance = mel_axes(codes, codes, spectra, 1)
    assert abs(code_basis[0, 0]) > 0.99                              # the codes' widest axis: the unheard one
    direction = mel_basis[:, 0] / np.linalg.norm(mel_basis[:, 0])
    assert abs(direction[1]) > 0.99 and abs(direction[0]) < 0.02     # the spectrum's: code 1
    # the variance along the axis is the spread of the predicted spectra, in the loss's own terms
    projected = ((codes - codes.mean(axis=0)) @ mel_basis).var(axis=0, ddof=1)
    np.testing.assert_allclose(projected, mel_variance, rtol=1e-6)
    np.testing.assert_allclose(mel_variance[0], 0.25 * (bands @ bands) + 0.01 * 8, rtol=0.1)


def test_code_to_spectrum_recovers_a_linear_map_and_refuses_too_few_pairs():
    rng = np.random.default_rng(1)
    codes, spectra, bands = _codes_and_spectra(2000, rng)
    w = code_to_spectrum(codes, spectra)
    np.testing.assert_allclose(w[1], bands, atol=0.01)
    np.testing.assert_allclose(w[0], 0.0, atol=0.01)
    with pytest.raises(ValueError, match="more paired steps"):
        code_to_spectrum(codes[:3], spectra[:3])
