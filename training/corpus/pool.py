"""Worker processes with a time limit per task.

``multiprocessing.Pool`` cannot stop one slow task, and a few scores take
minutes in music21 (or could hang a synth). Here each worker is a process with
its own pipe; the parent hands it one task at a time and kills it when the task
runs past its limit, reports the task as failed, and starts a fresh worker::

    parent --task--> worker k --("msg", id, payload)*--> parent
                              --("done", id)----------->
                              --("error", id, reason)-->   exception in the task
    (task over its limit)          -> terminate, "timed out ...", respawn
    (pipe closed)                  -> "worker process died (exit code X)", respawn

The limit is CPU time (``timeout_s`` of the worker's user + system time, read
from /proc), so a busy machine does not fail slow-but-sound tasks; a task that
blocks without using CPU is stopped after ``wall_timeout_s`` (default 4x).
Without /proc the CPU limit applies to wall time.

``init()`` runs once per worker (e.g. loading a soundfont); it returns the state
passed to every ``work(state, task)`` call, a generator of messages.
Workers start from multiprocessing's fork server (a clean single-threaded
process), not by forking the caller: a caller with native threads (onnxruntime,
Qt, earlier tests) would hand children locks held by threads that do not exist
there, and FluidSynth's ``sfload`` could block forever. ``preload_modules`` are
imported once by the fork server (music21, librosa: seconds each) so each
worker inherits them; this works when the pool starts the fork server.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator


class PoolInitError(RuntimeError):
    """A worker could not start (the reason applies to every task: stop the run)."""


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _worker_main(conn, init: Callable[[], Any], work: Callable[[Any, Any], Iterator[Any]]) -> None:
    # The parent decides when workers stop: Ctrl-C reaches the whole process group,
    # and a parent's SIGTERM handler (forked along) must not fire here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        state = init()
    except BaseException as exc:  # report, then exit: the parent stops the run
        conn.send(("init_error", None, f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None, None))
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        task_id, task = item
        try:
            for msg in work(state, task):
                conn.send(("msg", task_id, msg))
            conn.send(("done", task_id, None))
        except Exception as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
            conn.send(("error", task_id, f"{type(exc).__name__}: {exc}{where}"))


@dataclass
class _Slot:
    proc: Any
    conn: Any
    task_id: int | None = None
    started: float = 0.0
    done_tasks: int = 0
    ready: bool = False
    cpu_started: float | None = None


class TimeoutPool:
    """Run tasks on ``jobs`` processes, each task limited to ``timeout_s`` CPU seconds."""

    def __init__(self, init: Callable[[], Any], work: Callable[[Any, Any], Iterator[Any]],
                 jobs: int = 2, timeout_s: float = 300.0, max_tasks_per_worker: int = 50,
                 preload_modules: tuple[str, ...] = (), wall_timeout_s: float | None = None):
        if jobs < 1:
            raise ValueError(f"jobs={jobs} must be >= 1")
        self.init, self.work = init, work
        self.jobs, self.timeout_s = jobs, timeout_s
        self.wall_timeout_s = wall_timeout_s if wall_timeout_s is not None else 4 * timeout_s
        self.max_tasks_per_worker = max_tasks_per_worker
        self.preload_modules = tuple(preload_modules)
        self._unready_deaths = 0
        # Not "fork": a parent with native threads (onnxruntime, Qt, a test runner's
        # earlier tests) forks children whose fluidsynth/glib locks are held by threads
        # that do not exist there, and sfload() blocks forever. The fork server is a
        # clean single-threaded parent.
        methods = mp.get_all_start_methods()
        self._ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child, self.init, self.work), daemon=True)
        proc.start()
        child.close()
        return _Slot(proc, parent)

    @staticmethod
    def _stop(slot: _Slot) -> None:
        if slot.proc.is_alive():
            slot.proc.terminate()
            slot.proc.join(3)
            if slot.proc.is_alive():
                slot.proc.kill()
        slot.proc.join(1)
        slot.conn.close()

    def run(self, tasks: Iterable[Any], on_message: Callable[[Any, Any], None],
            on_failure: Callable[[Any, str], None],
            on_done: Callable[[Any], None] | None = None,
            on_tick: Callable[[], None] | None = None) -> None:
        """Run all tasks; callbacks run in the parent: ``on_message(task, msg)``,
        ``on_failure(task, reason)``, ``on_done(task)``, ``on_tick()`` about once a second."""
        queue = list(tasks)[::-1]
        if self.preload_modules and self._ctx.get_start_method() == "forkserver":
            self._ctx.set_forkserver_preload(list(self.preload_modules))
        by_id: dict[int, Any] = {}
        next_id = 0
        slots = [self._spawn() for _ in range(min(self.jobs, max(1, len(queue))))]
        try:
            while queue or any(s.task_id is not None for s in slots):
                for i, slot in enumerate(slots):
                    if slot.ready and slot.task_id is None and queue:
                        if slot.done_tasks >= self.max_tasks_per_worker:
                            # Fresh process now and then: music21 keeps caches.
                            slot.conn.send(None)
                            self._stop(slot)
                            slots[i] = slot = self._spawn()
                            continue
                        task = queue.pop()
                        by_id[next_id] = task
                        slot.task_id, slot.started = next_id, time.monotonic()
                        slot.cpu_started = _cpu_seconds(slot.proc.pid)
                        slot.conn.send((next_id, task))
                        next_id += 1
                for conn in wait([s.conn for s in slots], timeout=1.0):
                    slot = next(s for s in slots if s.conn is conn)
                    try:
                        kind, task_id, payload = conn.recv()
                    except (EOFError, OSError):
                        self._replace_dead(slots, slot, on_failure, by_id)
                        continue
                    if kind == "ready":
                        slot.ready = True
                    elif kind == "init_error":
                        raise PoolInitError(f"worker cannot start: {payload}")
                    elif kind == "msg":
                        on_message(by_id[task_id], payload)
                    elif kind in ("done", "error"):
                        task = by_id.pop(task_id)
                        slot.task_id = None
                        slot.done_tasks += 1
                        if kind == "error":
                            on_failure(task, payload)
                        elif on_done is not None:
                            on_done(task)
                now = time.monotonic()
                for i, slot in enumerate(slots):
                    reason = self._over_limit(slot, now) if slot.task_id is not None else None
                    if reason is not None:
                        task = by_id.pop(slot.task_id)
                        self._stop(slot)
                        slots[i] = self._spawn()
                        on_failure(task, reason)
                    elif not slot.proc.is_alive() and not slot.conn.poll():
                        self._replace_dead(slots, slot, on_failure, by_id)
                if on_tick is not None:
                    on_tick()
        finally:
            for slot in slots:
                try:
                    slot.conn.send(None)
                except (OSError, ValueError):
                    pass
                self._stop(slot)

    def _over_limit(self, slot: _Slot, now: float) -> str | None:
        wall = now - slot.started
        cpu_now = _cpu_seconds(slot.proc.pid)
        if slot.cpu_started is None or cpu_now is None:
            if wall > self.timeout_s:
                return f"timed out after {self.timeout_s:.0f} s"
            return None
        if cpu_now - slot.cpu_started > self.timeout_s:
            return f"timed out after {self.timeout_s:.0f} s of CPU time"
        if wall > self.wall_timeout_s:
            return f"timed out after {self.wall_timeout_s:.0f} s (wall clock)"
        return None

    def _replace_dead(self, slots, slot, on_failure, by_id) -> None:
        slot.proc.join(5)       # the pipe closes a moment before the exit code is known
        code = slot.proc.exitcode
        if not slot.ready:
            self._unready_deaths += 1
            if self._unready_deaths > 3:
                raise PoolInitError(f"worker processes die while starting (exit code {code})")
        i = slots.index(slot)
        self._stop(slot)
        slots[i] = self._spawn()
        if slot.task_id is not None:
            on_failure(by_id.pop(slot.task_id), f"worker process died (exit code {code})")
