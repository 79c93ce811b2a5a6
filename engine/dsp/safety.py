"""Output safety: whatever a model emits, the device gets finite samples within +-1.0.

Stages, in order, all stateful across chunks so streaming equals one long call::

    x -> non-finite to 0 -> clamp +-1e4 -> DC blocker -> gain (ramped) -> limiter -> hard clip +-1

* DC blocker: one-pole high-pass ``y[n] = x[n] - x[n-1] + R y[n-1]`` (about 10 Hz);
  a vocoder with a DC offset would otherwise eat the limiter's headroom.
* Limiter: no look-ahead (it would add latency). Gain is computed per sub-block
  of ``block`` samples: it drops at once to ``threshold / peak`` when a sub-block
  would exceed the threshold and recovers exponentially (``release_ms``),
  interpolated sample by sample so recovery is smooth::

      gain 1.0 ────┐          ╭──────   release: linear within each sub-block
                   └──╮   ╭───╯
                      └───╯            attack: instantaneous at a sub-block start

  The final hard clip guarantees the +-1.0 bound whatever the limiter let through
  (and it is also what a resampler's overshoot meets downstream).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from melsynth.engine import kernels

INPUT_CLAMP = 1e4  # beyond this a sample is garbage anyway; keeps float math finite
_DC_BLOCK = 256  # samples per product of the DC blocker's numpy path (a 512 KiB matrix)


def sanitize_audio(x: np.ndarray) -> np.ndarray:
    """Non-finite -> 0 and clamp to +-INPUT_CLAMP, as float64 (new array)."""
    y = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(y, -INPUT_CLAMP, INPUT_CLAMP, out=y)


class DCBlocker:
    """One-pole DC blocker with carried state (``(samples,) -> (samples,)`` float64).

    ``y[n] = x[n] - x[n-1] + R y[n-1]``, carried between chunks as the transposed direct form's
    state ``zi = R y[n] - x[n]`` (what scipy's ``lfilter`` carries). Computed a block of
    ``_DC_BLOCK`` samples at a time as one product with the recursion's impulse responses
    (``y = T e``, ``T[i, j] = R^(i - j)``): numpy has no recursive filter, and scipy.signal's
    takes the app's start more than half a second to import.
    """

    def __init__(self, sample_rate: int, cutoff_hz: float = 10.0):
        self.r = math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
        self._zi = np.zeros(1, dtype=np.float64)
        lag = np.subtract.outer(np.arange(_DC_BLOCK), np.arange(_DC_BLOCK))
        self._response = np.where(lag >= 0, self.r ** np.maximum(lag, 0), 0.0)

    def reset(self) -> None:
        self._zi = np.zeros(1, dtype=np.float64)

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.empty(x.size, dtype=np.float64)
        z = float(self._zi[0])
        for b0 in range(0, x.size, _DC_BLOCK):
            xb = x[b0:b0 + _DC_BLOCK]
            m = xb.size
            e = np.empty(m)  # the recursion's input: x[n] - x[n-1], the carried state first
            e[0] = xb[0] + z
            np.subtract(xb[1:], xb[:-1], out=e[1:])
            np.matmul(self._response[:m, :m], e, out=y[b0:b0 + m])
            z = self.r * y[b0 + m - 1] - xb[-1]
        self._zi = np.array([z])
        return y


class Limiter:
    """Peak limiter without look-ahead; see the module docstring."""

    def __init__(self, sample_rate: int, threshold: float = 0.9, release_ms: float = 120.0, block: int = 32):
        if not 0 < threshold <= 1.0:
            raise ValueError(f"limiter threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.block = block
        # per sub-block recovery factor towards 1.0
        self.recover = 1.0 - math.exp(-block / (release_ms * 1e-3 * sample_rate))
        self.gain = 1.0
        self.min_gain = 1.0  # lowest gain applied since reset (for tests and the meter)
        self._ramps: dict[int, np.ndarray] = {}
        self.idle = True  # the last chunk passed untouched (every sample within the threshold)

    def reset(self) -> None:
        self.gain = 1.0
        self.min_gain = 1.0

    def _ramp(self, m: int) -> np.ndarray:
        """``(m,)`` fractions 1/m .. 1 of a linear ramp across a sub-block of ``m`` samples (cached)."""
        r = self._ramps.get(m)
        if r is None:
            r = self._ramps[m] = np.arange(1, m + 1, dtype=np.float64) / m
        return r

    def process(self, x: np.ndarray) -> np.ndarray:
        n = x.size
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        peak_all = float(abs(x).max())
        if self.gain == 1.0 and peak_all <= self.threshold:
            self.idle = True
            return x  # idle: transparent and cheap
        self.idle = False
        b = self.block
        nb = -(-n // b)
        padded = np.zeros(nb * b, dtype=np.float64)
        padded[:n] = np.abs(x)
        peaks = padded.reshape(nb, b).max(axis=1)
        start = np.empty(nb)
        end = np.empty(nb)
        g_prev = self.gain
        thr, rec = self.threshold, self.recover
        for i, peak in enumerate(peaks.tolist()):  # scalar recursion, one step per sub-block
            needed = thr / peak if peak > thr else 1.0
            g = min(needed, g_prev + (1.0 - g_prev) * rec)
            start[i] = g if g < g_prev else g_prev  # attack: jump down at once; release: ramp
            end[i] = g
            g_prev = g
        self.gain = g_prev
        self.min_gain = min(self.min_gain, float(end.min()))
        full = n // b
        gain = np.empty(nb * b)
        if full:
            gain[: full * b] = (start[:full, None] + (end[:full] - start[:full])[:, None]
                                * self._ramp(b)[None, :]).ravel()
        if full < nb:
            m = n - full * b
            gain[full * b: full * b + m] = start[-1] + (end[-1] - start[-1]) * self._ramp(m)
        return x * gain[:n]


def _safety_kernel(x, out, scratch, state, gain_to, r, threshold, recover, block, clamp):
    """The whole chain in one pass over ``x`` (numba): ``out[:] = chain(x)``; returns the non-finite count.

    ``state`` float64 ``[dc z, limiter gain, limiter min gain, user gain]`` is read and
    written back. The same arithmetic as ``DCBlocker`` (lfilter's transposed direct
    form), the gain ramp and ``Limiter``, sub-block by sub-block; ``scratch`` holds
    one sub-block of filtered samples while its peak is found.
    """
    n = x.shape[0]
    z, g_prev, g_min, g_from = state[0], state[1], state[2], state[3]
    ramp_gain = g_from != gain_to
    nonfinite = 0
    for b0 in range(0, n, block):
        m = min(block, n - b0)
        peak = 0.0
        for j in range(m):
            i = b0 + j
            v = np.float64(x[i])
            if not np.isfinite(v):
                v = 0.0
                nonfinite += 1
            elif v > clamp:
                v = clamp
            elif v < -clamp:
                v = -clamp
            y = v + z
            z = r * y - v
            if ramp_gain:
                y = y * (g_from + (gain_to - g_from) * (i + 1) / n)
            elif gain_to != 1.0:
                y = y * gain_to
            scratch[j] = y
            a = abs(y)
            if a > peak:
                peak = a
        needed = threshold / peak if peak > threshold else 1.0
        g = min(needed, g_prev + (1.0 - g_prev) * recover)
        start = g if g < g_prev else g_prev  # attack at once, release as a ramp
        for j in range(m):
            v = scratch[j] * (start + (g - start) * ((j + 1) / m))
            out[b0 + j] = min(1.0, max(-1.0, v))
        g_prev = g
        if g < g_min:
            g_min = g
    state[0], state[1], state[2], state[3] = z, g_prev, g_min, gain_to
    return nonfinite


try:  # numba is a dependency; without it (or if it fails) the numpy stages below do the same
    import numba

    _safety_jit = numba.njit(cache=True, nogil=True)(_safety_kernel)
except ImportError:  # pragma: no cover
    _safety_jit = None


@functools.lru_cache(maxsize=None)
def _kernel_works() -> bool:
    """Whether the numba pass compiles (or loads from numba's cache) here: once per process,
    in whichever thread asks first (``engine.stream.warmup``), never in the producer's first step."""
    if _safety_jit is None:
        return False
    try:
        x = np.zeros(1, dtype=np.float32)
        _safety_jit(x, np.empty(1, np.float32), np.zeros(32), np.array([0.0, 1.0, 1.0, 1.0]), 1.0, 0.99, 0.9,
                    0.1, 32, INPUT_CLAMP)
        return True
    except Exception:  # noqa: BLE001 - numba that cannot compile here: numpy it is
        return False


class SafetyStage:
    """The whole safety chain for one stream: ``(samples,) float -> (samples,) float32 in [-1, 1]``.

    ``gain`` (linear) ramps from the previous chunk's value so gain moves do not zipper.
    One numba pass (``_safety_kernel``) does it all where numba works: the numpy
    stages took 85 us per 256 samples, most of it call overhead; ``fast=False``
    (or no numba) runs them.
    """

    def __init__(self, sample_rate: int, dc_cutoff_hz: float = 10.0, threshold: float = 0.9,
                 release_ms: float = 120.0, fast: bool = True):
        self.dc = DCBlocker(sample_rate, dc_cutoff_hz)
        self.limiter = Limiter(sample_rate, threshold, release_ms)
        self._gain = 1.0
        self.nonfinite_samples = 0
        self._fast = bool(fast)
        self._kernel = None
        self._scratch = np.zeros(self.limiter.block, dtype=np.float64)
        self._state = np.zeros(4, dtype=np.float64)
        if not kernels.deferred():
            self.use_kernels()

    def use_kernels(self) -> None:
        """The numba pass from the next chunk on, where it works (the state carries over: it is
        the numpy stages' own)."""
        if self._fast and self._kernel is None and _kernel_works():
            self._kernel = _safety_jit

    def reset(self) -> None:
        self.dc.reset()
        self.limiter.reset()
        self._gain = 1.0
        self.nonfinite_samples = 0

    def _run_kernel(self, x: np.ndarray, gain: float) -> np.ndarray:
        if x.dtype != np.float32 and x.dtype != np.float64:
            x = x.astype(np.float64)
        out = np.empty(x.size, dtype=np.float32)
        st, lim = self._state, self.limiter
        st[0], st[1], st[2], st[3] = self.dc._zi[0], lim.gain, lim.min_gain, self._gain
        self.nonfinite_samples += self._kernel(np.ascontiguousarray(x), out, self._scratch, st, gain, self.dc.r,
                                               lim.threshold, lim.recover, lim.block, INPUT_CLAMP)
        self.dc._zi[0], lim.gain, lim.min_gain, self._gain = st[0], st[1], st[2], st[3]
        lim.idle = False
        return out

    def process(self, x: np.ndarray, gain: float = 1.0) -> np.ndarray:
        x = np.asarray(x).ravel()
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        gain = float(gain) if math.isfinite(gain) else 0.0
        gain = min(max(gain, 0.0), 16.0)
        if self._kernel is not None:
            return self._run_kernel(x, gain)
        peak = float(abs(x).max())
        if not peak <= INPUT_CLAMP:  # NaN, inf or garbage-sized: the slow, careful path
            self.nonfinite_samples += x.size - int(np.count_nonzero(np.isfinite(x)))
            x = sanitize_audio(x)
        y = self.dc.process(x)
        if gain != self._gain:
            y = y * np.linspace(self._gain, gain, y.size + 1)[1:]
            self._gain = gain
        elif gain != 1.0:
            y = y * gain
        y = self.limiter.process(y)
        out = y.astype(np.float32)
        if not self.limiter.idle:  # an idle limiter already saw every sample within its threshold
            np.clip(out, -1.0, 1.0, out=out)
        return out
