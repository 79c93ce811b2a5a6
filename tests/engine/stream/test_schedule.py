"""The producer's schedule: the device read clock and the recent-cost trackers (engine.stream.schedule)."""
import math

import numpy as np
import pytest

from melsynth.engine.stream.schedule import DeviceClock, RecentMax, RecentQuantile

RATE, BLOCK = 48000, 256
PERIOD = BLOCK / RATE


def test_before_any_read_a_read_is_taken_as_due_now():
    clock = DeviceClock(RATE)
    assert clock.phase == math.inf
    assert clock.time_to_dry(5.0, 0, 3 * BLOCK + 100, BLOCK) == pytest.approx(3 * PERIOD)
    assert clock.time_to_dry(5.0, 0, BLOCK - 1, BLOCK) == 0.0


def test_time_to_dry_follows_the_read_grid_not_the_fill_alone():
    clock = DeviceClock(RATE)
    t0 = 10.0  # the device's first read (position 0) at t0; seen right after the second one
    clock.observe(t0 + PERIOD + 1e-5, 2 * BLOCK, BLOCK)
    assert clock.phase == pytest.approx(t0 + 1e-5)
    now = t0 + 1.5 * PERIOD  # halfway between the second read and the third
    # a fill one sample short of two blocks lasts one more read (due in half a period), then
    # the read after it fails: one and a half periods, not "1.99 blocks' worth"
    ttd = clock.time_to_dry(now, 2 * BLOCK, 2 * BLOCK - 1, BLOCK)
    assert ttd == pytest.approx(1.5 * PERIOD, abs=2e-5)
    # one sample more buys a whole period
    assert clock.time_to_dry(now, 2 * BLOCK, 2 * BLOCK, BLOCK) == pytest.approx(2.5 * PERIOD, abs=2e-5)


def test_a_late_read_does_not_move_the_grid_later():
    clock = DeviceClock(RATE, window_s=10.0)
    t0 = 0.0
    clock.observe(t0 + PERIOD, 2 * BLOCK, BLOCK)            # on time (seen promptly)
    clock.observe(t0 + 2 * PERIOD + 0.004, 3 * BLOCK, BLOCK)  # 4 ms late
    # the next read may come on the grid again (a catch-up), not a period after the late one
    assert clock.read_due(3 * BLOCK) == pytest.approx(t0 + 3 * PERIOD)
    assert clock.next_read_in(t0 + 2 * PERIOD + 0.004, 3 * BLOCK) < PERIOD - 0.003


def test_an_overdue_device_leaves_no_time():
    clock = DeviceClock(RATE)
    clock.observe(PERIOD, 2 * BLOCK, BLOCK)
    # long after the reads this fill would have covered: the failing read is overdue
    assert clock.time_to_dry(1.0, 2 * BLOCK, BLOCK, BLOCK) == 0.0


def test_the_grid_estimate_forgets_an_early_bound_after_two_windows():
    """A device clock running slow against ours: old (earlier) bounds must not stay for ever."""
    clock = DeviceClock(RATE, window_s=1.0)
    clock.observe(1.0, 2 * BLOCK, BLOCK)
    early = clock.phase
    slow = 0.003  # from now on the reads come 3 ms later on the grid
    for i in range(3, 600):
        clock.observe(1.0 + slow + (i - 2) * PERIOD, i * BLOCK, BLOCK)
    assert clock.phase == pytest.approx(early + slow)


def test_two_blocks_taken_within_a_period_count_as_a_burst():
    clock = DeviceClock(48000)
    period = 256 / 48000
    clock.observe(0.0, 0, 256)
    clock.observe(period, 256, 256)  # one block in one period: regular
    clock.observe(period + 0.001, 768, 256)  # two blocks within a millisecond: a catch-up burst
    clock.observe(1.0, 1280, 256)  # two blocks over a long wait: nothing unusual
    clock.observe(1.0 + 0.001, 1280, 256)
    clock.observe(1.0 + 0.002, 1536, 256)  # one block soon after a poll: regular
    assert clock.bursts == 1
    clock.reset()
    assert clock.bursts == 0


def test_recent_max_remembers_a_spike_for_one_to_two_windows():
    m = RecentMax(4)
    for v in (1.0, 5.0, 1.0, 1.0):
        m.update(v)
    assert m.value == 5.0
    for _ in range(4):
        m.update(2.0)
    assert m.value == 5.0  # in the older bucket
    m.update(2.0)
    assert m.value == 2.0  # dropped with it


def test_recent_max_start_assumption_stands_for_its_updates_only():
    m = RecentMax(100, start=9.0, start_updates=3)
    assert m.value == 9.0
    for _ in range(3):
        m.update(1.0)
    assert m.value == 1.0
    assert RecentMax(3).value == 0.0


def test_recent_quantile_ignores_a_rare_spike():
    q = RecentQuantile(64, 0.9, start=3.0)
    assert q.value == 3.0
    values = np.r_[np.full(63, 2.0), 10.0]
    for v in values:
        q.update(float(v))
    assert q.value == pytest.approx(np.quantile(values, 0.9))
    assert q.value == 2.0


@pytest.mark.parametrize("bad", [dict(window=0)])
def test_recent_max_rejects_an_empty_window(bad):
    with pytest.raises(ValueError, match="window"):
        RecentMax(**bad)
