"""When the producer must deliver: the device's read clock, as the ring shows it.

The device takes ``block`` samples every ``period = block / rate`` seconds and
fails (an underrun) at the first read that finds fewer than ``block`` samples.
With ``fill`` samples queued and the device's next read starting at ring
position ``R``, due at time ``g(R)``::

    read at:  g(R)        g(R) + P        ...   g(R) + n P          n = fill // block
    takes:    |-- block --|-- block --|   ...   |-- finds < block: fails unless a step delivered first

    time_to_dry = g(R + n * block) - now

so a producer step that starts ``time_to_dry - step`` before then is in time,
however the fill sits against the block boundaries. (A target on the fill
alone cannot know that: a fill a sample above the target drops a whole block
below it at the next read, and the step that starts then may have less than
the rest of one period.)

The read grid ``g(p) = phase + p / rate`` is estimated from the producer's
polls. The read position changing to ``R`` by time ``t`` says the read that
began at ``R - block`` happened at or before ``t``:
``phase <= t - (R - block) / rate``. The smallest bound of the last one or
two windows (``window_s``) is the estimate: the earliest the device has been
reading lately. A late read followed by an on-time one (a catch-up burst) is
so never a surprise, and a device clock that runs slow against this one moves
the estimate within two windows. Polling soon after each read keeps the bound
tight (``next_read_in``). Until a read has been seen, one is taken to be due
now.

The clock also counts **bursts**: the device taking two blocks or more between two
polls less than a block period apart (a late cycle caught up). Counted, not covered:
queueing the largest recent burst raised the idle knob latency from 30 to 34 ms,
because the fake real-time device of the bench bursts too.
"""
from __future__ import annotations

import math

import numpy as np


class DeviceClock:
    """Estimated read grid of an output device; times in ``time.perf_counter`` seconds."""

    def __init__(self, rate: int, window_s: float = 1.0):
        self.rate = int(rate)
        self.window_s = float(window_s)
        self.reset()

    def reset(self) -> None:
        self._seen_position = -1
        self._polled_at = -math.inf  # the previous poll
        self.bursts = 0
        self._phase_now = math.inf  # smallest bound in the current window
        self._phase_before = math.inf  # ... and in the window before it
        self._window_start = -math.inf

    @property
    def phase(self) -> float:
        """``g(0)``: estimated time of the device's first read (``inf`` before a read is seen)."""
        return min(self._phase_now, self._phase_before)

    def observe(self, now: float, read_position: int, block: int) -> None:
        """The ring's read position as seen at ``now`` (call it every poll)."""
        previous, polled = self._seen_position, self._polled_at
        self._polled_at = now
        if read_position == previous:
            return
        self._seen_position = read_position
        if previous >= 0 and read_position - previous >= 2 * block and (now - polled) * self.rate < block:
            self.bursts += 1
        if read_position <= 0:
            return
        if now - self._window_start >= self.window_s:
            self._phase_before, self._phase_now = self._phase_now, math.inf
            self._window_start = now
        bound = now - max(read_position - block, 0) / self.rate
        if bound < self._phase_now:
            self._phase_now = bound

    def read_due(self, position: int) -> float:
        """Earliest time the read starting at ring ``position`` is expected (``-inf`` before any read)."""
        phase = self.phase
        return phase + position / self.rate if phase != math.inf else -math.inf

    def next_read_in(self, now: float, read_position: int) -> float:
        """Seconds until the next read (negative: overdue; ``-inf`` before any read)."""
        return self.read_due(read_position) - now

    def time_to_dry(self, now: float, read_position: int, fill: int, block: int) -> float:
        """Seconds until the device would find less than a block, if nothing is delivered first.

        Before any read has been seen, the next one is assumed due now:
        ``(fill // block) * period``. Never negative.
        """
        block = max(int(block), 1)
        whole = max(int(fill), 0) // block
        due = self.read_due(read_position + whole * block)
        if due == -math.inf:
            return whole * block / self.rate
        return max(due - now, 0.0)


class RecentMax:
    """The largest value of roughly the last ``window`` to ``2 * window`` updates.

    Two buckets of ``window`` updates each: the value is the larger of the two
    bucket maxima, and the older bucket is dropped when the newer one is full, so a
    spike is remembered for a while and then forgotten at once. ``start`` is an
    assumption that stands until ``start_updates`` real values have come in (a long
    window would otherwise keep a start-up guess for as long as a real spike).
    """

    def __init__(self, window: int, start: float = 0.0, start_updates: int = 0):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = int(window)
        self.start_updates = int(start_updates)
        self.reset(start)

    def reset(self, start: float = 0.0) -> None:
        self._start = float(start)
        self._older = self._newer = -math.inf
        self._count = 0
        self._seen = 0

    def update(self, value: float) -> None:
        if self._count >= self.window:
            self._older, self._newer, self._count = self._newer, -math.inf, 0
        if value > self._newer:
            self._newer = value
        self._count += 1
        self._seen += 1

    @property
    def value(self) -> float:
        """The recent maximum (0 before any value and without a start assumption)."""
        recent = max(self._older, self._newer)
        if self._seen < self.start_updates:
            recent = max(recent, self._start)
        return recent if recent != -math.inf else 0.0


class RecentQuantile:
    """A quantile of the last ``size`` values (preallocated; recomputed only when a value comes in).

    For costs whose rare spikes should not set the plan (a spike here only makes a knob
    move wait a frame longer), unlike ``RecentMax``, whose spikes must be covered.
    ``start`` stands until the first value.
    """

    def __init__(self, size: int, q: float, start: float = 0.0):
        if size < 1 or not 0.0 <= q <= 1.0:
            raise ValueError(f"need size >= 1 and 0 <= q <= 1, got {size}, {q}")
        self.q = float(q)
        self._values = np.zeros(int(size))
        self.reset(start)

    def reset(self, start: float = 0.0) -> None:
        self._count = 0
        self._value = float(start)

    def update(self, value: float) -> None:
        self._values[self._count % self._values.size] = value
        self._count += 1
        n = min(self._count, self._values.size)
        self._value = float(np.quantile(self._values[:n], self.q))

    @property
    def value(self) -> float:
        return self._value
