"""Thread priority for the threads that feed the sound card (the producer, the fake device)."""
from __future__ import annotations

import os
import threading


def raise_thread_priority(nice: int = -10) -> bool:
    """Ask the OS to schedule the calling thread ahead of ordinary work (Linux per-thread nice).

    Not real-time scheduling: a stuck producer cannot starve the machine. Without the
    permission (ordinary users) nothing changes and the producer's lead has to absorb it.
    Returns whether the priority was raised.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except (OSError, AttributeError):
        return False


def single_threaded_blas() -> bool:
    """Limit this process's BLAS (OpenBLAS, MKL, ...) to one thread; returns whether it could.

    The engine's matrix products are small and run in the producer's time budget: extra BLAS
    threads only spin beside it, and on a busy machine they contend for the cores (the mel
    pseudo-inverse's SVD took about 2 s of the app's start on two busy cores, 35 ms on one
    thread).
    """
    import numpy  # noqa: F401 - loads the BLAS library, which threadpoolctl finds among those loaded

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it BLAS keeps its threads
        return False
    threadpool_limits(1, user_api="blas")
    return True
