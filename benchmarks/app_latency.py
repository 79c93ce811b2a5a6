"""Knob-to-sound latency and CPU of the app itself (prints figures; not a test)

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/app_latency.py [--seconds 20] [--bundle B]

``melsynth bench`` times knob moves made by a bare ``Synth``. Here the window runs as a
musician has it: its timers paint the live spectrogram and the meter, and the moves come from
its knob widgets on the GUI thread (a random knob every 14 to 56 ms, through ``Knob.set_value``,
what a mouse drag does). The synth plays into the same real-time fake device as the bench
(48 kHz, 256-sample blocks), so the figures compare with ``latency_ms_*`` there; the GUI
thread's CPU share is the painting's cost.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from melsynth.app.main_window import MainWindow  # noqa: E402
from melsynth.engine.device.output import FakeOutput  # noqa: E402
from melsynth.engine.offline.bench import BENCH_BLOCK, BENCH_RATE, KnobLatencyProbe, latency_figures  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--bundle", default=None)
    args = ap.parse_args()
    app = QApplication(sys.argv[:1])
    outputs = []

    def device():
        outputs.append(FakeOutput(BENCH_RATE, BENCH_BLOCK, realtime=True, name="fake 48 kHz / 256",
                                  log_blocks=int((args.seconds + 10) * BENCH_RATE / BENCH_BLOCK)))
        return outputs[-1]

    window = MainWindow(bundle=args.bundle, output_factory=device, autoplay=False)
    window.resize(1280, 800)
    window.show()
    synth = window.synth
    knobs = list(window.knob_bank.knobs.values())
    rng = np.random.default_rng(0)
    probe: list[KnobLatencyProbe] = []
    send = synth.set_controls

    def timed_send(controls) -> None:
        probe[0].submit(controls)
        send(controls)

    def move() -> None:
        knobs[int(rng.integers(len(knobs)))].set_value(float(rng.uniform(-2.5, 2.5)), emit=True)
        QTimer.singleShot(int(rng.uniform(0.4, 1.6) * 35), move)

    started: dict = {}

    def start() -> None:
        if not window.play():
            raise SystemExit(f"no sound: {synth.status().error}")
        probe.append(KnobLatencyProbe(synth, outputs[-1]))
        synth.set_controls = timed_send
        started.update(wall=time.perf_counter(), cpu=time.process_time(), gui=time.thread_time())
        QTimer.singleShot(300, move)

    def finish() -> None:
        wall = time.perf_counter() - started["wall"]
        result = {"seconds": args.seconds,
                  "cpu_gui_thread": (time.thread_time() - started["gui"]) / wall,
                  "cpu_process": (time.process_time() - started["cpu"]) / wall}
        st = synth.status()
        synth.set_controls = send
        window.stop()
        result.update(latency_figures(probe[0].latencies_ms()))
        result.update(latency_underruns=st.underruns, latency_near_misses=synth.near_misses,
                      latency_lead_ms_end=st.lead_ms, cpu_producer=st.cpu_load)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
        window.close()
        app.quit()

    QTimer.singleShot(1000, start)
    QTimer.singleShot(int(1000 + 1000 * args.seconds), finish)
    app.exec()


if __name__ == "__main__":
    main()
