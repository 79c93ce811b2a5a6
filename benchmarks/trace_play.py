"""Play the shipped bundle on a real device with every producer step and sleep traced; show the
trace around each underrun (prints; not a test).

    jackd --no-realtime -d dummy -r 48000 -p 256 &
    .venv/bin/python benchmarks/trace_play.py --seconds 120 --hostapi JACK [--save steps.npy]

Each underrun comes with the producer's last few decisions before it: ``plan`` (time left before
the device would find the ring short, and the lead it was started with), ``step`` (wall and CPU
time: wall well above CPU means the thread was off the CPU) and ``sleep`` (how late it woke).
It tells a stall of the machine (a step's wall time far above its CPU time, a late wake-up)
from a step that is slow in itself (docs/design.md, "When the producer steps").
The tracing wraps ``Synth``'s private scheduling methods: a diagnostic, not an API.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from melsynth.engine.offline.render import walk_controls  # noqa: E402
from melsynth.engine.runtime.bundle import load_bundle  # noqa: E402
from melsynth.engine.stream.synth import Synth  # noqa: E402


def traced_synth(synth: Synth, trace: list) -> None:
    """Record ``("plan", t, to_dry, heavy, lead)``, ``("step", t, wall, cpu, underruns)`` and
    ``("sleep", t, asked, late)`` into ``trace`` (appends only: no I/O in the producer)."""
    produce, sleep, plan = synth._produce_one, synth._sleep, synth._plan

    def traced_produce(apply: bool = True):
        t0, c0 = time.perf_counter(), time.thread_time()
        out = produce(apply)
        trace.append(("step", t0, time.perf_counter() - t0, time.thread_time() - c0, synth.ring.underruns))
        return out

    def traced_sleep(seconds: float) -> None:
        t0 = time.perf_counter()
        sleep(seconds)
        trace.append(("sleep", t0, seconds, time.perf_counter() - t0 - seconds))

    def traced_plan(to_dry: float):
        decision = plan(to_dry)
        if decision[0]:
            trace.append(("plan", time.perf_counter(), to_dry, decision[2], decision[3]))
        return decision

    synth._produce_one, synth._sleep, synth._plan = traced_produce, traced_sleep, traced_plan


def show(trace: list, at: int, before: int = 12) -> None:
    t_ref = trace[at][1]
    for event in trace[max(0, at - before):at + 2]:
        kind, t = event[0], 1e3 * (event[1] - t_ref)
        if kind == "step":
            print(f"  step  {t:9.2f} ms: wall {1e3 * event[2]:.2f} ms, cpu {1e3 * event[3]:.2f} ms, underruns {event[4]}")
        elif kind == "sleep":
            print(f"  sleep {t:9.2f} ms: asked {1e3 * event[2]:.2f} ms, woke {1e3 * event[3]:.2f} ms late")
        else:
            print(f"  plan  {t:9.2f} ms: {1e3 * event[2]:.2f} ms left, lead {1e3 * event[4]:.2f} ms"
                  + (" (heavy)" if event[3] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--hostapi", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the steps' (start, wall, cpu) seconds as .npy")
    args = parser.parse_args()
    bundle = load_bundle(Path(__file__).resolve().parent.parent / "models" / "default")
    synth = Synth(bundle, controls=walk_controls(args.seed))
    trace: list = []
    traced_synth(synth, trace)
    if not synth.play(args.device, hostapi=args.hostapi):
        sys.exit(f"trace_play: {synth.status().error}")
    time.sleep(args.seconds)
    status = synth.status()
    synth.stop()
    steps = np.array([e[1:4] for e in trace if e[0] == "step"])
    print(f"{status.device}: {status.underruns} underruns in {args.seconds:g} s, {len(steps)} steps "
          f"(wall median {1e3 * np.median(steps[:, 1]):.2f} ms, p99 {1e3 * np.percentile(steps[:, 1], 99):.2f} ms, "
          f"max {1e3 * steps[:, 1].max():.2f} ms), lead at the end {status.lead_ms:.2f} ms")
    if args.save:
        np.save(args.save, steps)
    seen = 0
    for i, event in enumerate(trace):
        if event[0] == "step" and event[4] > seen:
            seen = event[4]
            print(f"underrun {seen} (counted at the end of this step or before it):")
            show(trace, i)


if __name__ == "__main__":
    main()
