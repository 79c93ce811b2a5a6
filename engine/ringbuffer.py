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
overwrites a slot the reader has not consumed. (Aligned 8-byte stores are atomic on
the machines we run on; x86 keeps stores in order, which the native reader relies on.)

``read_block`` (the callback's only call into the ring) allocates nothing: it copies
at most two slices into the caller's array and zero-fills whatever the ring could not
supply, counting that as one underrun. It is compiled by numba where numba is
present (``nogil``); the same function runs as plain numpy without it.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
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


def _read_block(state: np.ndarray, data: np.ndarray, out: np.ndarray) -> int:
    """Consumer: fill ``out`` (1-D float32, may be strided) from the ring, zero-fill the rest.

    Returns the number of real samples copied. Counts an underrun if the ring was short.
    """
    want = out.shape[0]
    capacity = data.shape[0]
    read = state[READ]
    n = min(want, state[WRITTEN] - read)
    if n > 0:
        start = read % capacity
        first = min(n, capacity - start)
        out[:first] = data[start:start + first]
        if n > first:
            out[first:n] = data[:n - first]
        read += n
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


read_block = numba.njit(cache=True, nogil=True)(_read_block) if numba is not None else _read_block


class RingBuffer:
    """SPSC float32 ring of ``capacity`` samples (mono)."""

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
    def written(self) -> int:
        """Total samples ever written (the producer's position on the device timeline)."""
        return int(self.state[WRITTEN])

    @property
    def read_position(self) -> int:
        """Total samples ever handed to the consumer, zero-fills excluded."""
        return int(self.state[READ])

    @property
    def consumed(self) -> int:
        """Total samples the consumer took, zero-fills included: the device's own clock, in samples."""
        state = self.state
        return int(state[READ] + state[UNDERRUN_SAMPLES])

    @property
    def underruns(self) -> int:
        return int(self.state[UNDERRUNS])

    @property
    def underrun_samples(self) -> int:
        return int(self.state[UNDERRUN_SAMPLES])

    @property
    def first_underrun_at(self) -> int:
        return int(self.state[FIRST_UNDERRUN_AT])

    @property
    def last_underrun_at(self) -> int:
        return int(self.state[LAST_UNDERRUN_AT])

    # ------------------------------------------------------------------ producer
    def write(self, samples: np.ndarray) -> int:
        """Copy as many of ``samples`` as fit; returns how many were written."""
        written = int(self.state[WRITTEN])
        n = min(len(samples), self.capacity - (written - int(self.state[READ])))
        if n <= 0:
            return 0
        start = written % self.capacity
        first = min(n, self.capacity - start)
        self.data[start:start + first] = samples[:first]
        if n > first:
            self.data[: n - first] = samples[first:n]
        self.state[WRITTEN] = written + n  # publish after the copy
        return n

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

    def discard(self, n: int) -> int:
        """Consumer side: drop up to ``n`` samples (used when a stream is abandoned)."""
        read = int(self.state[READ])
        n = max(0, min(n, int(self.state[WRITTEN]) - read))
        self.state[READ] = read + n
        return n
