"""``melsynth app``: the synth window; ``melsynth recorder tone``: the recorder on its own.

``--screenshot PNG --quit-after SECONDS`` renders the window to a PNG after it has
played for a moment and exits cleanly (tests, the README's screenshot); it works
on ``QT_QPA_PLATFORM=offscreen`` and without an audio device. The command prints
the start-to-first-sound time (process start to the first audible chunk handed
to the audio device's ring) and, without sound, why.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from melsynth.engine import add_lead_argument, finite_float, int_range, lead_config


def process_start_monotonic() -> float:
    """``time.monotonic()`` of this process's start (Linux /proc), else now."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of /proc/PID/stat, counted after "(comm)"
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        # monotonic and uptime both count from boot on Linux (CLOCK_MONOTONIC vs CLOCK_BOOTTIME
        # differ only by suspend time), so the age transfers.
        return time.monotonic() - max(age, 0.0)
    except (OSError, ValueError, IndexError):
        return time.monotonic()


def register_app(sub) -> None:
    p = sub.add_parser("app", help="open the synth window (knobs, live spectrogram, paint, MIDI, presets)")
    p.add_argument("--bundle", default=None,
                   help="model bundle folder; None means $MELSYNTH_BUNDLE or models/default")
    p.add_argument("--device", default=None, help="audio output device (name substring or index); "
                   "None means the system default")
    p.add_argument("--blocksize", type=int_range(0, 8192), default=256,
                   help="audio block size in frames (0 = device's)")
    add_lead_argument(p)
    p.add_argument("--midi-port", default=None,
                   help="connect from this MIDI output port (name substring); None means melsynth's own "
                        "virtual input port, which other programs connect to")
    p.add_argument("--preset", default=None, help="preset JSON to load at start")
    p.add_argument("--no-play", action="store_true", help="open without starting sound")
    p.add_argument("--screenshot", default=None, metavar="PNG",
                   help="save a PNG of the window shortly before --quit-after (needs --quit-after)")
    p.add_argument("--quit-after", type=finite_float(0, 86400, lo_open=True), default=None, metavar="SECONDS",
                   help="close the window and exit after this many seconds")
    p.set_defaults(func=run_app)


def check_preset(path: str) -> None:
    """``MelsynthError`` (one line, exit 2) unless ``path`` is a preset the window can load."""
    from melsynth.app.presets import PresetError, load_preset
    from melsynth.engine import MelsynthError

    try:
        load_preset(path)
    except PresetError as exc:
        raise MelsynthError(f"--preset: {exc}") from exc


def run_app(args) -> int:
    from melsynth.engine import MelsynthError

    if args.preset:
        check_preset(args.preset)  # a bad preset ends here, before the window opens
    if args.screenshot and args.quit_after is None:
        raise MelsynthError("--screenshot needs --quit-after SECONDS")
    if args.quit_after is not None and not args.quit_after > 0:
        raise MelsynthError(f"--quit-after must be positive, got {args.quit_after}")
    synth_config = lead_config(args.lead_ms)
    from melsynth.app.xcb_libraries import xcb_problem

    problem = xcb_problem()
    if problem:  # Qt would abort the process with a message naming another library
        raise MelsynthError(problem)
    t0 = process_start_monotonic()
    t_handler = time.monotonic()
    from melsynth.engine import single_threaded_blas

    single_threaded_blas()  # before the models load: extra BLAS threads only contend with the producer

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from melsynth.app.main_window import MainWindow, apply_style

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_app.setApplicationName("melsynth")
    apply_style(qt_app)
    from melsynth.app.main_window import signal_emit_leaks_bool_refs

    if signal_emit_leaks_bool_refs():
        import PySide6

        print(f"melsynth app: warning: PySide6 {PySide6.__version__} leaks a reference per signal and will "
              "crash this Python after a while; install another version: pip install 'PySide6-Essentials!=6.12.0'",
              file=sys.stderr)
    midi = open_midi(args.midi_port)
    window = MainWindow(bundle=args.bundle, device=args.device, midi_port=args.midi_port,
                        autoplay=not args.no_play, blocksize=args.blocksize or None, t0=t0,
                        synth_config=synth_config, midi=midi, start_engine=False, kernels_later=True)
    window.show()
    qt_app.processEvents()  # on screen before the models load
    window.shown_s = time.monotonic() - t0
    window.start_engine()
    if args.preset:
        window.load_preset_file(args.preset)
    for line in startup_report(window, t_handler - t0):
        print(line, flush=True)

    result = {"rc": 0}
    if args.quit_after is not None:
        if args.screenshot:
            shot_at = max(args.quit_after - 0.5, args.quit_after * 0.8)

            def shoot() -> None:
                pixmap = window.grab()
                if not pixmap.save(args.screenshot):
                    print(f"melsynth app: error: cannot write screenshot {args.screenshot}", file=sys.stderr)
                    result["rc"] = 2
                else:
                    print(f"screenshot: {args.screenshot} ({pixmap.width()}x{pixmap.height()})", flush=True)

            QTimer.singleShot(int(shot_at * 1000), shoot)
        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    qt_app.exec()
    kernels = kernels_report(window)
    if kernels is not None:
        print(kernels, flush=True)
    print(sound_report(window), flush=True)
    return result["rc"]


def open_midi(port: str | None):
    """The app's MIDI input; MelsynthError (listing the ports) for a ``--midi-port`` no port matches.
    Without a MIDI backend the app runs without MIDI and says why."""
    from melsynth.app.midi import MidiInput, MidiPortError
    from melsynth.engine import MelsynthError

    midi = MidiInput()
    if port and midi.available:
        try:
            midi.find_port(port)
        except MidiPortError as exc:
            midi.close()
            raise MelsynthError(f"--midi-port: {exc}") from None
    return midi


def startup_report(window, handler_s: float | None = None) -> list[str]:
    lines = []
    if window.synth is None:
        lines.append(f"model: none ({window.bundle_error})")
    else:
        lines.append(f"model: {window.synth.bundle.name} / {window.synth.vocoder_name} ({window.synth.bundle.root})")
    if window.audio_error:
        lines.append(f"audio: no sound: {window.audio_error}")
    elif window.synth is not None and window.synth.playing:
        st = window.synth.status()
        lines.append(f"audio: {st.device}, {st.sample_rate} Hz, block {st.blocksize}")
    lines.append(f"midi: {window.midi.describe()}")
    if handler_s is not None:
        lines.append(f"startup: command parsed {1000 * handler_s:.0f} ms after process start")
    shown_s = getattr(window, "shown_s", None)
    if shown_s is not None:
        lines.append(f"startup: window on screen {1000 * shown_s:.0f} ms after process start")
    lines.append(f"startup: window and models ready {1000 * window.ready_s:.0f} ms after process start")
    return lines


def kernels_report(window) -> str | None:
    """When the engine's numba kernels took over from its numpy paths (None: not deferred)."""
    warmup = window.warmup
    if warmup is None:
        return None
    if warmup.ready_at is None:
        return "kernels: still preparing (the numpy path played throughout)"
    note = f" ({warmup.error}; compiled in this process)" if warmup.error else ""
    return f"kernels: compiled kernels in use {1000 * (warmup.ready_at - window.t0):.0f} ms after process start{note}"


def sound_report(window) -> str:
    if window.first_sound_s is not None:
        return f"start-to-first-sound: {1000 * window.first_sound_s:.0f} ms"
    reason = window.audio_error or window.bundle_error or "nothing audible was played"
    return f"start-to-first-sound: none ({reason})"


def register_tone(sub) -> None:
    p = sub.add_parser("tone", help="record a 440 Hz tone in real time through the app's recorder, printing "
                                    "what is on disk (kill it mid-take: the file still reads)")
    p.add_argument("out", type=Path, help="output file (.wav or .flac)")
    p.add_argument("seconds", type=finite_float(0, 86400, lo_open=True), help="length of the take")
    p.set_defaults(func=run_tone)


def run_tone(args) -> int:
    from melsynth.app.recorder import record_tone

    record_tone(args.out, args.seconds)
    return 0
