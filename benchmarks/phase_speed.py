"""Per-frame cost of ``StreamingPhase.push`` vs the frozen original (prints figures; not a test).

    .venv/bin/python benchmarks/phase_speed.py [--seconds 4] [--rounds 5] [--init gradient] [--numpy]

Magnitudes are the classical vocoder's (``MelMagnitude`` of the log-mel of
synthetic notes), pushed one frame at a time as the engine does. The engine's
class and the verbatim copy of the original in ``tests/engine/dsp/phase_reference.py``
run interleaved, round by round, in one process, so that load from other
processes hits both alike; the best round of each is reported (CPU time).
Also prints the largest difference between the two outputs (0: bit-identical).
``--numpy`` times the engine's numpy path (no numba kernels) instead.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


from melsynth.engine.dsp.features import MelSpec, log_mel  # noqa: E402
from melsynth.engine.dsp.magnitude import MelMagnitude  # noqa: E402
from melsynth.engine.dsp.phase import INIT_METHODS, PhaseConfig, StreamingPhase  # noqa: E402


def notes(spec: MelSpec, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * spec.sample_rate)) / spec.sample_rate
    x = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.3):
        f0 = rng.uniform(80, 800)
        env = np.where(t >= start, np.exp(-(t - start) * rng.uniform(1, 8)), 0)
        x += sum(env * np.sin(2 * np.pi * f0 * h * t) / h ** 1.5 for h in range(1, 8))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def stream(phase, mag: np.ndarray, phases: np.ndarray | None) -> tuple[np.ndarray, float]:
    """One frame per push, then flush: (audio, CPU seconds per frame: this thread's CPU time,
    which other processes on a shared machine inflate less than wall-clock time)."""
    phase.reset()
    parts = []
    t0 = time.thread_time()
    for i in range(mag.shape[1]):
        parts.append(phase.push(mag[:, i:i + 1], None if phases is None else phases[:, i:i + 1]))
    elapsed = time.thread_time() - t0
    parts.append(phase.flush())
    return np.concatenate(parts), elapsed / mag.shape[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=4.0, help="audio seconds per round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best one counts)")
    p.add_argument("--init", choices=INIT_METHODS + ("phase",), nargs="*",
                   default=list(INIT_METHODS) + ["phase"], help="start phases to time ('phase': handed in)")
    args = p.parse_args()
    spec = MelSpec()
    mag = MelMagnitude(spec, 3)(log_mel(spec, notes(spec, args.seconds)))
    phases = np.random.default_rng(1).uniform(-np.pi, np.pi, mag.shape)
    print(f"{mag.shape[1]} frames of {spec.hop_length} samples, best of {args.rounds} rounds")
    print(f"{'start':<10}{'numpy us/frame':>19}{'numba us/frame':>16}{'speed-up':>10}{'max |diff|':>12}")
    for init in args.init:
        config = PhaseConfig(init="gradient" if init == "phase" else init)
        handed = phases if init == "phase" else None
        new, ref = StreamingPhase(spec, config, fast=True), StreamingPhase(spec, config, fast=False)
        best_new, best_ref, diff = np.inf, np.inf, 0.0
        for _ in range(args.rounds):
            y_ref, t_ref = stream(ref, mag, handed)
            y_new, t_new = stream(new, mag, handed)
            best_ref, best_new = min(best_ref, t_ref), min(best_new, t_new)
            diff = max(diff, float(np.max(np.abs(y_new - y_ref))))
        print(f"{init:<10}{1e6 * best_ref:>19.0f}{1e6 * best_new:>16.0f}{best_ref / best_new:>9.2f}x{diff:>12.2e}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
