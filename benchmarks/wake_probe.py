"""How late does this machine wake a sleeping thread? (prints figures; not a test)

    .venv/bin/python benchmarks/wake_probe.py [--seconds 45] [--policy normal nice fifo] [--hog]

Sleeps 1 ms at a time for ``--seconds`` under each scheduling policy (``nice``: nice -10,
the producer's; ``fifo``: SCHED_FIFO priority 10; both need root or rtprio limits) and
prints the lateness percentiles in ms and how many wake-ups were over 2 and 4 ms late.
``--hog`` runs a busy process beside it, as ``melsynth bench --soak --hog`` does. Whatever
no policy removes comes from below the OS (on a virtual machine: the hypervisor), and
only a longer lead (more latency) covers it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def probe(policy: str, seconds: float) -> dict:
    """Run in a child process so that the policy applies to nothing else."""
    if policy == "nice":
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    elif policy == "fifo":
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    late = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        time.sleep(0.001)
        late.append(time.perf_counter() - t0 - 0.001)
    ms = np.array(late) * 1e3
    return {"policy": policy, "wakeups": int(ms.size), "p50_ms": round(float(np.median(ms)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "p99.9_ms": round(float(np.percentile(ms, 99.9)), 3),
            "max_ms": round(float(ms.max()), 3), "over_2ms": int((ms > 2).sum()), "over_4ms": int((ms > 4).sum())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=45.0)
    ap.add_argument("--policy", nargs="+", default=["normal", "nice", "fifo"], choices=["normal", "nice", "fifo"])
    ap.add_argument("--hog", action="store_true", help="a busy process beside the probe")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(probe(args.child, args.seconds)))
        return 0
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    try:
        for policy in args.policy:
            r = subprocess.run([sys.executable, __file__, "--child", policy, "--seconds", str(args.seconds)],
                               capture_output=True, text=True)
            line = r.stdout.strip() or json.dumps({"policy": policy, "error": r.stderr.strip()[-300:]})
            print(json.dumps({"hog": args.hog, **json.loads(line)}), flush=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
