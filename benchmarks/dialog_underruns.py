"""Underruns while the window's file dialogs open, against as long without one (prints figures; not a test).

    jackd --no-realtime -d dummy -r 11025 -p 256 &     # or any audio device
    QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python benchmarks/dialog_underruns.py [--rounds 3]

The app plays the shipped bundle on the default device. Once sound has started, each round
opens every file dialog of the window in turn (load audio into the canvas, open preset,
open model bundle, play audio file), cancels it when it is on screen, and counts the
synth's underruns from just before the dialog opens to a second later; then it counts
the underruns in a second with no dialog. The dialogs are modal: they block the GUI
thread, never the engine's producer thread, which keeps the ring filled.

JACK dummy (11025 Hz, 256 frames) on a 2-core virtual machine, eight runs (xcb under Xvfb
and offscreen): 1 underrun in 52 dialog seconds (the first dialog of one run), 0 in 52
seconds without one; a dialog is on screen 3-10 ms after it is asked for.
"""
from __future__ import annotations

import argparse
import time

WINDOW_S = 1.0
GAP_S = 1.5  # between one window and the next


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QFileDialog

    app = QApplication([])
    from melsynth.app.main_window import MainWindow

    w = MainWindow(device=args.device, blocksize=256)
    w.show()
    if w.synth is None or not w.synth.playing:
        print(f"no sound: {w.audio_error or w.bundle_error}")
        return 1
    dialogs = {"load audio": w._load_audio_dialog, "open preset": w._open_preset_dialog,
               "open bundle": w._open_bundle_dialog, "play file": w._play_file_dialog}
    plan = [(name, fn) for _ in range(args.rounds) for name, fn in dialogs.items()]
    plan += [("no dialog", None)] * len(plan)
    results: dict[str, list[int]] = {}
    shown_after: list[float] = []

    def underruns() -> int:
        return w.synth.status().underruns

    def cancel_when_shown(opened: float) -> None:
        for top in app.topLevelWidgets():
            if isinstance(top, QFileDialog) and top.isVisible():
                shown_after.append(time.monotonic() - opened)
                top.reject()
                return
        QTimer.singleShot(20, lambda: cancel_when_shown(opened))

    def step(i: int) -> None:
        if i == len(plan):
            w.close()
            return
        name, fn = plan[i]
        before = underruns()
        if fn is not None:
            opened = time.monotonic()
            QTimer.singleShot(0, lambda: cancel_when_shown(opened))
            fn()  # modal: returns once cancelled
        QTimer.singleShot(int(WINDOW_S * 1000), lambda: (results.setdefault(name, []).append(underruns() - before),
                                                         QTimer.singleShot(int(GAP_S * 1000), lambda: step(i + 1))))

    def wait_for_sound() -> None:
        if w.first_sound_s is None:
            QTimer.singleShot(20, wait_for_sound)
        else:
            QTimer.singleShot(3000, lambda: step(0))  # past the start-up

    wait_for_sound()
    app.exec()
    device = "default device" if args.device is None else args.device
    print(f"{device}; a dialog is on screen {1000 * min(shown_after):.0f}-{1000 * max(shown_after):.0f} ms "
          f"after it is asked for")
    for name, counts in results.items():
        print(f"{name:12s} {len(counts)} x {WINDOW_S:.0f} s: {sum(counts)} underruns (in turn: {counts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
