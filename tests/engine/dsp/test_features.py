"""The mel contract: one definition, numpy and torch agree, alignment as documented."""
import numpy as np
import pytest

from melsynth.engine.dsp.features import (FeatureError, MelSpec, log_mel, mel_filterbank, mel_to_linear,
                                          stft)


def test_default_spec_is_the_contract():
    s = MelSpec()
    assert (s.sample_rate, s.n_mels, s.hop_length) == (11025, 256, 256)
    assert abs(s.frame_rate - 43.07) < 0.01


def test_no_empty_mel_filters_at_default_and_error_when_too_coarse():
    fb = mel_filterbank(MelSpec())
    assert fb.shape == (256, 513)
    assert np.all(fb.max(axis=1) > 0)
    with pytest.raises(FeatureError, match="empty mel filters"):
        mel_filterbank(MelSpec(n_fft=512, win_length=512))


def test_invalid_spec_names_the_value():
    with pytest.raises(FeatureError, match="fmax=9000"):
        MelSpec(fmax=9000.0)
    with pytest.raises(FeatureError, match="unknown MelSpec field"):
        MelSpec.from_dict({"sample_rate": 11025, "bogus": 1})


def test_spec_roundtrip_and_key_changes_with_any_field():
    s = MelSpec()
    assert MelSpec.from_dict(s.to_dict()) == s
    assert MelSpec(log_floor=1e-4).key() != s.key()
    assert MelSpec().key() == s.key()


def test_frames_and_centre_alignment():
    s = MelSpec()
    n = 11025
    click = np.zeros(n, np.float32)
    click[40 * s.hop_length] = 1.0
    m = log_mel(s, click)
    assert m.shape == (256, s.n_frames(n))
    energy = m.max(axis=0)
    assert int(np.argmax(energy)) == 40


def test_normalize_roundtrip_and_range():
    s = MelSpec()
    x = np.linspace(s.norm_low, s.norm_high, 11)
    np.testing.assert_allclose(s.denormalize(s.normalize(x)), x, atol=1e-6)
    assert s.normalize(np.array([s.norm_low]))[0] == pytest.approx(-1)
    assert s.normalize(np.array([s.norm_high]))[0] == pytest.approx(1)


def test_pseudo_inverse_keeps_a_tone_at_its_frequency():
    s = MelSpec()
    t = np.arange(s.sample_rate) / s.sample_rate
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    lin = mel_to_linear(s, log_mel(s, tone))
    peak_bin = int(np.argmax(lin[:, 20]))
    assert abs(peak_bin * s.sample_rate / s.n_fft - 440.0) < 30.0
    true_peak = int(np.argmax(np.abs(stft(s, tone))[:, 20]))
    assert abs(peak_bin - true_peak) <= 2


@pytest.mark.parametrize("bad", [np.zeros((2, 100)), np.zeros(0), np.array([0.0, np.nan, 0.0])])
def test_bad_audio_is_rejected(bad):
    with pytest.raises(FeatureError):
        log_mel(MelSpec(), bad)


def test_torch_and_numpy_agree_on_real_audio(real_audio):
    torch = pytest.importorskip("torch")
    from melsynth.training.features import TorchMel

    s = MelSpec()
    a = log_mel(s, real_audio)
    mel = TorchMel(s)
    # Same filterbank and arithmetic: in float64 the two paths agree everywhere.
    b64 = mel.double()(torch.from_numpy(real_audio.astype(np.float64))[None])[0].numpy()
    assert a.shape == b64.shape
    assert np.max(np.abs(a - b64)) < 1e-4
    # The float32 training path too, except in near-silent cells (within a decade of the
    # 1e-5 floor) where float32 STFT rounding is a large fraction of the magnitude.
    b32 = TorchMel(s)(torch.from_numpy(real_audio.astype(np.float32))[None])[0].numpy()
    audible = a > s.log_min + 1.0
    assert audible.mean() > 0.5
    assert np.max(np.abs(a - b32)[audible]) < 1e-4
