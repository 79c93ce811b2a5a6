"""engine.dsp.phase: RTISI-LA real-time phase reconstruction."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.engine.dsp.features import MelSpec, analysis_window, stft
from melsynth.engine.dsp.phase import PhaseConfig, StreamingPhase

SPEC = MelSpec()
HOP, N = SPEC.hop_length, SPEC.n_fft


def _tones(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SPEC.sample_rate)) / SPEC.sample_rate
    x = sum(np.sin(2 * np.pi * f * t + p) / (i + 1)
            for i, (f, p) in enumerate(zip(rng.uniform(100, 2000, 6), rng.uniform(0, 6, 6))))
    x *= np.minimum(1.0, t / 0.1)  # an onset
    return 0.2 * x / np.abs(x).max()


def _spectral_error(audio, target_mag):
    mag = np.abs(stft(SPEC, audio[:(target_mag.shape[1] - 1) * HOP]))
    return float(np.sum((mag - target_mag) ** 2) / np.sum(target_mag ** 2))


def _reference_rtisi_la(mag, iterations, lookahead):
    """RTISI-LA written the slow, obvious way (whole signal rebuilt for every update,
    Jacobi updates of the look-ahead window, "partial" start, no momentum)."""
    w = analysis_window(SPEC)
    F = mag.shape[1]
    X = np.zeros((F, SPEC.n_freqs), complex)
    length = (F - 1) * HOP + N  # frame t spans [t*hop, t*hop + n_fft) of the padded signal

    def rebuild(upto):
        num, env = np.zeros(length), np.zeros(length)
        for t in range(upto):
            num[t * HOP:t * HOP + N] += w * np.fft.irfft(X[t], N)
            env[t * HOP:t * HOP + N] += w * w
        return np.where(env > 1e-10, num / np.where(env > 1e-10, env, 1), 0)

    for m in range(F + lookahead):
        if m < F:  # start phase: what the frames before put under frame m
            c = np.fft.rfft(w * rebuild(m)[m * HOP:m * HOP + N])
            X[m] = mag[:, m] * np.where(np.abs(c) > 1e-12, c / np.maximum(np.abs(c), 1e-12), 1)
        top = min(m, F - 1)
        for _ in range(iterations):
            y = rebuild(top + 1)
            for t in range(max(0, m - lookahead), top + 1):
                c = np.fft.rfft(w * y[t * HOP:t * HOP + N])
                X[t] = mag[:, t] * c / np.maximum(np.abs(c), 1e-12)
    return rebuild(F)[N // 2:N // 2 + F * HOP]


def test_matches_the_textbook_algorithm():
    mag = np.abs(stft(SPEC, _tones(0.35)))
    config = PhaseConfig(iterations=3, lookahead=2, momentum=0.0, init="partial")
    fast = StreamingPhase(SPEC, config).offline(mag)
    slow = _reference_rtisi_la(mag, 3, 2)
    # float32 engine vs float64 reference
    np.testing.assert_allclose(fast, slow, atol=2e-4 * np.abs(slow).max())


@pytest.mark.parametrize("config", [PhaseConfig(), PhaseConfig(iterations=3, lookahead=0, init="partial"),
                                    PhaseConfig(iterations=1, lookahead=3, momentum=0.5)])
def test_streaming_equals_offline_exactly(config):
    mag = np.abs(stft(SPEC, _tones(0.8, seed=1)))
    phase = StreamingPhase(SPEC, config)
    offline = phase.offline(mag)
    rng = np.random.default_rng(7)
    parts, i = [], 0
    while i < mag.shape[1]:
        k = int(rng.integers(1, 17))
        parts.append(phase.push(mag[:, i:i + k]))
        i += k
    parts.append(phase.flush())
    s = np.concatenate(parts)
    assert phase.latency_samples == (config.lookahead + 2) * HOP
    assert s.size == offline.size + phase.latency_samples
    np.testing.assert_array_equal(s[phase.latency_samples:], offline)


def test_more_iterations_give_a_more_consistent_spectrogram():
    x = _tones(1.0, seed=2)
    mag = np.abs(stft(SPEC, x))
    errors = [_spectral_error(StreamingPhase(SPEC, PhaseConfig(iterations=i)).offline(mag), mag) for i in (0, 2, 8)]
    assert errors[0] > 1.5 * errors[1] > 1.5 * errors[2]
    assert errors[2] < 0.05


def test_a_true_phase_handed_in_is_kept():
    """A consistent spectrogram is a fixed point: the true phase in gives the signal back."""
    x = _tones(0.6, seed=3)
    frames = stft(SPEC, x)
    for iterations in (0, 4):
        y = StreamingPhase(SPEC, PhaseConfig(iterations=iterations)).offline(np.abs(frames), np.angle(frames))
        np.testing.assert_allclose(y[:x.size], x, atol=2e-4)


def test_handed_in_phase_is_a_better_start_than_none():
    x = _tones(1.0, seed=4)
    frames = stft(SPEC, x)
    noisy = np.angle(frames) + np.random.default_rng(0).normal(0, 0.3, frames.shape)
    config = PhaseConfig(iterations=1)
    with_phase = _spectral_error(StreamingPhase(SPEC, config).offline(np.abs(frames), noisy), np.abs(frames))
    without = _spectral_error(StreamingPhase(SPEC, config).offline(np.abs(frames)), np.abs(frames))
    assert with_phase < without


def test_silence_stays_silent_and_finite():
    out = StreamingPhase(SPEC).offline(np.zeros((SPEC.n_freqs, 10)))
    assert out.shape == (10 * HOP,) and not np.any(out)


@pytest.mark.parametrize("bad", [dict(iterations=-1), dict(lookahead=9), dict(momentum=1.0), dict(init="magic")])
def test_bad_settings_are_named(bad):
    key = next(iter(bad))
    with pytest.raises(ValueError, match=key):
        PhaseConfig(**bad)
    with pytest.raises(ValueError, match="unknown phase setting"):
        PhaseConfig.from_dict({"iteration": 3})


def test_shape_errors():
    phase = StreamingPhase(SPEC)
    with pytest.raises(ValueError, match="513"):
        phase.push(np.zeros((256, 3)))
    with pytest.raises(ValueError, match="phase shape"):
        phase.push(np.zeros((513, 3)), np.zeros((513, 2)))


def test_gradient_start_finds_a_partial_between_bins():
    """The start phase advances the bins under an off-bin partial by the partial's
    frequency (from the magnitude's slope), not by their bin centres'."""
    t = np.arange(SPEC.sample_rate) / SPEC.sample_rate
    f = 40.4 * SPEC.sample_rate / N  # 0.4 bin above bin 40
    frames = stft(SPEC, 0.3 * np.sin(2 * np.pi * f * t))
    true_step = np.angle(frames[40, 11] / frames[40, 10])
    step = StreamingPhase(SPEC)._gradient_step(np.abs(frames[:, 10]))
    centre = 2 * np.pi * np.arange(SPEC.n_freqs) * HOP / N
    for k in (40, 41):
        assert abs(np.angle(np.exp(1j * (step[k] - true_step)))) < 0.05
        assert abs(np.angle(np.exp(1j * (centre[k] - true_step)))) > 0.6


def test_gradient_start_beats_the_other_starts_on_music():
    x = _tones(1.0, seed=5)
    mag = np.abs(stft(SPEC, x))
    errors = {init: _spectral_error(StreamingPhase(SPEC, PhaseConfig(iterations=1, init=init)).offline(mag), mag)
              for init in ("gradient", "advance", "partial")}
    assert errors["gradient"] < min(errors["advance"], errors["partial"])
