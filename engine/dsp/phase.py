"""Real-time phase reconstruction: RTISI-LA (Zhu, Beauregard & Wyse 2007) in numpy.

Griffin-Lim over a sliding window of the newest frames. Each new frame gets a
start phase (by default the previous frame's phase advanced by each bin's
frequency as the magnitude's slope across bins estimates it: real-time
phase-gradient integration; or one handed in by a neural vocoder), then
``iterations`` Griffin-Lim iterations run over the ``lookahead + 1``
uncommitted frames together (Jacobi updates, one batched FFT each way), and
the oldest of them is committed to the overlap-add for good. Every frame so
takes part in ``(lookahead + 1) * iterations`` iterations, always against the
frames it overlaps; committed frames stay fixed.

Buffer layout (``n_fft = 4 * hop``, ``lookahead = 2``; ``c`` = next frame to
commit, ``m`` = newest frame, ``bo`` = next block to emit)::

    sample   bo*hop - n_fft/2  (num / env index _base; they slide right one hop per
             |                  block out, and move back to index 0 when at the end)
             |committed frames' num / env ....................|
                  |frame c   ---- active, iterated ----|
                       |frame c+1 ------------------------|
                            |frame m = c+2 -----------------------|
    emitted block bo is final when frame bo + D is committed (D = 2)

so a frame pushed now comes out ``(lookahead + D) * hop`` samples later:
``latency_samples``. The offline path is the same loop run over all frames, so
streaming equals offline exactly, whatever the step sizes.

Iterations use librosa's fast Griffin-Lim momentum (Perraudin et al. 2013)
per frame, carried across steps. Work is float32 but for the forward FFT,
which runs in float64 as ``np.fft.rfft`` does for float32 input (numpy >= 2).

Speed: a frame costs ``iterations`` x (2 batched FFTs + a few small array
operations), so the per-call overhead of numpy on arrays of a few thousand
values matters as much as the FFTs. The active frames live in preallocated
row buffers, the FFTs call pocketfft directly (SIMD over 4 frames), and the
operations between them run as numba kernels (``engine.dsp.phase_kernels``) where
numba is there; every fast path is used only where it gives the plain numpy
path's bits (Griffin-Lim turns a 1-ulp difference into a different, equally
good phase), so the output is the same as before and on every machine
that passes the checks. ``benchmarks/phase_speed.py`` times it.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from melsynth.engine import kernels
from melsynth.engine.dsp.features import MelSpec, analysis_window
from melsynth.engine.dsp.istft import latency_frames

log = logging.getLogger(__name__)

_ENVELOPE_FLOOR = 1e-10
_TINY = 1e-12
_TINY32 = np.float32(_TINY)
INIT_METHODS = ("gradient", "advance", "partial")
# Time-frequency spread of the Hann window as a Gaussian's (ltfat's pghi 'hann' constant).
_HANN_GAMMA = 0.25645
# num/env slide this many extra blocks before being moved back (one copy per _SLACK_BLOCKS blocks)
_SLACK_BLOCKS = 32
# Rows of a batched FFT are padded to a multiple of this: pocketfft's SIMD width for float32
# on x86-64 wheels (SSE2), so scipy transforms 4 frames about as fast as 2.
_FFT_ROWS = 4


def _simd_rows(n: int) -> int:
    return -(-n // _FFT_ROWS) * _FFT_ROWS


class _RealFFT:
    """Batched real FFTs of ``n_fft`` points along the last axis, bit-identical to ``np.fft``.

    ``irfft``: complex64 ``(rows, n_fft/2 + 1)`` -> float32 ``(rows, n_fft)``, in float32 as
    ``np.fft.irfft`` computes it. ``rfft``: float64 ``(rows, n_fft)`` holding float32 values
    -> complex128 ``(rows, n_fft/2 + 1)`` (a view of a buffer), as ``np.fft.rfft`` computes
    float32 input before rounding to complex64. Calls scipy's pocketfft directly, which
    transforms several rows at once in SIMD and skips ``np.fft``'s argument handling (more
    than a 1024-point transform costs here), where it gives numpy's bits (checked once per
    size); ``np.fft`` otherwise.
    """

    def __init__(self, n_fft: int, rows: int, use_scipy: bool = True):
        self.n_fft = n_fft
        self._wide = np.zeros((rows, n_fft // 2 + 1), np.complex128)
        self._axes = [-1]
        self._scipy = None
        if use_scipy:
            self.use_scipy()

    def use_scipy(self) -> None:
        """scipy's pocketfft from the next transform on, where it gives np.fft's bits (importing
        scipy.fft costs a start a few tenths of a second: the app leaves it for later)."""
        self._scipy = _scipy_fft() if _scipy_matches_numpy(self.n_fft) else None

    def irfft(self, spectra: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self._scipy is None:
            out[...] = np.fft.irfft(spectra, n=self.n_fft, axis=-1)
            return out
        # positional: (a, axes, lastsize, forward, inorm = 2: scale by 1/n, out)
        return self._scipy.c2r(spectra, self._axes, self.n_fft, False, 2, out)

    def rfft(self, frames: np.ndarray) -> np.ndarray:
        wide = self._wide[:frames.shape[0]]
        if self._scipy is None:
            wide[...] = np.fft.rfft(frames, axis=-1)
            return wide
        # positional: (a, axes, forward, inorm = 0: no scaling, out)
        return self._scipy.r2c(frames, self._axes, True, 0, wide)


def _scipy_fft():
    try:
        from scipy.fft._pocketfft import pypocketfft
    except ImportError:  # pragma: no cover - other scipy builds
        return None
    return pypocketfft


@functools.lru_cache(maxsize=None)
def _scipy_matches_numpy(n_fft: int) -> bool:
    """Whether scipy's pocketfft gives np.fft's bits for float32 frames."""
    fft = _scipy_fft()
    if fft is None:
        return False
    rng = np.random.default_rng(0)
    rows = _FFT_ROWS + 1  # SIMD rows and a scalar one
    spectra = (rng.standard_normal((rows, n_fft // 2 + 1)) + 1j * rng.standard_normal((rows, n_fft // 2 + 1)))
    spectra = spectra.astype(np.complex64)
    frames = rng.standard_normal((rows, n_fft)).astype(np.float32)
    try:
        signal = fft.c2r(spectra, axes=[-1], lastsize=n_fft, forward=False, inorm=2)
        spectrum = fft.r2c(frames.astype(np.float64), axes=[-1], forward=True, inorm=0).astype(np.complex64)
    except Exception:  # pragma: no cover - an incompatible private API
        return False
    return (np.array_equal(signal, np.fft.irfft(spectra, n=n_fft, axis=-1))
            and np.array_equal(spectrum, np.fft.rfft(frames, axis=-1)))


@dataclass(frozen=True)
class PhaseConfig:
    """Quality/CPU settings of the real-time phase reconstruction.

    ``iterations``: Griffin-Lim iterations per new frame over the window.
    ``lookahead``: uncommitted frames after the one being committed (latency).
    ``momentum``: fast Griffin-Lim momentum (0 = plain Griffin-Lim).
    ``init``: start phase of a new frame without a handed-in phase:
    "gradient" (the previous frame's phase advanced by each bin's frequency as
    estimated from the magnitude's slope across bins: real-time phase-gradient
    integration in time, Prusa & Holighaus 2017), "advance" (advanced by each
    bin's centre frequency) or "partial" (the phase of what the committed and
    active frames already put under it: the original RTISI start). Measured on
    the corpus's validation split at 4 iterations: 1.006 / 1.019 / 1.063 x
    Griffin-Lim-64's MR-STFT error.
    """

    iterations: int = 6
    lookahead: int = 2
    momentum: float = 0.99
    init: str = "gradient"

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(f"iterations must be an int >= 0, got {self.iterations!r}")
        if not isinstance(self.lookahead, int) or not 0 <= self.lookahead <= 8:
            raise ValueError(f"lookahead must be an int in 0..8, got {self.lookahead!r}")
        if not 0.0 <= float(self.momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.init not in INIT_METHODS:
            raise ValueError(f"init must be one of {INIT_METHODS}, got {self.init!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PhaseConfig":
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown phase setting(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**data)


class StreamingPhase:
    """RTISI-LA: ``push(mag (n_freqs, k)[, phase]) -> (k*hop,)`` audio, ``flush() -> (latency_samples,)``.

    ``mag`` is the target linear magnitude (e.g. ``mel_to_linear``); ``phase``
    (same shape, radians), when given, replaces the start phase of each new
    frame (a neural vocoder's estimate refined by the iterations). ``fast=False``
    keeps to numpy between the FFTs (the same output; for tests and comparisons).
    """

    def __init__(self, spec: MelSpec, config: PhaseConfig = PhaseConfig(), *, fast: bool = True):
        self.spec = spec
        self.config = config
        self.hop = spec.hop_length
        self.n_fft = spec.n_fft
        self.n_freqs = spec.n_freqs
        self.delay = latency_frames(spec)
        self.window = analysis_window(spec).astype(np.float32)
        self.window_sq = self.window * self.window
        self.n_active_max = config.lookahead + 1
        self.latency_samples = (config.lookahead + self.delay) * self.hop
        self._alpha = config.momentum / (1.0 + config.momentum)
        self._alpha32 = np.float32(self._alpha)  # as numpy rounds it for complex64 arrays
        # Logical buffer length; its index 0 is sample bo*hop - n_fft/2, so frame t starts at (t - bo) * hop.
        self.length = (config.lookahead + self.delay + 2) * self.hop + self.n_fft
        # bin k advances 2 pi k hop / n_fft radians per frame
        self._centre_step = 2 * np.pi * np.arange(self.n_freqs) * self.hop / self.n_fft
        self._advance = np.exp(1j * self._centre_step).astype(np.complex64)
        self._slope_gain = self.hop * self.n_fft / (_HANN_GAMMA * spec.win_length ** 2)
        # _active_env[n]: sum of w^2 of n frames at hop spacing (over n-1 hops + n_fft samples)
        self._active_env = [np.zeros(0)]
        for n in range(1, self.n_active_max + 1):
            env = np.zeros((n - 1) * self.hop + self.n_fft, np.float32)
            for a in range(n):
                env[a * self.hop:a * self.hop + self.n_fft] += self.window_sq
            self._active_env.append(env)
        if self.n_fft % self.hop or self.n_fft % 2:
            raise ValueError(f"real-time phase needs an even n_fft ({self.n_fft}), a multiple of hop ({self.hop})")
        self._blocks_per_frame = self.n_fft // self.hop
        # hop blocks under the active frames (and under the new frame for the "partial" start)
        self._blocks_max = self.n_active_max + self._blocks_per_frame - 1
        self._window_blocks = self.window.reshape(self._blocks_per_frame, self.hop)
        self._steady_weights: dict[tuple[int, int], np.ndarray] = {}  # see _weights
        # whole SIMD groups of rows for the batched FFTs (rows past the active frames hold
        # finite leftovers, transformed and ignored)
        self._fft_rows = _simd_rows(self.n_active_max)
        self._fast = fast
        self._fft = _RealFFT(self.n_fft, self._fft_rows, use_scipy=not kernels.deferred())
        self._kernels, self._abs_fused = None, False
        if not kernels.deferred():
            self.use_kernels()
        self.reset()

    def use_kernels(self) -> None:
        """scipy's FFTs and the numba kernels from the next frame on, where they give the numpy
        path's bits, so a stream switched between two frames goes on as if it had used them
        from the start. The first call in a process compiles (``engine.stream.warmup`` makes
        that call off the producer's thread)."""
        self._fft.use_scipy()
        if self._fast and self._kernels is None:
            self._kernels, self._abs_fused = _verified_kernels(self.spec)

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        f, hop, per, blocks, rows = self.n_freqs, self.hop, self._blocks_per_frame, self._blocks_max, self._fft_rows
        # num: sum of w * frame of committed frames; env: their sum of w^2 (the logical buffer
        # of self.length samples from index _base)
        capacity = self.length + _SLACK_BLOCKS * hop
        self.num = np.zeros(capacity, np.float32)
        self.env = np.zeros(capacity, np.float32)
        self._base = 0
        # The active frames, oldest first, are rows 0..n_active-1 of these (n_freqs columns).
        self.n_active = 0
        self._mags = np.zeros((rows, f), np.float32)           # target magnitudes
        self._spectra = np.zeros((rows, f), np.complex64)      # their estimates
        self._previous = np.zeros((rows, f), np.complex64)     # momentum memory
        self._rebuilt = np.zeros((rows, f), np.complex64)      # numpy path: swapped with _previous
        self._scaled = np.zeros((rows, f), np.complex64)       # numpy path: alpha * previous
        self._size = np.zeros((rows, f), np.float32)           # |direction|
        self._td = np.zeros((rows, self.n_fft), np.float32)    # their irfft
        self._frames = np.zeros((rows, self.n_fft), np.float64)  # weighted frames (float32 values) to rfft
        self._commit_td = np.zeros(self.n_fft, np.float32)
        # [n]: the rows the batched FFTs of n frames transform
        self._fft_in = [(self._spectra[:_simd_rows(n)], self._td[:_simd_rows(n)]) for n in range(self.n_active_max + 1)]
        self._fft_frames = [self._frames[:_simd_rows(n)] for n in range(self.n_active_max + 1)]
        self._signal = np.zeros((blocks, hop), np.float32)
        # numpy path's overlap-add without a Python loop: plane 0 holds the committed num blocks,
        # plane 1 + r holds block r of frame a at row r + a (zero elsewhere), so adding the planes
        # in order gives num + each frame's share of each block, added as the frame loop did.
        plane_rows = (per + 1) * blocks
        work = np.zeros((plane_rows + per, hop), np.float32)
        self._work = work
        self._planes = work[:plane_rows].reshape(per + 1, blocks, hop)        # (per + 1, blocks, hop)
        # frame a, block r -> row blocks + r * (blocks + 1) + a = plane 1 + r, row r + a
        self._scatter = work[blocks:blocks + per * (blocks + 1)].reshape(per, blocks + 1, hop).transpose(1, 0, 2)
        self._scatter_rows = 0  # frames whose blocks the planes may hold
        # frame a of the signal = its blocks a .. a + per - 1: (blocks - per + 1, per, hop)
        self._gathered = np.lib.stride_tricks.sliding_window_view(self._signal, per, axis=0).transpose(0, 2, 1)
        self._last_committed = np.zeros(f, dtype=np.complex64)
        self._prev_step = None  # "gradient" start: the previous frame's phase advance
        # kernel path of the "gradient" start: its two step buffers (this frame's, the last
        # one's), the phasor and its size
        self._steps = (np.zeros(f), np.zeros(f))
        self._phasor = np.zeros(f, np.complex128)
        self._phasor_size = np.zeros(f)
        self.frames_in = 0       # frames pushed
        self.committed = 0       # frames committed (c)
        self.blocks_out = 0      # blocks popped (bo)
        self.positions_out = 0   # blocks emitted, leading zeros included

    def _offset(self, t: int) -> int:
        return self._base + (t - self.blocks_out) * self.hop

    # ------------------------------------------------------------------ core
    def _weights(self, n_frames: int, n_env: int) -> np.ndarray:
        """Analysis weight ``w / envelope`` ``(n_frames, n_fft)`` float32 of ``n_frames`` frames
        from the oldest active one, where the envelope counts the committed frames and the
        first ``n_env`` active ones."""
        # Once the per - 1 frames before the oldest active one are committed, the envelope
        # under the active frames is the same sum of the same w^2 every frame: reuse it.
        steady = self.committed >= self._blocks_per_frame - 1
        key = (n_frames, n_env)
        if steady and key in self._steady_weights:
            return self._steady_weights[key]
        o0 = self._offset(self.committed)
        span = (n_frames - 1) * self.hop + self.n_fft
        env = self.env[o0:o0 + span].copy()
        own = self._active_env[n_env]
        env[:own.size] += own
        covered = env > _ENVELOPE_FLOOR
        inv_env = np.where(covered, 1.0 / np.where(covered, env, 1.0), 0.0).astype(np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(inv_env, self.n_fft)[::self.hop]
        weights = frames * self.window
        if steady:
            self._steady_weights[key] = weights
        return weights

    def _region_num(self, n_blocks: int) -> np.ndarray:
        """Committed ``num`` ``(n_blocks * hop,)`` from the oldest active frame on (a view);
        the numpy path copies it into plane 0 for ``_rebuild``."""
        o0 = self._offset(self.committed)
        num = self.num[o0:o0 + n_blocks * self.hop]
        if self._kernels is None:
            self._planes[0, :n_blocks] = num.reshape(n_blocks, self.hop)
        return num

    def _rebuild(self, n: int, num: np.ndarray, weights: np.ndarray, first_out: int = 0) -> np.ndarray:
        """One consistency projection: overlap-add the active spectra ``0..n-1`` onto the
        committed ``num`` (``_region_num``), normalise and analyse ``len(weights)`` frames
        from frame ``first_out`` on -> complex128 ``(rows >= len(weights), n_freqs)``, to be
        rounded to complex64 (a view of a buffer)."""
        n_out = weights.shape[0]
        if n:
            self._fft.irfft(*self._fft_in[n])
        if self._kernels is not None:
            self._kernels.overlap_add(self._td, self.window, num, self.hop, n, weights, first_out,
                                      self._signal.reshape(-1), self._frames)
        else:
            if self._scatter_rows > n:
                self._work[self._blocks_max:] = 0.0
            self._scatter_rows = n
            hop, n_blocks = self.hop, first_out + n_out + self._blocks_per_frame - 1
            if n:
                np.multiply(self._td[:n].reshape(n, -1, hop), self._window_blocks, out=self._scatter[:n])
            np.add.reduce(self._planes[:, :n_blocks], axis=0, out=self._signal[:n_blocks])
            np.multiply(self._gathered[first_out:first_out + n_out], weights.reshape(n_out, -1, hop),
                        dtype=np.float32, out=self._frames[:n_out].reshape(n_out, -1, hop))
        return self._fft.rfft(self._fft_frames[n_out])

    def _gradient_step(self, mag: np.ndarray) -> np.ndarray:
        """Phase advance per hop of each bin from the magnitude's slope across bins
        (phase-gradient heuristic, Prusa et al. 2017): a partial between bins shows
        as a log-magnitude slope, and its frequency deviation is proportional to it."""
        log_mag = np.log(np.maximum(mag, 1e-9))
        slope = np.zeros_like(log_mag)
        slope[1:-1] = 0.5 * (log_mag[2:] - log_mag[:-2])
        # Measured: per-bin slopes beat giving each bin its nearest peak's advance on the
        # blurred pseudo-inverse magnitudes (1.006 vs 1.024 x Griffin-Lim at 4 iterations).
        return self._centre_step + self._slope_gain * slope

    def _start_phase(self, mag: np.ndarray) -> np.ndarray:
        """Unit phasors for the new frame from what already lies under it (RTISI)."""
        n_old = self.n_active
        if self.config.init == "advance":
            ref = self._spectra[n_old - 1] if n_old else self._last_committed
            phasor = ref * self._advance
        elif self.config.init == "gradient":
            ref = self._spectra[n_old - 1] if n_old else self._last_committed
            step = self._gradient_step(mag)
            prev = self._prev_step if self._prev_step is not None else step
            self._prev_step = step
            phasor = ref * np.exp(0.5j * (prev + step))
        else:
            # The new frame is not there yet: its own w^2 must not dilute the others.
            num = self._region_num(n_old + self._blocks_per_frame)
            weights = self._weights(n_old + 1, n_old)
            phasor = self._rebuild(n_old, num, weights[-1:], first_out=n_old)[0].astype(np.complex64)
        size = np.abs(phasor)
        # Where nothing lies under the frame yet (silence, first frame) start at zero phase.
        unit = np.ones_like(phasor)
        return np.divide(phasor, size, out=unit, where=size > _TINY)

    def _gradient_start(self, mag: np.ndarray, out: np.ndarray) -> None:
        """``mag`` times the "gradient" start phase into ``out`` (complex64): ``_start_phase``'s
        arithmetic with the numba kernels (numpy's transcendental functions stay numpy's)."""
        n_old = self.n_active
        ref = self._spectra[n_old - 1] if n_old else self._last_committed
        step = self._steps[0] if self._prev_step is not self._steps[0] else self._steps[1]
        prev = step if self._prev_step is None else self._prev_step
        phasor, size = self._phasor, self._phasor_size
        self._kernels.gradient_phase(np.log(np.maximum(mag, 1e-9)), self._centre_step, np.float32(self._slope_gain),
                                     prev, self._prev_step is not None, step, phasor)
        self._prev_step = step
        np.exp(phasor, out=phasor)
        np.multiply(ref, phasor, out=phasor)
        np.abs(phasor, out=size)
        self._kernels.unit_spectrum(phasor, size, mag, _TINY, out)

    def _iterate(self) -> None:
        n = self.n_active
        if n == 0 or self.config.iterations == 0:
            return
        num = self._region_num(n + self._blocks_per_frame - 1)
        weights = self._weights(n, n)
        kernels = self._kernels
        for _ in range(self.config.iterations):
            wide = self._rebuild(n, num, weights)
            if kernels is not None:
                kernels.project(wide, n, self._alpha32, self._previous, self._mags, _TINY32, self._abs_fused,
                                self._spectra)
            else:
                self._project(n, wide)

    def _project(self, n: int, wide: np.ndarray) -> None:
        """Momentum, then keep each bin's direction and impose its magnitude (a bin rebuilt as
        exactly 0 stays 0): ``wide`` ``(>= n, n_freqs)`` complex128 -> ``_spectra[:n]``
        (``phase_kernels.project`` in numpy)."""
        spectra, size = self._spectra[:n], self._size[:n]
        rebuilt = self._rebuilt[:n]
        np.copyto(rebuilt, wide[:n])
        if self._alpha:
            np.multiply(self._alpha, self._previous[:n], out=self._scaled[:n])
            np.subtract(rebuilt, self._scaled[:n], out=spectra)
            # the rebuilt spectra are the next momentum memory: swap rather than copy
            self._previous, self._rebuilt = self._rebuilt, self._previous
        else:
            spectra[...] = rebuilt
        np.abs(spectra, out=size)
        np.maximum(size, _TINY, out=size)
        np.divide(self._mags[:n], size, out=size)
        np.multiply(spectra, size, out=spectra)

    def _commit_oldest(self) -> None:
        n = self.n_active
        td = self._fft.irfft(self._spectra[0], self._commit_td)
        np.multiply(td, self.window, out=td)
        o = self._offset(self.committed)
        self.num[o:o + self.n_fft] += td
        self.env[o:o + self.n_fft] += self.window_sq
        self._last_committed[:] = self._spectra[0]
        for rows in (self._spectra, self._mags, self._previous):
            rows[:n - 1] = rows[1:n]
        self.n_active = n - 1
        self.committed += 1

    def _pop_block(self, out: np.ndarray) -> None:
        """Block ``bo`` into ``out`` ``(hop,)`` of zeros (left 0 where no frame covers it)."""
        hop = self.hop
        lo = self._base + self.n_fft // 2  # buffer index of sample bo*hop
        env = self.env[lo:lo + hop]
        np.divide(self.num[lo:lo + hop], env, out=out, where=env > _ENVELOPE_FLOOR)
        self._base += hop
        self.blocks_out += 1
        if self._base + self.length > self.num.size:
            # The logical buffer ran past the end (where its newest hop would be zeros): move it back.
            keep = self.num.size - self._base
            for buf in (self.num, self.env):
                buf[:keep] = buf[self._base:]
                buf[keep:] = 0.0
            self._base = 0

    def _emit(self, out: np.ndarray, i: int) -> None:
        if self.positions_out >= self.n_active_max - 1 + self.delay:
            self._pop_block(out[i * self.hop:(i + 1) * self.hop])
        self.positions_out += 1

    def _push_frame(self, mag: np.ndarray, phase: np.ndarray | None, out: np.ndarray, i: int) -> None:
        n = self.n_active
        self._mags[n] = mag
        mag = self._mags[n]
        if phase is not None:
            # rounded to complex64 as astype did
            np.multiply(mag, np.exp(1j * np.asarray(phase, dtype=np.float64)), out=self._spectra[n])
        elif self.config.init == "gradient" and self._kernels is not None:
            self._gradient_start(mag, self._spectra[n])
        else:
            np.multiply(mag, self._start_phase(mag), out=self._spectra[n])
        self._previous[n] = 0.0
        self.n_active = n + 1
        self.frames_in += 1
        self._iterate()
        if self.n_active == self.n_active_max:
            self._commit_oldest()
        self._emit(out, i)

    # ------------------------------------------------------------------ API
    def push_frame(self, mag: np.ndarray, phase: np.ndarray | None = None) -> np.ndarray:
        """One frame ``(n_freqs,)`` in, one hop of audio out."""
        out = np.zeros(self.hop, dtype=np.float32)
        self._push_frame(mag, phase, out, 0)
        return out

    def push(self, mag: np.ndarray, phase: np.ndarray | None = None) -> np.ndarray:
        """``(n_freqs, k)`` magnitudes (and optional phases) -> ``(k*hop,)`` float32."""
        mag = np.asarray(mag)
        if mag.ndim != 2 or mag.shape[0] != self.n_freqs:
            raise ValueError(f"magnitude frames must have shape ({self.n_freqs}, k), got {mag.shape}")
        if phase is not None and np.shape(phase) != mag.shape:
            raise ValueError(f"phase shape {np.shape(phase)} differs from magnitude shape {mag.shape}")
        k = mag.shape[1]
        out = np.zeros(k * self.hop, dtype=np.float32)
        for i in range(k):
            self._push_frame(mag[:, i], None if phase is None else phase[:, i], out, i)
        return out

    def flush(self) -> np.ndarray:
        """Finish the active frames (iterating as the window drains) -> ``(latency_samples,)``; reset."""
        while self.n_active:
            self._iterate()
            self._commit_oldest()
        out = np.zeros(self.latency_samples, dtype=np.float32)
        for i in range(self.latency_samples // self.hop):
            self._emit(out, i)
        self.reset()
        return out

    def offline(self, mag: np.ndarray, phase: np.ndarray | None = None) -> np.ndarray:
        """The same algorithm over all frames at once: ``(n_freqs, F) -> (F*hop,)`` float32."""
        self.reset()
        head = self.push(mag, phase)
        return np.concatenate([head, self.flush()])[self.latency_samples:]


@functools.lru_cache(maxsize=None)
def _verified_kernels(spec: MelSpec) -> tuple[Any, bool]:
    """``(engine.dsp.phase_kernels, its complex abs variant)`` compiled and checked to give the
    numpy path's output, else ``(None, False)``.

    Compiles (or loads from numba's cache) on the first ``StreamingPhase`` of a process, so
    never while audio runs; a missing or failing numba leaves the numpy path."""
    try:
        from melsynth.engine.dsp import phase_kernels
        if phase_kernels.numba is None:
            return None, False
        rng = np.random.default_rng(0)
        z = (rng.standard_normal(4096) + 1j * rng.standard_normal(4096) * np.exp(rng.uniform(-9, 9, 4096)))
        z = (z * np.exp(rng.uniform(-20, 20, 4096))).astype(np.complex64)
        out = np.empty(z.size, np.float32)

        def abs_matches(fused: bool) -> bool:
            phase_kernels.complex_abs(z, fused, out)
            return np.array_equal(out, np.abs(z))

        fused = [f for f in (True, False) if abs_matches(f)]
        if not fused:
            log.warning("no numba complex abs matches numpy's here: real-time phase keeps to numpy")
            return None, False
        mag = rng.gamma(0.5, 1.0, (spec.n_freqs, 12)).astype(np.float32)
        # the partial start with momentum, the gradient start without: every kernel, both branches
        for config in (PhaseConfig(iterations=2, init="partial"), PhaseConfig(iterations=2, lookahead=1, momentum=0.0)):
            fast = StreamingPhase(spec, config, fast=False)
            fast._kernels, fast._abs_fused = phase_kernels, fused[0]
            if not np.array_equal(fast.offline(mag), StreamingPhase(spec, config, fast=False).offline(mag)):
                log.warning("numba kernels differ from numpy here: real-time phase keeps to numpy")
                return None, False
    except Exception as exc:  # numba cannot compile here: numpy does the same work, slower
        log.warning("real-time phase keeps to numpy (numba kernels unavailable: %s)", exc)
        return None, False
    return phase_kernels, fused[0]
