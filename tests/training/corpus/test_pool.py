"""TimeoutPool: a slow task is stopped and listed, a crash is reported, the rest completes."""
from __future__ import annotations

import os
import time

import pytest

from melsynth.training.corpus.pool import PoolInitError, TimeoutPool


def _init():
    return {"pid": os.getpid()}


def _work(state, task):
    kind, value = task
    if kind == "sleep":
        time.sleep(value)
    elif kind == "spin":
        end = time.monotonic() + value
        while time.monotonic() < end:
            pass
    elif kind == "raise":
        raise ValueError(f"bad value {value}")
    elif kind == "die":
        os._exit(3)
    yield (value, state["pid"])
    yield (value * 10, state["pid"])


def _bad_init():
    raise RuntimeError("no soundfont here")


def _run(tasks, **kw):
    messages, failures, done = [], [], []
    TimeoutPool(_init, _work, **kw).run(
        tasks, lambda t, m: messages.append((t, m)), lambda t, r: failures.append((t, r)),
        lambda t: done.append(t))
    return messages, failures, done


def test_slow_task_times_out_and_the_others_finish():
    tasks = [("ok", 1), ("spin", 60), ("ok", 2), ("ok", 3), ("ok", 4)]
    t0 = time.monotonic()
    messages, failures, done = _run(tasks, jobs=2, timeout_s=1.0, wall_timeout_s=120)
    assert time.monotonic() - t0 < 50        # CPU limit, however busy the machine is
    assert failures == [(("spin", 60), "timed out after 1 s of CPU time")]
    assert sorted(t for t in done) == sorted(t for t in tasks if t[0] == "ok")
    assert sorted(m[0] for _, m in messages) == [1, 2, 3, 4, 10, 20, 30, 40]


def test_blocked_task_is_stopped_by_the_wall_clock_limit():
    messages, failures, done = _run([("sleep", 60), ("ok", 1)], jobs=1, timeout_s=30, wall_timeout_s=1.5)
    assert failures == [(("sleep", 60), "timed out after 2 s (wall clock)")]
    assert done == [("ok", 1)]


def test_exception_and_crash_are_reported_with_reasons():
    tasks = [("raise", 7), ("die", 0), ("ok", 5)]
    messages, failures, done = _run(tasks, jobs=1, timeout_s=30)
    reasons = dict(failures)
    assert "ValueError: bad value 7" in reasons[("raise", 7)]
    assert "died" in reasons[("die", 0)] and "3" in reasons[("die", 0)]
    assert done == [("ok", 5)]
    assert [m[0] for _, m in messages] == [5, 50]


def test_workers_are_recycled_after_max_tasks():
    messages, failures, _ = _run([("ok", i) for i in range(6)], jobs=1, timeout_s=30,
                                 max_tasks_per_worker=2)
    assert failures == []
    assert len({m[1] for _, m in messages}) == 3       # three worker processes served 6 tasks


def test_worker_init_failure_stops_the_run():
    with pytest.raises(PoolInitError, match="no soundfont here"):
        TimeoutPool(_bad_init, _work, jobs=1).run([("ok", 1)], lambda *a: None, lambda *a: None)
