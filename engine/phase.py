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

    sample   bo*hop - n_fft/2
             |committed frames' num / env ....................|
                  |frame c   ---- active, iterated ----|
                       |frame c+1 ------------------------|
                            |frame m = c+2 -----------------------|
    emitted block bo is final when frame bo + D is committed (D = 2)

so a frame pushed now comes out ``(lookahead + D) * hop`` samples later:
``latency_samples``. The offline path is the same loop run over all frames, so
streaming equals offline exactly, whatever the step sizes.

Iterations use librosa's fast Griffin-Lim momentum (Perraudin et al. 2013)
per frame, carried across steps. Work is float32 (numpy >= 2 runs float32 FFTs
natively, ~1.6x faster than float64; the difference is inaudible).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.features import MelSpec, analysis_window
from engine.istft import latency_frames

_ENVELOPE_FLOOR = 1e-10
_TINY = 1e-12
INIT_METHODS = ("gradient", "advance", "partial")
# Time-frequency spread of the Hann window as a Gaussian's (ltfat's pghi 'hann' constant).
_HANN_GAMMA = 0.25645
# num/env slide this many extra blocks before being moved back (one copy per _SLACK_BLOCKS blocks)
_SLACK_BLOCKS = 32

try:  # numpy >= 2: the gufuncs behind np.fft, called directly (np.fft's argument handling costs
    # more than a 1024-point transform here); same loops and scale factors as np.fft uses.
    from numpy.fft import _pocketfft_umath as _pocketfft
except ImportError:  # pragma: no cover - other numpy builds
    _pocketfft = None


def _irfft(spectra: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.fft.irfft(spectra, n=out.shape[-1], axis=-1)`` into ``out`` (complex64 -> float32)."""
    if _pocketfft is None:
        return np.fft.irfft(spectra, n=out.shape[-1], axis=-1, out=out)
    # np.fft.irfft's scale: 1/n in the spectra's real dtype
    return _pocketfft.irfft(spectra, np.reciprocal(out.shape[-1], dtype=out.dtype), out=out)


def _rfft(frames: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.fft.rfft(frames, axis=-1)`` into ``out`` (float32 -> complex64; even length)."""
    if _pocketfft is None:
        return np.fft.rfft(frames, axis=-1, out=out)
    # np.fft.rfft passes the Python int 1 as its scale, which selects the float64 loop:
    # pass the same, so that the result is the same
    return _pocketfft.rfft_n_even(frames, 1, out=out)


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
    frame (a neural vocoder's estimate refined by the iterations).

    Per frame the work is ~(lookahead + 1) x 2 FFTs per iteration plus a few
    dozen numpy calls on small arrays, so every buffer is preallocated and the
    per-iteration calls are kept to eleven (see ``_rebuild``).
    """

    def __init__(self, spec: MelSpec, config: PhaseConfig = PhaseConfig()):
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
        # Logical buffer index 0 (buffer index _base) is sample bo*hop - n_fft/2, so frame t
        # starts at _base + (t - bo) * hop.
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
        if self.n_fft % self.hop:
            raise ValueError(f"real-time phase needs n_fft ({self.n_fft}) to be a multiple of hop ({self.hop})")
        if self.n_fft % 2:
            raise ValueError(f"real-time phase needs an even n_fft, got {self.n_fft}")
        self._blocks_per_frame = self.n_fft // self.hop
        # hop blocks under the active frames (and under the new frame for the "partial" start)
        self._blocks_max = self.n_active_max + self._blocks_per_frame - 1
        self._window_blocks = self.window.reshape(self._blocks_per_frame, self.hop)
        # (n_frames, n_env) -> weights; see _weights
        self._steady_weights: dict[tuple[int, int], np.ndarray] = {}
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        a, f, hop, per, blocks = self.n_active_max, self.n_freqs, self.hop, self._blocks_per_frame, self._blocks_max
        # num: sum of w * frame of committed frames; env: their sum of w^2. The logical buffer
        # slides one hop per block out; it is moved back to index 0 only when it reaches the end.
        capacity = self.length + _SLACK_BLOCKS * hop
        self.num = np.zeros(capacity, np.float32)
        self.env = np.zeros(capacity, np.float32)
        self._base = 0
        # The active frames, oldest first, are rows 0..n_active-1 of these.
        self._mags = np.zeros((a, f), np.float32)            # target magnitudes
        self._spectra = np.zeros((a, f), np.complex64)       # their estimates
        self._previous = np.zeros((a, f), np.complex64)      # momentum memory
        self._rebuilt = np.zeros((a, f), np.complex64)       # projection output (swapped with _previous)
        self._scaled = np.zeros((a, f), np.complex64)        # alpha * previous
        self._size = np.zeros((a, f), np.float32)            # |direction| -> mags / |direction|
        self._td = np.zeros((a, self.n_fft), np.float32)     # irfft of the active spectra
        self._frames = np.zeros((a, self.n_fft), np.float32)  # weighted frames for the rfft
        self._commit_td = np.zeros(self.n_fft, np.float32)
        self._signal = np.zeros((blocks, hop), np.float32)
        # Overlap-add without a Python loop: plane 0 holds the committed num blocks, plane 1 + r
        # holds block r of frame a at row r + a (zero elsewhere), so adding the planes (in this
        # order, as the per-frame loop did) gives num + every frame's share of each block.
        rows = (per + 1) * blocks
        work = np.zeros((rows + per, hop), np.float32)
        self._work = work
        self._planes = work[:rows].reshape(per + 1, blocks, hop)               # (per + 1, blocks, hop)
        # frame a, block r -> row blocks + r * (blocks + 1) + a = plane 1 + r, row r + a
        self._scatter = work[blocks:blocks + per * (blocks + 1)].reshape(per, blocks + 1, hop).transpose(1, 0, 2)
        self._td_rows = 0  # frames whose blocks the planes may hold
        # frame a of the signal = its blocks a .. a + per - 1: (blocks - per + 1, per, hop)
        self._gathered = np.lib.stride_tricks.sliding_window_view(self._signal, per, axis=0).transpose(0, 2, 1)
        self.n_active = 0
        self._last_committed = np.zeros(f, dtype=np.complex64)
        self._prev_step = None  # "gradient" start: the previous frame's phase advance
        self.frames_in = 0       # frames pushed
        self.committed = 0       # frames committed (c)
        self.blocks_out = 0      # blocks popped (bo)
        self.positions_out = 0   # blocks emitted, leading zeros included

    def _offset(self, t: int) -> int:
        return self._base + (t - self.blocks_out) * self.hop

    # ------------------------------------------------------------------ core
    def _weights(self, n_frames: int, n_env: int) -> np.ndarray:
        """Analysis weight ``w / envelope`` ``(n_frames, per, hop)`` of ``n_frames`` frames from the
        oldest active one, where the envelope counts the committed frames and the first ``n_env``
        active ones."""
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
        blocks = np.lib.stride_tricks.sliding_window_view(inv_env.reshape(-1, self.hop), self._blocks_per_frame, 0)
        weights = blocks.transpose(0, 2, 1) * self._window_blocks
        if steady:
            self._steady_weights[key] = weights
        return weights

    def _load_num(self, n_blocks: int) -> None:
        """Committed ``num`` from the oldest active frame on (``n_blocks`` hop blocks) into plane 0."""
        o0 = self._offset(self.committed)
        self._planes[0, :n_blocks] = self.num[o0:o0 + n_blocks * self.hop].reshape(n_blocks, self.hop)

    def _rebuild(self, n: int, weights: np.ndarray, first_out: int = 0) -> np.ndarray:
        """One consistency projection: overlap-add the active spectra ``0..n-1`` onto the
        committed ``num`` (``_load_num``), normalise and analyse ``len(weights)`` frames
        from frame ``first_out`` on -> ``(len(weights), n_freqs)`` complex64 (a view of
        ``_rebuilt``)."""
        n_out = weights.shape[0]
        n_blocks = first_out + n_out + self._blocks_per_frame - 1
        if self._td_rows > n:
            self._work[self._blocks_max:] = 0.0
        self._td_rows = n
        if n:
            _irfft(self._spectra[:n], self._td[:n])
            np.multiply(self._td[:n].reshape(n, -1, self.hop), self._window_blocks, out=self._scatter[:n])
        np.add.reduce(self._planes[:, :n_blocks], axis=0, out=self._signal[:n_blocks])
        frames = self._frames[:n_out]
        np.multiply(self._gathered[first_out:first_out + n_out], weights,
                    out=frames.reshape(n_out, -1, self.hop))
        return _rfft(frames, self._rebuilt[:n_out])

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
            weights = self._weights(n_old + 1, n_old)
            self._load_num(n_old + self._blocks_per_frame)
            phasor = self._rebuild(n_old, weights[-1:], first_out=n_old)[0]
        size = np.abs(phasor)
        # Where nothing lies under the frame yet (silence, first frame) start at zero phase.
        return np.where(size > _TINY, phasor / np.maximum(size, _TINY), 1.0)

    def _iterate(self) -> None:
        n = self.n_active
        if n == 0 or self.config.iterations == 0:
            return
        weights = self._weights(n, n)
        self._load_num(n + self._blocks_per_frame - 1)
        spectra, mags, size, scaled = self._spectra[:n], self._mags[:n], self._size[:n], self._scaled[:n]
        for _ in range(self.config.iterations):
            rebuilt = self._rebuild(n, weights)
            if self._alpha:
                np.multiply(self._alpha, self._previous[:n], out=scaled)
                direction = np.subtract(rebuilt, scaled, out=spectra)
                # the rebuilt spectra are the next momentum memory: swap rather than copy
                self._previous, self._rebuilt = self._rebuilt, self._previous
            else:
                direction = rebuilt
            # keep each bin's direction, impose its magnitude (a bin rebuilt as exactly 0 stays 0)
            np.abs(direction, out=size)
            np.maximum(size, _TINY, out=size)
            np.divide(mags, size, out=size)
            np.multiply(direction, size, out=spectra)

    def _commit_oldest(self) -> None:
        n = self.n_active
        td = _irfft(self._spectra[0], self._commit_td)
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
        """Block ``bo`` into ``out`` ``(hop,)`` (zeros where no frame covers it)."""
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
        phasor = np.exp(1j * np.asarray(phase, dtype=np.float64)) if phase is not None else self._start_phase(mag)
        np.multiply(mag, phasor, out=self._spectra[n])  # complex128 product rounded to complex64 (as astype)
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
