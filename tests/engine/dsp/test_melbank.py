"""The numpy mel filterbank gives librosa's bits (the engine no longer imports librosa for it)."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.engine.dsp.features import MelSpec, mel_filterbank
from melsynth.engine.dsp.melbank import slaney_mel_filterbank


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [
    (11025, 1024, 256, 0.0, 5512.5),   # the default bundle's
    (22050, 2048, 128, 0.0, 11025.0),
    (16000, 512, 80, 55.0, 7600.0),
    (11025, 1024, 64, 1200.0, 5000.0),  # fmin inside the log part of the scale
])
def test_filterbank_equals_librosa_bit_for_bit(sr, n_fft, n_mels, fmin, fmax):
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False,
                                   norm="slaney").astype(np.float32)
    got = slaney_mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_engine_filterbank_is_the_numpy_one():
    spec = MelSpec()
    assert np.array_equal(mel_filterbank(spec), slaney_mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels,
                                                                      spec.fmin, spec.fmax))
