"""A preallocated single-producer / single-consumer float32 ring buffer.

The producer thread writes generated audio; the audio callback reads it. There is
no lock: each side owns some counters and only reads the other's. The counters live
in one int64 array (``state``) so that the device callback can run as native code
that never takes the GIL (``engine.callback``); ``written - read`` is the fill level,
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
nothing: they copy at most two slices, and the reader zero-fills whatever the ring
could not supply, counting that as one underrun. They are compiled by numba where
numba is present (``nogil``). Without numba the same functions run as numpy, and the
callback is Python too: the GIL orders both sides then.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import types
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - numba is a dependency; keep the ring usable without it
    numba = None

# indices into RingBuffer.state
WRITTEN = 0  # producer-owned: samples ever written
READ = 1  # consumer-owned: samples ever handed to the device, zero-fills excluded
UNDERRUNS = 2  # consumer-owned: reads that got fewer samples than asked
UNDERRUN_SAMPLES = 3  # consumer-owned: samples zero-filled
FIRST_UNDERRUN_AT = 4  # consumer-owned: READ at the first and the latest underrun (-1: none),
LAST_UNDERRUN_AT = 5  # to tell a start-up gap from a later stall
STATE_SIZE = 8


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


def _read_block(state: np.ndarray, data: np.ndarray, out: np.ndarray) -> int:
    """Consumer: fill ``out`` (1-D float32, may be strided) from the ring, zero-fill the rest.

    Returns the number of real samples copied. Counts an underrun if the ring was short.
    """
    want = out.shape[0]
    capacity = data.shape[0]
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
    else:
        n = 0
    if n < want:
        out[n:] = 0.0
        if state[UNDERRUNS] == 0:
            state[FIRST_UNDERRUN_AT] = read
        state[LAST_UNDERRUN_AT] = read
        state[UNDERRUNS] += 1
        state[UNDERRUN_SAMPLES] += want - n
    return n


if numba is not None:
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
    read_position = counter("state", READ, "Total samples ever handed to the consumer, zero-fills excluded.")
    underruns = counter("state", UNDERRUNS, "Reads that found the ring short.")
    underrun_samples = counter("state", UNDERRUN_SAMPLES, "Samples zero-filled.")
    first_underrun_at = counter("state", FIRST_UNDERRUN_AT, "``read_position`` at the first underrun (-1: none).")
    last_underrun_at = counter("state", LAST_UNDERRUN_AT, "``read_position`` at the latest underrun (-1: none).")

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.data = np.zeros(self.capacity, dtype=np.float32)
        self.state = np.zeros(STATE_SIZE, dtype=np.int64)
        self.reset()

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
        """Total samples the consumer took, zero-fills included: the device's own clock, in samples."""
        state = self.state
        return int(state[READ] + state[UNDERRUN_SAMPLES])

    # ------------------------------------------------------------------ producer
    def write(self, samples: np.ndarray) -> int:
        """Copy as many of ``samples`` as fit; returns how many were written."""
        return int(write_block(self.state, self.data, np.asarray(samples, dtype=np.float32)))

    def reset(self) -> None:
        """Empty the ring. Only while neither side is running."""
        self.state[:] = 0
        self.state[FIRST_UNDERRUN_AT] = self.state[LAST_UNDERRUN_AT] = -1

    # ------------------------------------------------------------------ consumer
    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` (1-D float32 view, may be strided) from the ring; zero-fill the rest.

        Returns the number of real samples copied. No allocation, no locks.
        """
        return int(read_block(self.state, self.data, out))
