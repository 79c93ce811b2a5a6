"""Safety stage: finite, within +-1, DC removed, limiter transparent below threshold, stateful."""
import numpy as np
import pytest

from melsynth.engine.dsp.safety import DCBlocker, Limiter, SafetyStage

SR = 11025


def test_nonfinite_become_zero_and_bounded():
    s = SafetyStage(SR)
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.5, 3.0e38], dtype=np.float32)
    y = s.process(np.tile(x, 100))
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
    assert s.nonfinite_samples == 300
    # after garbage, a quiet signal comes through again (state was not poisoned)
    t = np.arange(SR) / SR
    quiet = 0.2 * np.sin(2 * np.pi * 440 * t)
    out = s.process(quiet)
    assert np.all(np.isfinite(out))
    assert abs(np.max(np.abs(out[-2000:])) - 0.2) < 0.02


def test_dc_is_blocked():
    s = SafetyStage(SR)
    t = np.arange(3 * SR) / SR
    y = s.process(0.5 + 0.1 * np.sin(2 * np.pi * 300 * t))
    tail = y[-SR:]
    assert abs(tail.mean()) < 2e-3
    assert 0.09 < np.max(np.abs(tail)) < 0.11  # the tone passes


def test_dc_blocker_is_the_one_pole_recursion():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(5000) + 0.3
    r = DCBlocker(SR).r
    want = np.empty_like(x)
    x1 = y1 = 0.0
    for n, v in enumerate(x):  # the textbook loop
        y1 = v - x1 + r * y1
        x1 = v
        want[n] = y1
    dc = DCBlocker(SR)
    got = np.concatenate([dc.process(x[i:i + 777]) for i in range(0, x.size, 777)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_limiter_is_transparent_below_threshold():
    t = np.arange(SR) / SR
    x = 0.5 * np.sin(2 * np.pi * 220 * t)
    lim = Limiter(SR, threshold=0.9)
    np.testing.assert_allclose(lim.process(x), x, atol=1e-12)
    assert lim.min_gain == 1.0


def test_limiter_holds_every_sample_and_recovers():
    t = np.arange(2 * SR) / SR
    loud = 20.0 * np.sin(2 * np.pi * 220 * t)
    s = SafetyStage(SR)
    y = s.process(np.concatenate([loud, 0.3 * np.sin(2 * np.pi * 220 * t)]))
    assert np.max(np.abs(y)) <= 1.0
    assert np.max(np.abs(y[:2 * SR])) > 0.85  # limited, not muted
    assert s.limiter.min_gain < 0.06
    assert np.max(np.abs(y[-SR // 2:])) > 0.28  # released back to unity afterwards


def test_streaming_equals_one_call_below_threshold():
    """DC blocker, gain and an idle limiter carry their state: any chunking gives the same samples.

    (Above the threshold the limiter's sub-blocks follow chunk boundaries; the engine
    chunks identically live and offline, so that never separates the two.)
    """
    rng = np.random.default_rng(0)
    x = np.clip(rng.standard_normal(20000) * 0.2, -0.6, 0.6) + 0.2
    x[100:110] = np.nan
    whole = SafetyStage(SR).process(x, gain=1.0)
    s = SafetyStage(SR)
    parts, pos = [], 0
    for n in rng.integers(1, 700, 200):
        parts.append(s.process(x[pos:pos + n]))
        pos += n
        if pos >= x.size:
            break
    parts.append(s.process(x[pos:]))
    streamed = np.concatenate(parts)
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    assert np.max(np.abs(whole)) < 0.9 and np.any(whole != 0)


def test_gain_ramps_without_a_step():
    s = SafetyStage(SR)
    x = np.full(4096, 0.0) + 0.4 * np.sin(np.arange(4096) * 0.05)
    s.process(x, gain=1.0)
    y = s.process(x, gain=0.0)
    env = np.abs(y[:256])
    assert env.max() > 0.1  # not cut at once ...
    assert np.max(np.abs(y[-16:])) < 1e-3  # ... but down by the end of the chunk
    assert np.max(np.abs(np.diff(y))) < 0.1


def test_one_pass_kernel_equals_the_numpy_stages():
    """The numba pass and the numpy stages agree sample for sample, state included, whatever comes in."""
    rng = np.random.default_rng(7)
    fast, ref = SafetyStage(SR), SafetyStage(SR, fast=False)
    assert fast._kernel is not None   # numba works here; otherwise this compares numpy with itself
    for n in rng.integers(1, 900, 120):
        x = (rng.standard_normal(n) * rng.choice([0.05, 0.5, 3.0, 40.0]) + rng.uniform(-0.3, 0.3)).astype(np.float32)
        if rng.random() < 0.2:
            x[rng.integers(0, n, 3)] = rng.choice([np.nan, np.inf, -np.inf, 1e30])
        gain = float(rng.choice([1.0, 1.0, 0.5, 2.0, 0.0]))
        a, b = fast.process(x, gain), ref.process(x, gain)
        assert a.dtype == np.float32 and np.max(np.abs(a)) <= 1.0
        np.testing.assert_allclose(a, b, atol=2e-6)
    assert fast.nonfinite_samples == ref.nonfinite_samples > 0
    assert fast.limiter.min_gain == pytest.approx(ref.limiter.min_gain, rel=1e-9) and ref.limiter.min_gain < 0.1
    assert fast.limiter.gain == pytest.approx(ref.limiter.gain, rel=1e-9)
    assert fast.dc._zi[0] == pytest.approx(ref.dc._zi[0], rel=1e-9, abs=1e-12)
