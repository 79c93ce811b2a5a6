"""A preallocated single-producer / single-consumer float32 ring buffer.

The producer thread writes generated audio; the audio callback reads it. There is
no lock: each side owns one counter and only reads the other's. Counters grow
without bound (Python ints), so ``written - read`` is the fill level and full and
empty are never confused::

    storage   [ . . . r r r r r w . . . ]      capacity slots, index = counter % capacity
                      ^read      ^written
    fill  = written - read          (owned: written by producer, read by consumer)

Publication order makes this safe under the GIL: the producer copies samples in
*before* advancing ``_written``; the consumer copies samples out *before*
advancing ``_read``. A reader therefore never sees a slot the writer has not
finished, and a writer never overwrites a slot the reader has not consumed.

``read_into`` (the callback's only call) allocates no buffers: it copies at most two
slices into the caller's array and zero-fills whatever the ring could not supply,
counting that as one underrun.
"""
from __future__ import annotations

import numpy as np


class RingBuffer:
    """SPSC float32 ring of ``capacity`` samples (mono)."""

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0  # producer-owned counter
        self._read = 0  # consumer-owned counter
        self.underruns = 0  # consumer-owned: callbacks that got fewer samples than asked
        self.underrun_samples = 0  # consumer-owned: samples zero-filled
        self.first_underrun_at = -1  # consumer-owned: read position of the first and the latest
        self.last_underrun_at = -1  # underrun (-1: none), to tell a start-up gap from a later stall

    # ------------------------------------------------------------------ both sides
    @property
    def fill(self) -> int:
        """Samples written and not yet read."""
        return self._written - self._read

    @property
    def free(self) -> int:
        return self.capacity - self.fill

    @property
    def written(self) -> int:
        """Total samples ever written (the producer's position on the device timeline)."""
        return self._written

    @property
    def read_position(self) -> int:
        """Total samples ever handed to the consumer, zero-fills excluded."""
        return self._read

    @property
    def consumed(self) -> int:
        """Total samples the consumer took, zero-fills included: the device's own clock, in samples."""
        return self._read + self.underrun_samples

    # ------------------------------------------------------------------ producer
    def write(self, samples: np.ndarray) -> int:
        """Copy as many of ``samples`` as fit; returns how many were written."""
        n = min(len(samples), self.capacity - (self._written - self._read))
        if n <= 0:
            return 0
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._data[start:start + first] = samples[:first]
        if n > first:
            self._data[: n - first] = samples[first:n]
        self._written += n  # publish after the copy
        return n

    def reset(self) -> None:
        """Empty the ring. Only while neither side is running."""
        self._written = self._read = 0
        self.underruns = self.underrun_samples = 0
        self.first_underrun_at = self.last_underrun_at = -1

    # ------------------------------------------------------------------ consumer
    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` (1-D float32 view, may be strided) from the ring; zero-fill the rest.

        Returns the number of real samples copied. No allocation, no locks.
        """
        want = out.shape[0]
        n = min(want, self._written - self._read)
        if n > 0:
            start = self._read % self.capacity
            first = min(n, self.capacity - start)
            out[:first] = self._data[start:start + first]
            if n > first:
                out[first:n] = self._data[: n - first]
            self._read += n  # publish after the copy
        else:
            n = 0
        if n < want:
            out[n:] = 0.0
            if self.underruns == 0:
                self.first_underrun_at = self._read
            self.last_underrun_at = self._read
            self.underruns += 1
            self.underrun_samples += want - n
        return n

    def discard(self, n: int) -> int:
        """Consumer side: drop up to ``n`` samples (used when a stream is abandoned)."""
        n = max(0, min(n, self._written - self._read))
        self._read += n
        return n
