"""How loud is the click of an underrun or a stop, with hard edges and declicked? (prints figures; not a test)

    .venv/bin/python benchmarks/declick.py [--seconds 20] [--trials 200] [--bundle models/default]

Renders music from the bundle at 48 kHz (the offline render of the streaming pipeline), then
plays it through ``RingBuffer`` reads of 256-sample blocks, as the device callback does:

* underrun: at a random point the ring runs dry (a block with a random number of real samples,
  then one block with none), then the music goes on;
* stop: at a random point the device stops reading (``request_stop``, then silence).

The models make nothing above 5.5 kHz (11025 Hz audio; the resampler's images lie below
-115 dB), so whatever an 8 kHz high-pass finds in the output is the edge: a click. Printed
per case: the loudest 1 ms of that high band around the edge in dB relative to the music's
RMS (median and max over the trials), with ``fade_samples`` 0 (hard edges) and ``--declick-ms`` (default: the engine's
``SynthConfig.declick_ms``).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.signal import butter, sosfilt

from melsynth.engine.device.ringbuffer import RingBuffer  # noqa: E402
from melsynth.engine.stream.config import SynthConfig  # noqa: E402
from melsynth.engine.stream.controls import Controls  # noqa: E402
from melsynth.engine.stream.pipeline import render_offline  # noqa: E402

RATE, BLOCK = 48000, 256


def play(music: np.ndarray, at: int, fade: int, case: str) -> np.ndarray:
    """What the device hands out around sample ``at``: 40 blocks, the edge in block 20."""
    ring = RingBuffer(len(music) + BLOCK, fade)
    start = at - 20 * BLOCK
    out = np.zeros(40 * BLOCK, np.float32)
    if case == "underrun":
        part = at % BLOCK  # real samples in the short block
        ring.write(music[start:at + part])
        for b in range(40):
            if b == 21:  # the producer catches up; the music goes on where it left off
                ring.write(music[at + part:at + 20 * BLOCK])
            ring.read_into(out[b * BLOCK:(b + 1) * BLOCK])
    else:
        ring.write(music[start:start + 40 * BLOCK])
        for b in range(40):
            if b == 20:
                ring.request_stop()
            ring.read_into(out[b * BLOCK:(b + 1) * BLOCK])
    return out


def click_db(out: np.ndarray, music_rms: float, sos) -> float:
    """Loudest 1 ms of the >8 kHz band near the edge (blocks 18..24), dB re the music's RMS."""
    high = sosfilt(sos, out.astype(np.float64))[18 * BLOCK:25 * BLOCK]
    win = RATE // 1000
    energy = np.convolve(high ** 2, np.ones(win) / win, mode="valid")
    return float(10 * np.log10(energy.max() + 1e-20) - 20 * np.log10(music_rms))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--declick-ms", type=float, default=SynthConfig().declick_ms)
    args = ap.parse_args()
    controls = Controls(seed=3, walk_seed=3, walk_speed=0.3, walk_spread=1.0)
    music = render_offline(args.bundle, args.seconds, controls, sample_rate=RATE)
    rms = float(np.sqrt(np.mean(music.astype(np.float64) ** 2)))
    sos = butter(8, 8000, "highpass", fs=RATE, output="sos")
    fade = round(args.declick_ms * 1e-3 * RATE)
    rng = np.random.default_rng(0)
    spots = rng.integers(25 * BLOCK, len(music) - 25 * BLOCK, args.trials)
    floor = [click_db(music[s - 20 * BLOCK:s + 20 * BLOCK], rms, sos) for s in spots]
    result = {"music_rms_dbfs": round(20 * np.log10(rms), 1), "trials": args.trials,
              "declick_samples": fade, "no_edge_median_db": round(float(np.median(floor)), 1)}
    for case in ("underrun", "stop"):
        for name, f in (("hard", 0), ("declicked", fade)):
            db = [click_db(play(music, int(s), f, case), rms, sos) for s in spots]
            result[f"{case}_{name}_median_db"] = round(float(np.median(db)), 1)
            result[f"{case}_{name}_max_db"] = round(float(np.max(db)), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
