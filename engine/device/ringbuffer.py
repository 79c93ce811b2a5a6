"""A preallocated single-producer / single-consumer float32 ring buffer.

The producer thread writes generated audio; the audio callback reads it. There is
no lock: each side owns some counters and only reads the other's. The counters live
in one int64 array (``state``) so that the device callback can run as native code
that never takes the GIL (``engine.device.callback``); ``written - read`` is the fill level,
and 63-bit counters never wrap, so full and empty are never confused::

    data      [ . . . r r r r r w . . . ]      capacity slots, index = counter % capacity
                      ^read      ^written
    fill  = state[WRITTEN] - state[READ]     WRITTEN: producer-owned; READ and the
                                             underrun counters: consumer-owned

Publication order makes this safe: the producer copies samples in *before* advancing
``WRITTEN``; the consumer copies samples out *before* advancing ``READ``. A reader
therefore never sees a slot the writer has not finished, and a writer never
overwrites a slot the reader has not consumed. The two sides run on different cores
without a lock between them, so each side fences: an acquire fence after it reads the
other's counter, a release fence before it publishes its own (a compiler barrier on
x86, a ``dmb`` on ARM, whose cores may otherwise reorder the copy and the counter).

``write_block`` and ``read_block`` (the callback's only call into the ring) allocate
nothing: they copy at most two slices, and the reader fills whatever the ring could not
supply, counting that as one underrun. They are compiled by numba where numba is present
(``nogil``). Without numba the same functions run as numpy, and the callback is Python
too: the GIL orders both sides then.

Declicking (``fade_samples`` > 0; ``Synth`` sets it from ``SynthConfig.declick_ms``). An
edge where the sound jumps to or from silence mid-waveform is a click. The reader smooths
each with raised-cosine fades of ``fade_samples``::

    gap (underrun)  ..x x x e | c c c c 0 0 0 0 | 0 0 | r r r r x x x ...
                              |<- fall ->|            |<- rise ->|
      fall: the sound continued past its last real sample e by point reflection
            (c_k = 2 e - x_(e-k): same value, same slope), times a fall from 1 to 0
      rise: the real samples after the gap, times a rise from 0 to 1; a fall that has
            not ended when they come sounds on under them (a crossfade)
    stop (request_stop)   x x x x | x x x x (times a fall) | 0 0 0 ... (nothing read)
    resumed start (reset(fade_in=True))   the first real samples rise from 0

A gap's samples count as an underrun; a stop's do not (the owner asked for the silence).
``stop_fade_at`` is where on the device's timeline the stop fade began, so a capture can be
compared with an offline render up to there. A fall reads the samples just behind the read
position: the producer reaches those slots only after writing a whole capacity more.
"""
from __future__ import annotations

from types import FunctionType

import numpy as np

from melsynth.engine import kernels

try:
    import numba
    from numba import types
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - numba is a dependency; keep the ring usable without it
    numba = None

# indices into RingBuffer.state
WRITTEN = 0  # producer-owned: samples ever written
READ = 1  # consumer-owned: samples ever handed to the device, what filled a gap excluded
UNDERRUNS = 2  # consumer-owned: reads that got fewer samples than asked
UNDERRUN_SAMPLES = 3  # consumer-owned: samples the ring could not supply (filled: fall, then zeros)
FIRST_UNDERRUN_AT = 4  # consumer-owned: READ at the first and the latest underrun (-1: none),
LAST_UNDERRUN_AT = 5  # to tell a start-up gap from a later stall
FADE_SAMPLES = 6  # owner-set while stopped: declick ramp length (0: hard edges)
FADE_IN_LEFT = 7  # consumer-owned: samples left of a rise (after a gap, or a resumed start)
STOP_REQUESTED = 8  # owner-owned: 1 = fade out and then hand out silence, reading nothing more
STOP_FADE_AT = 9  # consumer-owned: consumed samples (device timeline) when the stop fade began (-1: not yet)
STOP_FADED = 10  # consumer-owned: samples of the stop fade handed out
FALL_DONE = 11  # consumer-owned: samples of a gap's fall handed out (>= FADE_SAMPLES: none sounding)
FALL_EDGE = 12  # consumer-owned: READ - 1 when that fall began: the last real sample before the gap
STATE_SIZE = 13


if numba is not None:
    def _fence(ordering: str):
        """An LLVM memory fence as a function numba code can call."""
        @intrinsic
        def fence(typingctx):
            def codegen(context, builder, signature, args):
                builder.fence(ordering)
                return context.get_dummy_value()
            return types.none(), codegen
        return fence

    # no load or store after it moves before the counter read before it
    _acquire = _fence("acquire")
    # the copy before it is visible before the counter stored after it
    _release = _fence("release")
else:  # pragma: no cover - plain Python: the GIL orders both sides
    def _acquire() -> None:
        pass

    _release = _acquire


def _write_block(state: np.ndarray, data: np.ndarray, samples: np.ndarray) -> int:
    """Producer: copy as many of ``samples`` (1-D float32) as fit; returns how many."""
    capacity = data.shape[0]
    written = state[WRITTEN]
    n = min(samples.shape[0], capacity - (written - state[READ]))
    if n <= 0:
        return 0
    _acquire()  # the slots freed by READ are the reader's no more
    start = written % capacity
    first = min(n, capacity - start)
    data[start:start + first] = samples[:first]
    if n > first:
        data[:n - first] = samples[first:n]
    _release()
    state[WRITTEN] = written + n  # publish after the copy
    return n


def _fall(k, length):
    """Declick gain ``k`` samples into a fall of ``length``: a raised cosine from 1 (k = 0) to 0
    (k >= length). Smoother than a line, whose corners splash energy across the spectrum."""
    if k >= length:
        return 0.0
    return 0.5 + 0.5 * np.cos(np.pi * k / length)


def _clip(x):
    """A continued sound can overshoot what was written (``2 e - x`` reaches 3x a peak): the
    device still gets nothing beyond +-1.0."""
    return min(1.0, max(-1.0, x))


def _continued(data, edge, k):
    """The sound ``k`` samples past the ring's sample ``edge``, continued by point reflection
    through it (``2 x[edge] - x[edge - k]``): it goes on from the edge with the same value and
    slope, where holding the value would put a corner in the waveform (a click of its own).
    The samples behind the read position stay in the ring until the producer has written a
    whole capacity more."""
    capacity = data.shape[0]
    here = data[edge % capacity]
    return 2.0 * here - data[(edge - k) % capacity] if edge >= k else here


def _read_block(state: np.ndarray, data: np.ndarray, out: np.ndarray) -> int:
    """Consumer: fill ``out`` (1-D float32, may be strided) from the ring, and what the ring
    could not supply with the sound's fall to silence (see the module docstring).

    Returns the number of real samples copied. Counts an underrun if the ring was short,
    unless a stop was requested.
    """
    want = out.shape[0]
    capacity = data.shape[0]
    fade = state[FADE_SAMPLES]
    stopping = state[STOP_REQUESTED] != 0
    if stopping:
        if state[STOP_FADE_AT] < 0:
            state[STOP_FADE_AT] = state[READ] + state[UNDERRUN_SAMPLES]
        if state[STOP_FADED] >= fade:
            out[:] = 0.0
            return 0
    read = state[READ]
    n = min(want, state[WRITTEN] - read)
    if n > 0:
        _acquire()  # the slots WRITTEN covers are complete
        start = read % capacity
        first = min(n, capacity - start)
        out[:first] = data[start:start + first]
        if n > first:
            out[first:n] = data[:n - first]
        read += n
        _release()
        state[READ] = read  # publish after the copy
        left = state[FADE_IN_LEFT]
        if left > 0:  # rise from the gap before
            m = min(n, left)
            for j in range(m):
                out[j] *= 1.0 - _fall(fade - left + j + 1, fade + 1)
            state[FADE_IN_LEFT] = left - m
        done = state[FALL_DONE]
        if done < fade:  # that gap's fall has not ended: it sounds on under the rise (a crossfade)
            m = min(n, fade - done)
            edge = state[FALL_EDGE]
            for j in range(m):
                out[j] = _clip(out[j] + _continued(data, edge, done + j + 1) * _fall(done + j + 1, fade))
            state[FALL_DONE] = done + m
    else:
        n = 0
    if n < want:
        # what is missing: the sound continued past its last real sample, falling to silence
        # over as many blocks as the fall takes
        if read > 0 and state[FALL_EDGE] != read - 1:  # real sound came since the last fall
            state[FALL_EDGE] = read - 1
            state[FALL_DONE] = 0
        done = state[FALL_DONE]
        edge = state[FALL_EDGE]
        for j in range(n, want):
            out[j] = _clip(_continued(data, edge, done + 1) * _fall(done + 1, fade)) if done < fade else 0.0
            done += 1
        state[FALL_DONE] = min(done, fade)
        if not stopping:
            if state[UNDERRUNS] == 0:
                state[FIRST_UNDERRUN_AT] = read
            state[LAST_UNDERRUN_AT] = read
            state[UNDERRUNS] += 1
            state[UNDERRUN_SAMPLES] += want - n
            state[FADE_IN_LEFT] = fade
    if stopping:
        done = state[STOP_FADED]
        for j in range(want):
            out[j] *= _fall(done + j, fade)
        state[STOP_FADED] = done + want
    return n


def plain_python(fn, **calls):
    """``fn`` run as Python, its calls to other kernels (``calls``: name -> function) and the
    fences (no-ops: the GIL orders a Python side) bound to plain Python too: the ring's path
    while numba's kernels are not compiled yet (``engine.kernels``)."""
    scope = dict(fn.__globals__, _acquire=_no_fence, _release=_no_fence, **calls)
    return FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)


def _no_fence() -> None:
    pass


_plain_fall = plain_python(_fall)
_plain_clip = plain_python(_clip)
_plain_continued = plain_python(_continued)
plain_read_block = plain_python(_read_block, _fall=_plain_fall, _clip=_plain_clip, _continued=_plain_continued)
plain_write_block = plain_python(_write_block)

if numba is not None:
    _fall = numba.njit(cache=True, nogil=True)(_fall)
    _continued = numba.njit(cache=True, nogil=True)(_continued)
    _clip = numba.njit(cache=True, nogil=True)(_clip)
    read_block = numba.njit(cache=True, nogil=True)(_read_block)
    write_block = numba.njit(cache=True, nogil=True)(_write_block)
else:  # pragma: no cover
    read_block, write_block = _read_block, _write_block


def counter(array: str, index: int, doc: str) -> property:
    """A read-only int property for ``self.<array>[index]`` (counters kept in arrays for native code)."""
    return property(lambda self: int(getattr(self, array)[index]), doc=doc)


class RingBuffer:
    """SPSC float32 ring of ``capacity`` samples (mono)."""

    written = counter("state", WRITTEN, "Total samples ever written (the producer's position on the device timeline).")
    read_position = counter("state", READ, "Total samples ever handed to the consumer, what filled a gap excluded.")
    underruns = counter("state", UNDERRUNS, "Reads that found the ring short.")
    underrun_samples = counter("state", UNDERRUN_SAMPLES, "Samples the ring could not supply.")
    first_underrun_at = counter("state", FIRST_UNDERRUN_AT, "``read_position`` at the first underrun (-1: none).")
    last_underrun_at = counter("state", LAST_UNDERRUN_AT, "``read_position`` at the latest underrun (-1: none).")
    fade_samples = counter("state", FADE_SAMPLES, "Declick ramp length in samples (0: hard edges).")
    stop_fade_at = counter("state", STOP_FADE_AT,
                           "``consumed`` when the stop fade began (-1: no stop requested or not yet read).")

    def __init__(self, capacity: int, fade_samples: int = 0):
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        # plain Python until use_kernels() where numba's kernels are left for later (engine.kernels)
        self._write_block, self._read_block = ((plain_write_block, plain_read_block) if kernels.deferred()
                                               else (write_block, read_block))
        self.data = np.zeros(self.capacity, dtype=np.float32)
        self.state = np.zeros(STATE_SIZE, dtype=np.int64)
        self.reset(fade_samples)

    # ------------------------------------------------------------------ both sides
    @property
    def fill(self) -> int:
        """Samples written and not yet read."""
        state = self.state
        return int(state[WRITTEN] - state[READ])

    @property
    def free(self) -> int:
        return self.capacity - self.fill

    @property
    def consumed(self) -> int:
        """Total samples the consumer took, gaps included: the device's own clock, in samples."""
        state = self.state
        return int(state[READ] + state[UNDERRUN_SAMPLES])

    # ------------------------------------------------------------------ producer
    def write(self, samples: np.ndarray) -> int:
        """Copy as many of ``samples`` as fit; returns how many were written."""
        return int(self._write_block(self.state, self.data, np.asarray(samples, dtype=np.float32)))

    def use_kernels(self) -> None:
        """The compiled reader and writer from the next call on (both sides keep the same state)."""
        self._write_block, self._read_block = write_block, read_block

    def underrun_seconds(self, rate: int) -> dict[str, float | None]:
        """``{"first": s, "last": s}``: where the first and the latest underrun came, in seconds of
        sound played at ``rate`` (None: none yet): a start-up gap, or a stall later on?"""
        return {k: (v / rate if v >= 0 else None)
                for k, v in (("first", self.first_underrun_at), ("last", self.last_underrun_at))}

    def reset(self, fade_samples: int = 0, fade_in: bool = False) -> None:
        """Empty the ring. Only while neither side is running.

        ``fade_samples``: the declick ramps' length (0: hard edges; see the module docstring);
        ``fade_in``: ramp the first samples up from silence (a start that resumes a sound).
        """
        if fade_samples < 0:
            raise ValueError(f"fade_samples must be >= 0, got {fade_samples}")
        state = self.state
        state[:] = 0
        state[FIRST_UNDERRUN_AT] = state[LAST_UNDERRUN_AT] = state[STOP_FADE_AT] = state[FALL_EDGE] = -1
        state[FADE_SAMPLES] = state[FALL_DONE] = fade_samples
        state[FADE_IN_LEFT] = fade_samples if fade_in else 0

    def request_stop(self) -> None:
        """Ask the reader to fade out over ``fade_samples`` and then hand out silence (read
        nothing more), without counting that as an underrun. ``reset`` undoes it."""
        self.state[STOP_REQUESTED] = 1

    @property
    def stop_faded(self) -> bool:
        """The stop fade is complete: the device hears silence from here on."""
        state = self.state
        return bool(state[STOP_REQUESTED]) and state[STOP_FADED] >= state[FADE_SAMPLES]

    # ------------------------------------------------------------------ consumer
    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` (1-D float32 view, may be strided) from the ring, the rest with silence
        (after a declick ramp where ``fade_samples`` > 0).

        Returns the number of real samples copied. No allocation, no locks.
        """
        return int(self._read_block(self.state, self.data, out))
