"""What a producer step costs after the CPU idled, against back to back (prints figures; not a test).

    .venv/bin/python benchmarks/cold_step.py [--steps 300]

The bench's ``chain_stream_rtf`` runs steps back to back. In play the producer sleeps about a
frame (23 ms) between steps, and the CPU comes back cold. This runs the shipped bundle's
pipeline (48 kHz out) with a sleep (or a busy spin) between steps, then the same per stage.

On a 2-core virtual machine: about 0.4 ms a step back to back, 1.3 ms after 5 ms of sleep,
1.6 ms after 20 ms, 1.0 ms after a 20 ms spin; every stage slows alike.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from melsynth.engine.runtime.bundle import load_bundle  # noqa: E402
from melsynth.engine.stream.config import SynthConfig  # noqa: E402
from melsynth.engine.stream.controls import Controls  # noqa: E402
from melsynth.engine.stream.pipeline import Pipeline  # noqa: E402

STAGES = ("mel (prior)", "magnitude", "start phase", "iterations", "commit + emit", "safety", "resample", "tap")


def _pipeline() -> Pipeline:
    bundle = load_bundle(Path(__file__).resolve().parent.parent / "models" / "default")
    controls = Controls(seed=1, walk_seed=1, walk_speed=0.2, walk_spread=1.0)
    pipe = Pipeline(bundle, "classical", SynthConfig(), controls, 48000)
    for _ in range(50):
        pipe.step()
    return pipe


def _pause(seconds: float, spin: bool) -> None:
    if not seconds:
        return
    if spin:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
    else:
        time.sleep(seconds)


def whole_steps(pipe: Pipeline, steps: int) -> None:
    for gap, spin in ((0.0, False), (0.001, False), (0.005, False), (0.020, False), (0.020, True)):
        took = []
        for _ in range(steps):
            _pause(gap, spin)
            t0 = time.perf_counter()
            pipe.step()
            took.append(time.perf_counter() - t0)
        ms = np.array(took) * 1e3
        what = "nothing" if not gap else f"{'spin' if spin else 'sleep'} {gap * 1e3:.0f} ms"
        print(f"between steps {what:>12}: median {np.median(ms):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms")


def _one_staged(pipe: Pipeline) -> np.ndarray:
    """One step of the classical chain, stage by stage (``Pipeline.step``'s work, unrolled)."""
    voc = pipe.chain.vocoder
    magnitude, phase = voc.magnitude, voc.phase
    t = [time.perf_counter()]
    mel = pipe._mel(pipe.chain, {}, 1)
    t.append(time.perf_counter())
    mag = magnitude.frame(mel[:, 0].astype(np.float32))
    t.append(time.perf_counter())
    n = phase.n_active
    phase._mags[n] = mag
    phase._gradient_start(phase._mags[n], phase._spectra[n])
    phase._previous[n] = 0.0
    phase.n_active, phase.frames_in = n + 1, phase.frames_in + 1
    t.append(time.perf_counter())
    phase._iterate()
    t.append(time.perf_counter())
    if phase.n_active == phase.n_active_max:
        phase._commit_oldest()
    audio = np.zeros(phase.hop, np.float32)
    phase._emit(audio, 0)
    t.append(time.perf_counter())
    safe = pipe.safety.process(audio, pipe._gain)
    t.append(time.perf_counter())
    out = pipe.resampler.process(safe)
    t.append(time.perf_counter())
    pipe.tap.push(mel, out)
    t.append(time.perf_counter())
    return np.diff(t)


def stages(pipe: Pipeline, steps: int) -> None:
    if pipe.chain.vocoder.kind != "classical":
        return
    for gap in (0.0, 0.020):
        took = []
        for _ in range(steps):
            _pause(gap, False)
            took.append(_one_staged(pipe))
        us = np.median(np.array(took), axis=0) * 1e6
        print(f"sleep {gap * 1e3:2.0f} ms, per stage (us): "
              + ", ".join(f"{name} {v:.0f}" for name, v in zip(STAGES, us)) + f"; sum {us.sum():.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    pipe = _pipeline()
    whole_steps(pipe, args.steps)
    stages(pipe, args.steps)


if __name__ == "__main__":
    main()
