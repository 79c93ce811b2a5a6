"""The optimised engine.dsp.phase.StreamingPhase gives the frozen original's audio (phase_reference.py)."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.engine.dsp.features import MelSpec, log_mel, stft
from melsynth.engine.dsp.magnitude import MelMagnitude
from melsynth.engine.dsp.phase import INIT_METHODS, PhaseConfig, StreamingPhase
from tests.engine.dsp.phase_reference import StreamingPhase as ReferencePhase

SPEC = MelSpec()
# float32 audio in [-1, 1]; the two implementations do the same float32 operations, so the
# outputs are expected to be equal; this leaves room for a changed summation order only
ATOL = 1e-5


def _music(seconds=1.2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SPEC.sample_rate)) / SPEC.sample_rate
    x = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.25):  # decaying notes with harmonics, and a silent lead-in
        f0 = rng.uniform(80, 900)
        env = np.where(t >= start + 0.05, np.exp(-(t - start) * rng.uniform(2, 8)), 0)
        x += sum(env * np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def mags():
    """The classical vocoder's magnitudes of some notes, and an STFT's (with its phases)."""
    audio = _music()
    frames = stft(SPEC, audio)
    return MelMagnitude(SPEC, 3)(log_mel(SPEC, audio)), np.abs(frames), np.angle(frames)


def _stream(phase, mag, handed, seed):
    """Random push sizes, then flush."""
    rng = np.random.default_rng(seed)
    parts, i = [], 0
    while i < mag.shape[1]:
        k = int(rng.integers(1, 9))
        parts.append(phase.push(mag[:, i:i + k], None if handed is None else handed[:, i:i + k]))
        i += k
    parts.append(phase.flush())
    return np.concatenate(parts)


CONFIGS = [PhaseConfig(init=init) for init in INIT_METHODS] + [
    PhaseConfig(iterations=3, lookahead=0, init="gradient"),
    PhaseConfig(iterations=2, lookahead=0, init="partial"),
    PhaseConfig(iterations=1, lookahead=3, momentum=0.5, init="advance"),
    PhaseConfig(iterations=4, lookahead=1, momentum=0.0, init="partial"),
    PhaseConfig(iterations=0, lookahead=2, init="gradient"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("source", ["classical", "stft"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "numpy"])
def test_equals_the_original(mags, config, source, fast):
    mag = mags[0] if source == "classical" else mags[1]
    new, ref = StreamingPhase(SPEC, config, fast=fast), ReferencePhase(SPEC, config)
    offline = new.offline(mag)
    np.testing.assert_allclose(offline, ref.offline(mag), rtol=0, atol=ATOL)
    streamed = _stream(new, mag, None, seed=3)
    np.testing.assert_allclose(streamed, _stream(ref, mag, None, seed=4), rtol=0, atol=ATOL)
    np.testing.assert_array_equal(streamed[new.latency_samples:], offline)


@pytest.mark.parametrize("config", [PhaseConfig(), PhaseConfig(iterations=2, lookahead=1, momentum=0.99)], ids=str)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "numpy"])
def test_equals_the_original_with_handed_in_phases(mags, config, fast):
    _, mag, angle = mags
    noisy = angle + np.random.default_rng(0).normal(0, 0.5, angle.shape)
    new, ref = StreamingPhase(SPEC, config, fast=fast), ReferencePhase(SPEC, config)
    offline = new.offline(mag, noisy)
    np.testing.assert_allclose(offline, ref.offline(mag, noisy), rtol=0, atol=ATOL)
    streamed = _stream(new, mag, noisy, seed=5)
    np.testing.assert_allclose(streamed, _stream(ref, mag, noisy, seed=6), rtol=0, atol=ATOL)
    np.testing.assert_array_equal(streamed[new.latency_samples:], offline)


def test_a_reused_instance_equals_a_fresh_one(mags):
    """State left by one stream (buffers, cached weights) does not leak into the next."""
    mag = mags[0]
    phase = StreamingPhase(SPEC)
    first = phase.offline(mag[:, :40])
    phase.push(mag[:, 40:70])  # abandoned mid-stream
    phase.reset()
    np.testing.assert_array_equal(phase.offline(mag[:, :40]), first)
    np.testing.assert_array_equal(StreamingPhase(SPEC).offline(mag), phase.offline(mag))


def test_the_fast_paths_are_in_use_here():
    """On this machine the numba kernels and scipy's FFT reproduce numpy's bits, so the engine
    uses them (if this fails, the engine still works, only slower: see engine.dsp.phase)."""
    pytest.importorskip("numba")
    phase = StreamingPhase(SPEC)
    assert phase._kernels is not None
    assert phase._fft._scipy is not None
