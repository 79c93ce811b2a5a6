"""engine.runtime.vocoder: every kind streams exactly what it renders offline, safely."""
from __future__ import annotations

import json

import numpy as np
import pytest

from melsynth.engine.dsp.features import FeatureError, MelSpec, log_mel
from melsynth.engine.dsp.magnitude import MelMagnitude
from melsynth.engine.dsp.phase import PhaseConfig
from melsynth.engine.runtime.bundle import BundleError, load_bundle
from melsynth.engine.runtime.vocoder import ClassicalVocoder, load_vocoder
from tests.vocoder_fixtures import ap_entry, melgan_entry, write_bundle

SPEC = MelSpec()


def _music(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A few decaying harmonic notes: sustained partials and onsets."""
    rng = np.random.default_rng(seed)
    sr = SPEC.sample_rate
    t = np.arange(int(seconds * sr)) / sr
    out = np.zeros_like(t)
    for start, f0 in zip(np.arange(0, seconds, 0.4), rng.uniform(110, 440, 8)):
        env = np.where(t >= start, np.exp(-(t - start) * 3.0), 0.0)
        for h in range(1, 6):
            out += env * np.sin(2 * np.pi * f0 * h * (t - start)) / h
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def _stream(voc, mel, seed=0, max_step=16):
    rng = np.random.default_rng(seed)
    voc.reset()
    parts, i = [], 0
    while i < mel.shape[1]:
        k = int(rng.integers(1, max_step + 1))
        chunk = voc.push(mel[:, i:i + k])
        assert chunk.shape == (min(k, mel.shape[1] - i) * SPEC.hop_length,)
        parts.append(chunk)
        i += k
    tail = voc.flush()
    assert tail.shape == (voc.latency_samples,)
    return np.concatenate(parts + [tail])


@pytest.fixture(scope="module")
def mel():
    return log_mel(SPEC, _music())


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory):
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("voc_bundle")
    vocoders = {
        "classical": {"kind": "classical", "params": {"iterations": 3, "lookahead": 1}},
        "ap": ap_entry(root, SPEC, stem="ap"),
        "ap_look1_step2": ap_entry(root, SPEC, lookahead=1, frames_per_step=2, stem="ap_l1s2"),
        "ap_refined": {**ap_entry(root, SPEC, lookahead=1, stem="ap_ref"),
                       "params": {"refine_iterations": 2, "refine_lookahead": 1}},
        "melgan": melgan_entry(root, SPEC, stem="mg"),
        "melgan_look1_step3": melgan_entry(root, SPEC, lookahead=1, frames_per_step=3, stem="mg_l1s3"),
    }
    return load_bundle(write_bundle(root, vocoders))


# --------------------------------------------------------------------------- classical
@pytest.mark.parametrize("config,magnitude_iterations", [(PhaseConfig(), 3),
                                                         (PhaseConfig(iterations=2, lookahead=0, init="partial"), 0)])
def test_classical_streaming_equals_offline_exactly(mel, config, magnitude_iterations):
    voc = ClassicalVocoder(SPEC, config, magnitude_iterations)
    offline = voc.offline(mel)
    assert offline.shape == (mel.shape[1] * SPEC.hop_length,) and offline.dtype == np.float32
    for seed in (0, 1):
        s = _stream(voc, mel, seed)
        assert s.size == offline.size + voc.latency_samples
        np.testing.assert_array_equal(s[voc.latency_samples:], offline)
        assert not np.any(s[:voc.latency_samples])


def test_classical_resynthesis_keeps_the_notes(mel):
    """Not just any audio: its mel is close to the input's (the vocoder inverts the features)."""
    audio = _music()
    out = ClassicalVocoder(SPEC).offline(mel)[:audio.size]
    err = np.mean(np.abs(log_mel(SPEC, out) - mel))
    noise = np.random.default_rng(0).standard_normal(audio.size).astype(np.float32) * np.std(audio)
    assert err < 0.25 < np.mean(np.abs(log_mel(SPEC, noise) - mel))


def test_magnitude_updates_fit_the_mel_better_than_the_pseudo_inverse(mel):
    from melsynth.engine.dsp.features import mel_filterbank, mel_to_linear

    basis = mel_filterbank(SPEC)
    target = np.power(10.0, mel)
    pinv = mel_to_linear(SPEC, mel)
    np.testing.assert_allclose(MelMagnitude(SPEC, 0)(mel), pinv, rtol=1e-4, atol=1e-6)
    errors = []
    for iterations in (0, 3, 10):
        mag = MelMagnitude(SPEC, iterations)(mel)
        assert mag.shape == pinv.shape and mag.min() >= 0.0
        errors.append(np.sum((basis @ mag - target) ** 2))
    assert errors[0] > errors[1] > errors[2]
    # and it lands closer to the true magnitude of the audio
    from melsynth.engine.dsp.features import stft

    true = np.abs(stft(SPEC, _music()))
    dist = [np.mean(np.abs(np.log10(np.maximum(m, 1e-5)) - np.log10(np.maximum(true, 1e-5))))
            for m in (pinv, MelMagnitude(SPEC, 3)(mel))]
    assert dist[1] < dist[0]


@pytest.mark.parametrize("iterations", [0, 3])
def test_magnitude_kernel_gives_the_numpy_paths_bits(mel, iterations):
    """The numba kernel is used where it reproduces numpy and scipy exactly (here it must)."""
    pytest.importorskip("numba")
    fast = MelMagnitude(SPEC, iterations)
    assert fast.fast
    noisy = mel + np.random.default_rng(0).normal(0, 0.5, mel.shape).astype(np.float32)
    for m in (mel, noisy, np.full_like(mel, SPEC.log_min)):
        np.testing.assert_array_equal(fast(m), MelMagnitude(SPEC, iterations, fast=False)(m))


def test_offline_does_not_disturb_a_running_stream(mel):
    voc = ClassicalVocoder(SPEC, PhaseConfig(iterations=2))
    a = [voc.push(mel[:, :10])]
    voc.offline(mel[:, :7])
    a += [voc.push(mel[:, 10:]), voc.flush()]
    ref = _stream(ClassicalVocoder(SPEC, PhaseConfig(iterations=2)), mel)
    np.testing.assert_array_equal(np.concatenate(a), ref)


def test_output_is_finite_and_within_one_for_extreme_mels():
    voc = ClassicalVocoder(SPEC, PhaseConfig(iterations=2))
    loud = np.full((SPEC.n_mels, 20), 3.0, dtype=np.float32)   # far above full scale
    silent = np.full((SPEC.n_mels, 20), SPEC.log_min, dtype=np.float32)
    for m in (loud, silent):
        out = np.concatenate([voc.push(m), voc.flush(), voc.offline(m)])
        assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
    assert np.abs(voc.offline(loud)).max() == 1.0  # clipped, not wrapped


def test_bad_mel_is_a_clear_error():
    voc = ClassicalVocoder(SPEC, PhaseConfig(iterations=1))
    with pytest.raises(FeatureError, match="shape"):
        voc.push(np.zeros((80, 4), np.float32))
    with pytest.raises(FeatureError, match="NaN"):
        voc.offline(np.full((SPEC.n_mels, 4), np.nan, np.float32))
    with pytest.raises(FeatureError, match="no frames"):
        voc.push(np.zeros((SPEC.n_mels, 0), np.float32))


# --------------------------------------------------------------------------- ONNX kinds
@pytest.mark.parametrize("name", ["ap", "ap_look1_step2", "ap_refined", "melgan", "melgan_look1_step3"])
def test_onnx_streaming_equals_offline(onnx_bundle, mel, name):
    voc = load_vocoder(onnx_bundle, name)
    offline = voc.offline(mel)
    assert offline.shape == (mel.shape[1] * SPEC.hop_length,)
    assert np.std(offline) > 1e-3  # the graph really produced audio
    for seed in (0, 3):
        s = _stream(voc, mel, seed)
        assert s.size == offline.size + voc.latency_samples
        np.testing.assert_allclose(s[voc.latency_samples:], offline, atol=1e-5, rtol=0)
        assert np.all(np.isfinite(s)) and np.abs(s).max() <= 1.0


def test_latency_adds_lookahead_step_and_inverse(onnx_bundle):
    hop = SPEC.hop_length
    assert load_vocoder(onnx_bundle, "ap").latency_samples == 2 * hop            # inverse STFT only
    assert load_vocoder(onnx_bundle, "ap_look1_step2").latency_samples == (1 + 1 + 2) * hop
    assert load_vocoder(onnx_bundle, "ap_refined").latency_samples == (1 + 1 + 2) * hop
    assert load_vocoder(onnx_bundle, "melgan").latency_samples == 0
    assert load_vocoder(onnx_bundle, "melgan_look1_step3").latency_samples == (1 + 2) * hop
    assert load_vocoder(onnx_bundle, "classical").latency_samples == (1 + 2) * hop


def test_state_is_carried_between_pushes(onnx_bundle, mel):
    """Pushing frames one at a time with the state reset each time gives other audio."""
    voc = load_vocoder(onnx_bundle, "melgan")
    carried = np.concatenate([voc.push(mel[:, i:i + 1]) for i in range(10)])
    cut = []
    for i in range(10):
        voc.reset()
        cut.append(voc.push(mel[:, i:i + 1]))
    assert np.abs(carried - np.concatenate(cut)).max() > 1e-3


def test_refinement_moves_towards_a_consistent_spectrogram(onnx_bundle, mel):
    """Deep-Griffin-Lim style: iterations on the network's phase reduce the STFT inconsistency."""
    from melsynth.engine.dsp.features import stft

    voc = load_vocoder(onnx_bundle, "ap_refined")
    real, imag = voc.graph_outputs(mel)  # the graph outputs, ("real", "imag")
    target = np.hypot(real[0], imag[0])

    def inconsistency(audio):  # F*hop samples have F+1 frames: keep (F-1)*hop, F frames
        mag = np.abs(stft(SPEC, audio[:(mel.shape[1] - 1) * SPEC.hop_length]))
        return np.mean(np.abs(mag - target)) / np.mean(target)

    from melsynth.engine.dsp.istft import istft

    raw = istft(SPEC, real[0] + 1j * imag[0])
    assert inconsistency(voc.offline(mel)) < 0.8 * inconsistency(raw)


# --------------------------------------------------------------------------- loading
def test_load_vocoder_errors_name_the_field(tmp_path):
    root = write_bundle(tmp_path / "b", {"classical": {"kind": "classical", "params": {"iterations": -1}},
                                         "ok": {"kind": "classical", "params": {"bogus": 1}},
                                         "mag": {"kind": "classical", "params": {"magnitude_iterations": 1.5}}})
    bundle = load_bundle(root)
    with pytest.raises(BundleError, match=r"vocoders\.classical\.params.*iterations"):
        load_vocoder(bundle)
    with pytest.raises(BundleError, match=r"vocoders\.ok\.params.*bogus"):
        load_vocoder(bundle, "ok")
    with pytest.raises(BundleError, match=r"vocoders\.mag\.params.*magnitude_iterations"):
        load_vocoder(bundle, "mag")
    with pytest.raises(BundleError, match="no vocoder named 'nope'"):
        load_vocoder(bundle, "nope")


def test_default_and_named_vocoders_load(onnx_bundle):
    assert load_vocoder(onnx_bundle).name == "classical"
    voc = load_vocoder(onnx_bundle, "ap_refined")
    assert (voc.name, voc.kind) == ("ap_refined", "amplitude_phase")
    data = json.loads(onnx_bundle.json_path.read_text())
    assert data["vocoders"]["ap_look1_step2"]["streaming"]["frames_per_step"] == 2
