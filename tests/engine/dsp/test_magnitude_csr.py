"""The magnitude's numpy CSR product gives scipy.sparse's bits (the engine no longer imports it at start)."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.engine.dsp.features import MelSpec, mel_filterbank
from melsynth.engine.dsp.magnitude import CsrMatrix, MelMagnitude, _kernel_matches


@pytest.mark.parametrize("which", ["basis_t", "gram"])
def test_csr_product_equals_scipy_bit_for_bit(which):
    sparse = pytest.importorskip("scipy.sparse")
    basis = mel_filterbank(MelSpec())
    dense = basis.T if which == "basis_t" else basis.T @ basis
    ours, theirs = CsrMatrix(dense), sparse.csr_matrix(dense)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
        assert getattr(ours, name).dtype == getattr(theirs, name).dtype
    rng = np.random.default_rng(7)
    for _ in range(50):
        x = (rng.gamma(0.5, 1.0, dense.shape[1]) * np.exp(rng.uniform(-12, 12))).astype(np.float32)
        got, want = ours @ x, theirs @ x
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def test_numpy_and_kernel_magnitudes_still_agree():
    spec = MelSpec()
    if not _kernel_matches(spec, 3):
        pytest.skip("numba kernel unavailable or different here: the numpy path runs alone")
    frames = np.random.default_rng(3).uniform(spec.log_min, 1.5, (spec.n_mels, 6)).astype(np.float32)
    np.testing.assert_array_equal(MelMagnitude(spec, 3)(frames), MelMagnitude(spec, 3, fast=False)(frames))
