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
