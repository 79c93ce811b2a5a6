"""Render statistics (training.prior.render_stats) on synthetic audio whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("librosa")

from melsynth.training.prior.render_stats import (STAT_KEYS, chroma_movement, contrast_db, flatness, mean_render_stats,
                                         onset_rate, render_stats, stat_ratios)

SR = 11025


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def _tone(f0: float, seconds: float, harmonics: int = 1) -> np.ndarray:
    t = _t(seconds)
    y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, harmonics + 1))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def _click_train(hops_apart: int, seconds: float) -> np.ndarray:
    """Short decaying noise bursts every ``hops_apart`` x 512 samples, each starting on one of
    librosa's frame centres, over a faint noise floor. (At 11025 Hz librosa's default peak
    picking has no wait (30 ms < one 46 ms hop), so a burst between two frame centres may
    count twice: see training.prior.render_stats.)"""
    rng = np.random.default_rng(1)
    y = 0.001 * rng.standard_normal(int(seconds * SR))
    burst = rng.standard_normal(400) * np.exp(-np.arange(400) / 60.0)
    for start in range(4 * 512, y.size - 1024, hops_apart * 512):
        y[start:start + 400] += 0.5 * burst
    return y.astype(np.float32)


def _notes(freqs, note_seconds: float) -> np.ndarray:
    """One plucked harmonic note per frequency, each ``note_seconds`` long, back to back."""
    t = _t(note_seconds)
    env = np.exp(-t / 0.3)
    return np.concatenate([_tone(f, note_seconds, harmonics=4) * env for f in freqs]).astype(np.float32)


@pytest.mark.parametrize("hops_apart", [11, 5])
def test_onset_rate_of_a_click_train_is_its_rate(hops_apart):
    rate = SR / (hops_apart * 512)          # 1.96 and 4.31 clicks per second
    assert onset_rate(_click_train(hops_apart, 10.0)) == pytest.approx(rate, rel=0.1)


def test_onset_rate_of_a_tone_held_after_one_attack_is_one_onset():
    """(librosa scales the onset envelope to its maximum: without any attack, a perfectly steady
    tone's rounding noise would count as onsets.)"""
    y = _tone(220.0, 10.0, harmonics=5)
    y[:SR // 2] = 0.0
    assert onset_rate(y) * 10.0 <= 2


def test_flatness_of_white_noise_far_above_a_sine():
    noise, sine = flatness(_noise(5.0)), flatness(_tone(440.0, 5.0))
    assert noise > 0.3
    assert noise > 100 * sine


def test_contrast_of_a_harmonic_tone_above_noise():
    harmonic = contrast_db(_tone(196.0, 5.0, harmonics=12))
    noise = contrast_db(_noise(5.0))
    assert harmonic > noise + 10


def test_chroma_movement_held_chord_below_chromatic_scale():
    t = _t(8.0)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)).astype(np.float32) * 0.2
    scale = _notes(261.63 * 2 ** (np.arange(32) % 12 / 12), 0.25)
    held, moving = chroma_movement(chord), chroma_movement(scale)
    assert moving > 4 * held
    assert moving > 5.0  # 4 new pitch classes a second, each a large step in chroma


def test_render_stats_keys_and_mean_and_ratios():
    a, b = _click_train(11, 5.0), _notes([220.0, 330.0, 440.0, 550.0], 1.0)
    sa, sb = render_stats(a), render_stats(b)
    assert tuple(sa) == STAT_KEYS and all(np.isfinite(v) for v in sa.values())
    mean = mean_render_stats([a, b])
    for k in STAT_KEYS:
        assert mean[k] == pytest.approx((sa[k] + sb[k]) / 2)
    ratios = stat_ratios(sa, sa)
    assert set(ratios) == {k + "_ratio" for k in STAT_KEYS} and all(v == pytest.approx(1.0) for v in ratios.values())


@pytest.mark.parametrize("bad, sr, match", [
    (np.zeros(SR, np.float32), 22050, "11025 Hz"),
    (np.zeros((2, SR), np.float32), SR, "mono"),
    (np.zeros(100, np.float32), SR, "shorter"),
    (np.full(SR, np.nan, np.float32), SR, "NaN"),
])
def test_bad_audio_is_a_clear_error(bad, sr, match):
    with pytest.raises(ValueError, match=match):
        render_stats(bad, sr)
