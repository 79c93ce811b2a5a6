"""The main window: wires the widgets, the player's state, MIDI and the engine together.

Data flow (GUI thread unless marked)::

    KnobBank / LatentPanel / MIDI events --> Performance --controls(now)--> Synth.set_controls
    CanvasView edits (Region)          --------------------------------> Synth.edit_canvas
    TransportBar / StatusPanel         --> Synth.play/stop/restart/swap_bundle, source
    Synth (producer thread) --listener--> Recorder.push        (queue only; writer thread writes)
    UI timer (30 Hz): Synth.tap -> SpectrogramView, LevelMeter; canvas_playhead -> CanvasView;
                      glide ticks; every 250 ms SynthStatus -> StatusPanel

The window opens whatever fails: no bundle (knobs empty, the reason shown), no
audio device (the reason shown; choosing a device later starts sound), no MIDI
backend (the MIDI panel says why).
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QSplitter,
                               QVBoxLayout, QWidget)

from melsynth.app.midi import ControlChange, MidiInput, MidiPanel, NoteOn
from melsynth.app.performance import SOURCE_LABELS, Performance
from melsynth.app.presets import (FACTORY_DIR, PresetError, factory_presets, load_preset, save_preset,
                                  user_preset_dir)
from melsynth.app.recorder import Recorder, RecorderError
from melsynth.app.widgets.canvas import CanvasView, Region
from melsynth.app.widgets.elided import ElidedLabel
from melsynth.app.widgets.knobs import KnobBank, LatentPanel, knob_specs
from melsynth.app.widgets.spectrogram import LevelMeter, SpectrogramView
from melsynth.app.widgets.status import StatusPanel
from melsynth.app.widgets.transport import TransportBar
from melsynth.engine import MelSpec

UI_INTERVAL_MS = 33
STATUS_INTERVAL_MS = 250
WARMUP_AT_LATEST_S = 3.0  # the kernels' warm-up starts at the first sound, or this long after the start
SILENCE_PEAK = 1e-4  # a chunk louder than this counts as "first sound"

def recordings_dir() -> Path:
    env = os.environ.get("MELSYNTH_RECORDINGS")
    return Path(env) if env else Path.home() / "Music" / "melsynth"

def find_bundles(extra: Path | None = None) -> list[Path]:
    from melsynth.engine import repo_root

    models = repo_root() / "models"
    found = sorted(p.parent for p in models.glob("*/bundle.json")) if models.is_dir() else []
    if extra is not None and extra not in found:
        found.append(extra)
    return found

class MainWindow(QMainWindow):
    """``MainWindow(bundle, device, midi_port, autoplay)``; ``synth`` is None without a bundle."""

    def __init__(self, bundle: str | os.PathLike | None = None, device: str | None = None,
                 midi_port: str | None = None, autoplay: bool = True, blocksize: int | None = 256,
                 midi: MidiInput | None = None, t0: float | None = None, loader=None,
                 output_factory=None, synth_config=None, start_engine: bool = True, kernels_later: bool = False):
        """``loader``: engine model loader (tests pass fakes); ``output_factory()``: an engine
        output object to play into instead of a sounddevice stream (tests pass FakeOutput);
        ``synth_config``: the engine's ``SynthConfig`` (None: its defaults);
        ``start_engine=False``: the caller shows the window first, then calls ``start_engine()``;
        ``kernels_later``: play on the engine's numpy paths at once while its numba kernels
        compile in the background (``preparing`` shows meanwhile)."""
        super().__init__()
        self._bundle_arg, self._autoplay, self._kernels_later = bundle, autoplay, kernels_later
        self.warmup = None  # the engine's KernelWarmup while kernels_later
        self.loader = loader
        self.synth_config = synth_config
        self.output_factory = output_factory
        self.setWindowTitle("melsynth")
        self.t0 = time.monotonic() if t0 is None else t0
        self.first_sound_s: float | None = None
        self._first_sound_pending = False
        self.synth = None
        self.bundle_error: str | None = None
        self.audio_error: str | None = None
        self.device = device
        self.blocksize = blocksize
        self.performance = Performance()
        self.recorder: Recorder | None = None
        self.preset_path: Path | None = None
        self.spec = MelSpec()
        self._tap_counter = 0
        self._shown_bundle = None

        self._build_widgets()
        self._build_menus()
        self._build_shortcuts()
        self.midi = midi if midi is not None else MidiInput(self)
        self.midi_panel = MidiPanel(self.midi)
        self._right.addWidget(self.midi_panel)
        self._right.addStretch(1)
        self.midi.event.connect(self.on_midi_event)
        self.midi_panel.portChosen.connect(self.choose_midi_port)
        if midi_port:
            self.choose_midi_port(midi_port)
        self.resize(1280, 800)
        if start_engine:
            self.start_engine()

    def start_engine(self) -> None:
        """Load the model bundle and start the sound (``autoplay``); the window may be on screen."""
        self._load_synth(self._bundle_arg)
        self._refresh_devices()
        i = self.status.blocksize.findData(self.blocksize or 0)
        if i >= 0:
            self.status.blocksize.setCurrentIndex(i)
        self._connect()
        self._ui_timer = QTimer(self)
        self._ui_timer.timeout.connect(self._ui_tick)
        self._ui_timer.start(UI_INTERVAL_MS)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self._status_tick)
        self._status_timer.start(STATUS_INTERVAL_MS)
        self.ready_s = time.monotonic() - self.t0  # window and engine built (models loaded)
        if self._autoplay and self.synth is not None:
            self.play()
        self._status_tick()

    # ------------------------------------------------------------------ construction
    def _build_widgets(self) -> None:
        self.transport = TransportBar()
        self.knob_bank = KnobBank()
        self.latent_panel = LatentPanel()
        self.spectrogram = SpectrogramView(self.spec.n_mels, self.spec.frame_rate)
        self.level = LevelMeter()
        self.canvas = CanvasView(self.spec, frames=int(round(4.0 * self.spec.frame_rate)))
        self.status = StatusPanel()
        self._show_qualities()

        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.addWidget(self.knob_bank)
        left_lay.addWidget(self.latent_panel)
        left_lay.addStretch(1)

        spec_row = QWidget()
        spec_lay = QHBoxLayout(spec_row)
        spec_lay.setContentsMargins(0, 0, 0, 0)
        spec_lay.addWidget(self.spectrogram, 1)
        spec_lay.addWidget(self.level)
        centre = QSplitter(Qt.Vertical)
        centre.addWidget(spec_row)
        centre.addWidget(self.canvas)
        centre.setSizes([300, 340])

        right = QWidget()
        self._right = QVBoxLayout(right)
        self._right.setContentsMargins(0, 0, 0, 0)
        self._right.addWidget(self.status)

        body = QSplitter(Qt.Horizontal)
        body.addWidget(left)
        body.addWidget(centre)
        body.addWidget(right)
        body.setStretchFactor(1, 1)
        body.setSizes([330, 680, 270])

        root = QWidget()
        lay = QVBoxLayout(root)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.transport)
        lay.addWidget(body, 1)
        self.setCentralWidget(root)
        self.message = ElidedLabel("", lines=1)  # a long message never widens the window
        self.statusBar().addWidget(self.message, 1)
        self.preparing = QLabel("preparing\u2026")
        self.preparing.setToolTip("compiling the engine's fast kernels; the sound plays on the slower "
                                  "numpy path meanwhile, and goes on unchanged when they are in")
        self.preparing.hide()
        self.statusBar().addPermanentWidget(self.preparing)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.action_open = QAction("&Open preset\u2026", self, shortcut=QKeySequence.Open)
        self.action_save = QAction("&Save preset", self, shortcut=QKeySequence("Ctrl+S"))
        self.action_save_as = QAction("Save preset &as\u2026", self, shortcut=QKeySequence("Ctrl+Shift+S"))
        self.action_load_audio = QAction("&Load audio into canvas\u2026", self)
        self.action_play_file = QAction("Play audio &file\u2026", self)
        self.action_quit = QAction("&Quit", self, shortcut=QKeySequence.Quit)
        self.action_save.setShortcutContext(Qt.ApplicationShortcut)
        for a in (self.action_open, self.action_save, self.action_save_as):
            file_menu.addAction(a)
        self.factory_menu = file_menu.addMenu("&Factory presets")
        for path in factory_presets():
            act = self.factory_menu.addAction(path.stem.replace("_", " "))
            act.triggered.connect(lambda _c=False, p=path: self.load_preset_file(p))
        file_menu.addSeparator()
        file_menu.addAction(self.action_load_audio)
        file_menu.addAction(self.action_play_file)
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)

        play_menu = bar.addMenu("&Play")
        self.action_play = QAction("&Play / stop", self)
        self.action_play.setShortcut(QKeySequence(Qt.Key_Space))
        self.action_record = QAction("&Record", self)
        self.action_record.setShortcut(QKeySequence(Qt.Key_R))
        self.action_new_point = QAction("&New latent point", self, shortcut=QKeySequence("Ctrl+N"))
        for a in (self.action_play, self.action_record):
            a.setShortcutContext(Qt.ApplicationShortcut)
        play_menu.addAction(self.action_play)
        play_menu.addAction(self.action_record)
        play_menu.addAction(self.action_new_point)

        audio_menu = bar.addMenu("&Audio")
        self.action_rescan = QAction("&Rescan devices and restart", self)
        self.action_open_bundle = QAction("Open model &bundle\u2026", self)
        audio_menu.addAction(self.action_rescan)
        audio_menu.addAction(self.action_open_bundle)

        help_menu = bar.addMenu("&Help")
        self.action_about = QAction("&About melsynth", self)
        help_menu.addAction(self.action_about)

        self.action_open.triggered.connect(self._open_preset_dialog)
        self.action_save.triggered.connect(lambda: self.save_preset())
        self.action_save_as.triggered.connect(self._save_preset_dialog)
        self.action_load_audio.triggered.connect(self._load_audio_dialog)
        self.action_play_file.triggered.connect(self._play_file_dialog)
        self.action_quit.triggered.connect(self.close)
        self.action_play.triggered.connect(self.toggle_play)
        self.action_record.triggered.connect(self.toggle_record)
        self.action_new_point.triggered.connect(self.new_point)
        self.action_rescan.triggered.connect(lambda: self.choose_device(self.device, self.blocksize or 0))
        self.action_open_bundle.triggered.connect(self._open_bundle_dialog)
        self.action_about.triggered.connect(self.about)

    def _build_shortcuts(self) -> None:
        # Menu actions carry the shortcuts; these make them work whatever widget has focus.
        self.addAction(self.action_play)
        self.addAction(self.action_record)
        self.addAction(self.action_save)

    def _connect(self) -> None:
        kb, lp, tr, st = self.knob_bank, self.latent_panel, self.transport, self.status
        kb.knobMoved.connect(self.on_knob_moved)
        kb.learnRequested.connect(self.arm_learn)
        kb.forgetRequested.connect(self.forget_midi)
        lp.newPointRequested.connect(self.new_point)
        lp.seedChosen.connect(self.choose_seed)
        lp.walkChanged.connect(self.set_walk)
        lp.glideChanged.connect(self._set_glide)
        lp.storeRequested.connect(self.store_point)
        lp.recallRequested.connect(self.recall_point)
        lp.morphChanged.connect(self.set_morph)
        lp.storeNoteRequested.connect(self.store_note)
        tr.playToggled.connect(lambda on: self.play() if on else self.stop())
        tr.sourceChosen.connect(self.set_source)
        tr.fileRequested.connect(self._play_file_dialog)
        tr.loopSecondsChanged.connect(self.set_loop_seconds)
        tr.recordToggled.connect(lambda on: self.start_recording() if on else self.stop_recording())
        st.deviceChosen.connect(self.choose_device)
        st.bundleChosen.connect(self.swap_bundle)
        st.bundleBrowseRequested.connect(self._open_bundle_dialog)
        st.vocoderChosen.connect(self.set_vocoder)
        st.leadChosen.connect(self.set_lead_ms)
        st.qualityChosen.connect(self.set_phase_quality)
        self.canvas.edited.connect(self.on_canvas_edited)
        self.canvas.loadRequested.connect(self._load_audio_dialog)
        self.canvas.grabRequested.connect(self.grab_live_into_canvas)
        self.canvas.stroked.connect(self._hear_canvas_on_paint)
        self.canvas.hearRequested.connect(lambda: self.set_source("canvas"))
        self._show_canvas_heard()

    # ------------------------------------------------------------------ engine
    def _load_synth(self, bundle) -> None:
        from melsynth.engine import BundleError, KernelWarmup, Synth, default_bundle_path, defer_kernels

        path = Path(bundle) if bundle is not None else default_bundle_path()
        try:
            kwargs = {"loader": self.loader} if self.loader is not None else {}
            if self.synth_config is not None:
                kwargs["config"] = self.synth_config
            if self._kernels_later and self.warmup is None:
                defer_kernels()
            self.synth = Synth(bundle=path, **kwargs)
            if self._kernels_later and self.warmup is None:
                self.warmup = KernelWarmup(self.synth)  # started by _status_tick once the sound has started
                self.preparing.show()
        except (BundleError, FileNotFoundError, ValueError, OSError) as exc:
            self.synth = None
            self.bundle_error = f"no model bundle: {exc}"
            self.show_message(self.bundle_error + " \u2014 open one from Audio > Open model bundle.")
            self.status.set_bundles(find_bundles(), None)
            self._apply_bundle_shape()
            return
        self.bundle_error = None
        if getattr(self, "phase_quality", None) not in (None, self.synth.phase_quality):
            self.synth.set_phase_quality(self.phase_quality)  # the panel's choice, for this synth too
        self.spec = self.synth.bundle.mel
        self.status.set_lead(self.synth.config.target_ms)
        self._apply_bundle_shape()
        self.synth.add_listener(self._on_audio_chunk)
        self.status.set_bundles(find_bundles(self.synth.bundle.root), self.synth.bundle.root)
        self.send_controls()
        self.synth.set_canvas(self.canvas.model.data)

    def _apply_bundle_shape(self) -> None:
        """Knobs, latent size and vocoder list from the synth's bundle (or none)."""
        synth = self.synth
        directions = tuple(synth.directions) if synth is not None else ()
        specs = knob_specs(directions)
        self.performance.set_bundle_shape([s.name for s in specs], latent_size_of(synth))
        self.knob_bank.set_specs(specs)
        self.knob_bank.set_values(self.performance.knobs)
        self._show_bindings()
        if synth is not None:
            self.status.set_vocoders(list(synth.bundle.vocoders), synth.vocoder_name)
            self.status.model.setText(f"{synth.bundle.name} / {synth.vocoder_name}")
            self._shown_bundle = (synth.bundle.root, synth.vocoder_name)
        else:
            self.status.set_vocoders([], None)
            self.status.model.setText("none")

    def send_controls(self) -> None:
        if self.synth is not None:
            self.synth.set_controls(self.performance.controls(time.monotonic()))

    def play(self) -> bool:
        if self.synth is None:
            self.transport.show_playing(False)
            self.show_message(self.bundle_error or "no model bundle")
            return False
        self._first_sound_pending = self.first_sound_s is None
        ok = self.synth.play(device=self.device, blocksize=self.blocksize or None, **self._output_kw())
        return self._show_started(ok, " \u2014 choose a device (Engine panel) to start.")

    def _show_started(self, ok: bool, hint: str = "") -> bool:
        """Say where the sound plays, or why there is none (``hint``: what to do about it)."""
        self.transport.show_playing(ok)
        if ok:
            self.audio_error = None
            st = self.synth.status()
            self.show_message(f"playing on {st.device} ({st.sample_rate} Hz, block {st.blocksize})")
        else:
            self.audio_error = self.synth.status().error or "audio device unavailable"
            self.show_message(f"no sound: {self.audio_error}{hint}")
        return ok

    def _output_kw(self) -> dict:
        return {"output": self.output_factory()} if self.output_factory is not None else {}

    def stop(self) -> None:
        if self.synth is not None:
            self.synth.stop()
        if self.recorder is not None:
            self.stop_recording()
        self.transport.show_playing(False)

    def toggle_play(self) -> None:
        if self.synth is not None and self.synth.playing:
            self.stop()
        else:
            self.play()

    def choose_device(self, name, blocksize: int) -> None:
        self.device = name
        self.blocksize = blocksize or None
        self._refresh_devices()
        if self.synth is None:
            return
        self._first_sound_pending = self.first_sound_s is None
        ok = self.synth.restart(device=self.device, blocksize=self.blocksize, **self._output_kw())
        self._show_started(ok)

    def _refresh_devices(self) -> None:
        names, error = list_output_devices()
        self.status.set_devices(names, self.device)
        if not names and error:
            self.audio_error = self.audio_error or error

    def swap_bundle(self, folder: str) -> None:
        from melsynth.engine import BundleError

        if self.synth is None:
            self._load_synth(folder)
            if self.synth is not None:
                self.play()
            return
        try:
            self.synth.swap_bundle(folder)
        except (BundleError, FileNotFoundError, ValueError) as exc:
            self.show_message(f"cannot switch bundle: {exc}")
            self.status.show_bundle(self.synth.bundle.root)  # the box names what plays
            return
        self.show_message(f"switching to {Path(folder).name}\u2026")

    def set_vocoder(self, name: str) -> None:
        if self.synth is not None and name and name != self.synth.vocoder_name:
            self.synth.set_vocoder(name)

    def _show_qualities(self) -> None:
        from melsynth.engine import LIVE_QUALITY, QUALITIES, describe_quality

        self.phase_quality = getattr(self, "phase_quality", LIVE_QUALITY)
        self.status.set_qualities({n: describe_quality(n) for n in QUALITIES}, self.phase_quality)

    def set_phase_quality(self, quality: str) -> None:
        """The classical vocoder's phase quality (Engine panel "phase"): the playing synth
        crossfades to it now; a synth loaded later starts at it."""
        self.phase_quality = quality
        synth = self.synth
        if synth is None or synth.phase_quality == quality:
            return
        synth.set_phase_quality(quality)
        kind = synth.bundle.vocoders[synth.vocoder_name].kind
        note = "" if kind == "classical" else f" (heard with a classical vocoder; {synth.vocoder_name} is {kind})"
        self.show_message(f"phase quality {quality}{note}")

    def set_lead_ms(self, ms: float) -> None:
        """The engine's least lead (Engine panel "lead"); kept for a synth loaded later too."""
        from melsynth.engine import SynthConfig

        try:
            self.synth_config = replace(self.synth_config or SynthConfig(), target_ms=float(ms))
        except ValueError as exc:
            self.show_message(f"lead not changed: {exc}")
            return
        if self.synth is not None:
            self.synth.set_lead_ms(ms)

    # ------------------------------------------------------------------ latent controls
    def on_knob_moved(self, name: str, sigma: float) -> None:
        self.performance.set_knob(name, sigma)
        self.send_controls()

    def new_point(self) -> None:
        seed = self.performance.new_point()
        self.latent_panel.show_seed(seed)
        self.latent_panel.show_morph(0.0, self._morph_possible())
        self.send_controls()

    def choose_seed(self, seed: int) -> None:
        self.performance.new_point(seed)
        self.latent_panel.show_seed(seed)
        self.send_controls()

    def set_walk(self, speed: float, spread: float) -> None:
        self.performance.walk_speed, self.performance.walk_spread = speed, spread
        self.send_controls()

    def _set_glide(self, seconds: float) -> None:
        self.performance.glide_seconds = seconds

    def store_point(self, slot: str) -> None:
        self.performance.store(slot, time.monotonic())
        self.latent_panel.show_morph(0.0 if slot == "A" else 1.0, self._morph_possible())
        self.show_message(f"stored the current point as {slot}")

    def recall_point(self, slot: str) -> None:
        if self.performance.recall(slot, time.monotonic()):
            self._after_point_change()
        else:
            self.show_message(f"nothing stored as {slot} yet")

    def set_morph(self, t: float) -> None:
        if self.performance.set_morph(t):
            self.knob_bank.set_values(self.performance.knobs)
            self.latent_panel.show_seed(None, f"A\u2192B {t:.0%}")
            self.send_controls()

    def store_note(self, note: int) -> None:
        self.performance.store_note(note, time.monotonic())
        self.latent_panel.show_notes(list(self.performance.notes))
        self.latent_panel.note.setValue(min(note + 1, 127))

    def _morph_possible(self) -> bool:
        return self.performance.point_a is not None and self.performance.point_b is not None

    def _after_point_change(self) -> None:
        self.knob_bank.set_values(self.performance.knobs)
        seed = self.performance.seed
        self.latent_panel.show_seed(seed, "glide" if self.performance.glide else "point")
        self.send_controls()

    def set_source(self, source: str) -> None:
        if source == "file" and self.performance.file is None:
            self._play_file_dialog()
            if self.performance.file is None:
                self.transport.show_source(self.performance.source)
                return
        self.performance.source = source
        self.transport.show_source(source)
        self._show_canvas_heard()
        self.send_controls()

    def _hear_canvas_on_paint(self) -> None:
        """A brush stroke on a canvas that is not heard makes it the source: painting is for hearing."""
        if self.performance.source != "canvas":
            self.set_source("canvas")
            self.show_message("source: Paint \u2014 painting switched to the canvas (transport: source)")

    def _show_canvas_heard(self) -> None:
        source = self.performance.source
        self.canvas.show_heard(source == "canvas", SOURCE_LABELS.get(source, source))

    def set_loop_seconds(self, seconds: float) -> None:
        self.performance.loop_seconds = seconds
        frames = max(1, int(round(seconds * self.spec.frame_rate)))
        self.canvas.set_frames(frames)
        if self.synth is not None:
            self.synth.set_canvas(self.canvas.model.data)

    def on_canvas_edited(self, region: Region) -> None:
        if self.synth is not None:
            self.synth.edit_canvas(region.frame_start, self.canvas.model.values(region),
                                   bin_start=region.bin_start)

    def load_audio_into_canvas(self, path: str | os.PathLike) -> None:
        from melsynth.engine import file_log_mel

        try:
            frames = file_log_mel(path, self.spec, max_seconds=self.performance.loop_seconds + 1.0)
        except (OSError, ValueError) as exc:
            self.show_message(f"cannot load audio: {exc}")
            return
        self.canvas.load_log_mel(frames)
        self.show_message(f"canvas: {Path(path).name}")

    def grab_live_into_canvas(self) -> bool:
        """The last loop's worth of played mel frames (the engine's tap) become the canvas."""
        if self.synth is None or self.synth.tap.count == 0:
            self.show_message("nothing has played yet to grab")
            return False
        self.canvas.load_log_mel(self.synth.tap.latest(self.canvas.model.frames))
        self.show_message("canvas: grabbed the last loop of what was playing")
        return True

    def play_file(self, path: str | os.PathLike) -> bool:
        if self.synth is None:
            return False
        try:
            n = self.synth.load_file(path)
        except (OSError, ValueError) as exc:
            self.show_message(f"cannot play file: {exc}")
            return False
        self.performance.file = str(path)
        self.transport.show_file(str(path))
        self.show_message(f"file: {Path(path).name} ({n / self.spec.frame_rate:.1f} s)")
        self.set_source("file")
        return True

    # ------------------------------------------------------------------ MIDI
    def on_midi_event(self, event) -> None:
        if isinstance(event, ControlChange):
            armed = self.performance.midi_map.armed
            hit = self.performance.midi_map.handle_cc(event)
            if armed is not None:
                self.midi_panel.show_learning(None)
                self._show_bindings()
            if hit is not None:
                name, sigma = hit
                knob = self.knob_bank.knobs.get(name)
                if knob is not None:
                    knob.set_value(sigma)
                    self.on_knob_moved(name, knob.value)
        elif isinstance(event, NoteOn):
            if self.performance.note_on(event.note, time.monotonic()):
                self._after_point_change()

    def arm_learn(self, name: str) -> None:
        previous = self.performance.midi_map.armed
        if previous in self.knob_bank.knobs:
            self.knob_bank.knobs[previous].set_armed(False)
        self.performance.midi_map.arm(name)
        knob = self.knob_bank.knobs.get(name)
        if knob is not None:
            knob.set_armed(True)
        self.midi_panel.show_learning(knob.spec.label if knob else name)
        if not self.midi.available:
            self.show_message(f"MIDI learn armed, but {self.midi.unavailable_reason}")

    def forget_midi(self, name: str) -> None:
        key = self.performance.midi_map.controller_of(name)
        if key is not None:
            del self.performance.midi_map.bindings[key]
        self._show_bindings()

    def _show_bindings(self) -> None:
        for name, knob in self.knob_bank.knobs.items():
            knob.set_armed(False)
            key = self.performance.midi_map.controller_of(name)
            knob.set_binding(f"ch{key[0] + 1} CC{key[1]}" if key else "")

    def choose_midi_port(self, name) -> None:
        self.show_message(self.midi.choose_port(name))
        self.midi_panel.rescan()

    # ------------------------------------------------------------------ recording
    def _on_audio_chunk(self, chunk: np.ndarray, sample_rate: int) -> None:
        """Producer thread: queue for the recorder; note the first audible chunk."""
        rec = self.recorder
        if rec is not None and rec.sample_rate == sample_rate:
            rec.push(chunk)
        if self._first_sound_pending and chunk.size and float(np.max(np.abs(chunk))) > SILENCE_PEAK:
            self._first_sound_pending = False
            self.first_sound_s = time.monotonic() - self.t0

    def start_recording(self, path: str | os.PathLike | None = None) -> bool:
        if self.recorder is not None:
            return True
        if self.synth is None or not self.synth.playing:
            if not self.play():
                self.transport.show_recording(False, "nothing playing")
                return False
        if path is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = recordings_dir() / f"melsynth-{stamp}.{self.transport.record_extension}"
        rate = self.synth.status().sample_rate
        try:
            self.recorder = Recorder(path, rate).start()
        except RecorderError as exc:
            self.show_message(str(exc))
            self.transport.show_recording(False)
            return False
        self.transport.show_recording(True, Path(path).name)
        self.show_message(f"recording to {path}")
        return True

    def stop_recording(self):
        rec, self.recorder = self.recorder, None
        if rec is None:
            self.transport.show_recording(False)
            return None
        info = rec.stop()
        self.transport.show_recording(False, f"{info.path.name} {info.seconds:.1f} s")
        self.show_message(rec.error or f"recorded {info.seconds:.1f} s to {info.path}")
        return info

    def toggle_record(self) -> None:
        if self.recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    # ------------------------------------------------------------------ presets
    def current_preset(self):
        return self.performance.to_preset(now=time.monotonic())

    def save_preset(self, path: str | os.PathLike | None = None) -> Path | None:
        if path is None:
            path = self.preset_path
            if path is None or path.resolve().parent == FACTORY_DIR:  # never overwrite a factory preset
                stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
                path = user_preset_dir() / f"preset-{stamp}.json"
        path = Path(path)
        try:
            save_preset(path, self.current_preset())
        except OSError as exc:
            self.show_message(f"cannot save preset: {exc}")
            return None
        self.preset_path = path
        self.show_message(f"saved preset {path}")
        return path

    def load_preset_file(self, path: str | os.PathLike) -> bool:
        try:
            preset = load_preset(path)
        except PresetError as exc:
            self.show_message(str(exc))
            return False
        missing = self.performance.apply_preset(preset)
        self.preset_path = Path(path)
        p = self.performance
        self.knob_bank.set_values(p.knobs)
        self.latent_panel.show_seed(p.seed, "preset point")
        self.latent_panel.show_walk(p.walk_speed, p.walk_spread)
        self.latent_panel.show_glide(p.glide_seconds)
        self.latent_panel.show_morph(p.morph or 0.0, self._morph_possible())
        self.latent_panel.show_notes(list(p.notes))
        self.transport.show_loop(p.loop_seconds)
        self.set_loop_seconds(p.loop_seconds)
        self._show_bindings()
        source = p.source
        if source == "file":
            if not (p.file and self.synth is not None and self.play_file(p.file)):
                source = "latent"
        p.source = source
        self.transport.show_source(source)
        self._show_canvas_heard()
        self.transport.show_file(p.file)
        self.send_controls()
        note = f" (no such knobs here: {', '.join(missing)})" if missing else ""
        self.show_message(f"preset {preset.name}{note}")
        return True

    # ------------------------------------------------------------------ dialogs
    def _open_preset_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open preset", str(user_preset_dir()), "Presets (*.json)")
        if path:
            self.load_preset_file(path)

    def _save_preset_dialog(self) -> None:
        user_preset_dir().mkdir(parents=True, exist_ok=True)
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", str(user_preset_dir()), "Presets (*.json)")
        if path:
            self.save_preset(path if path.endswith(".json") else path + ".json")

    def _load_audio_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load audio into the canvas", "",
                                              "Audio (*.wav *.flac *.ogg *.mp3 *.aiff);;All files (*)")
        if path:
            self.load_audio_into_canvas(path)

    def _play_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Play an audio file through the vocoder", "",
                                              "Audio (*.wav *.flac *.ogg *.mp3 *.aiff);;All files (*)")
        if path:
            self.play_file(path)

    def _open_bundle_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open model bundle folder")
        if path:
            self.swap_bundle(path)

    def about(self) -> None:
        QMessageBox.about(self, "About melsynth", about_text(self.synth))

    # ------------------------------------------------------------------ timers
    def _ui_tick(self) -> None:
        now = time.monotonic()
        if self.performance.glide is not None:
            still = self.performance.tick(now)
            self.knob_bank.set_values(self.performance.knobs)
            self.send_controls()
            if not still:
                self._after_point_change()
        synth = self.synth
        if synth is None:
            return
        # what plays now, not what the prior just made (the vocoder's and the queue's latency)
        self._tap_counter, frames = synth.tap.frames_since(self._tap_counter, lag=synth.heard_lag_frames())
        if frames.shape[1]:
            self.spectrogram.push(frames)
        peak, rms = synth.tap.level()
        self.level.set_level(peak if synth.playing else -np.inf, rms if synth.playing else -np.inf)
        self.canvas.set_playhead(synth.canvas_playhead)

    def _status_tick(self) -> None:
        warmup = self.warmup
        if warmup is not None and not warmup.started and (
                self.first_sound_s is not None or time.monotonic() - self.t0 > WARMUP_AT_LATEST_S):
            warmup.start()  # after the first sound: the compiler's start must not delay it
        if not self.preparing.isHidden() and warmup is not None and warmup.ready.is_set():
            self.preparing.hide()
        synth = self.synth
        if synth is None:
            return
        st = synth.status()
        self.status.show_status(st)
        if self._shown_bundle != (synth.bundle.root, synth.vocoder_name) and not st.swapping:
            self.spec = synth.bundle.mel
            self._apply_bundle_shape()
            self.send_controls()
            self.show_message(f"now playing {synth.bundle.name} / {synth.vocoder_name}")
        if not st.swapping and self.status.bundle.currentData() != str(synth.bundle.root):
            self.status.show_bundle(synth.bundle.root)  # a failed switch: the box names what plays
        if st.error and st.error != self.audio_error:
            self.audio_error = st.error
            self.show_message(st.error)
        if self.recorder is not None:
            if self.recorder.error:
                self.show_message(self.recorder.error)
                self.stop_recording()
            else:
                self.transport.record_label.setText(f"{self.recorder.path.name} {self.recorder.seconds:.1f} s")
        if not synth.playing and self.transport.play.isChecked():
            self.transport.show_playing(False)

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.status.show_message(text)

    def closeEvent(self, event) -> None:  # noqa: N802
        self._ui_timer.stop()
        self._status_timer.stop()
        if self.recorder is not None:
            self.stop_recording()
        synth, self.synth = self.synth, None
        if synth is not None:
            synth.stop()
            close = getattr(synth, "close", None)
            if close is not None:
                close()
            # The window held the synth's last reference: its native objects (soxr resamplers,
            # onnxruntime sessions) go now, not at interpreter exit, where nanobind reports them
            # as leaked (the heap is frozen while playing, so no collection would ever free them).
            synth.remove_listener(self._on_audio_chunk)
            del synth
        self.midi.close()
        super().closeEvent(event)

def latent_size_of(synth) -> int:
    """The prior's latent size: from bundle.json, else from a direction vector (0: no prior)."""
    if synth is None:
        return 0
    if synth.bundle.prior is not None:
        return synth.bundle.prior.latent_size
    directions = tuple(synth.directions)
    return int(np.asarray(directions[0].vector).size) if directions else 0

def apply_style(qt_app) -> None:
    """Fusion with a dark palette: the spectrograms read better on dark surroundings."""
    from PySide6.QtGui import QColor, QPalette

    qt_app.setStyle("Fusion")
    pal = QPalette()
    base, text, mid = QColor(37, 37, 40), QColor(225, 225, 225), QColor(53, 53, 58)
    for role, color in ((QPalette.Window, mid), (QPalette.WindowText, text), (QPalette.Base, base),
                        (QPalette.AlternateBase, mid), (QPalette.ToolTipBase, base), (QPalette.ToolTipText, text),
                        (QPalette.Text, text), (QPalette.Button, mid), (QPalette.ButtonText, text),
                        (QPalette.BrightText, QColor(255, 80, 80)), (QPalette.Highlight, QColor(60, 130, 200)),
                        (QPalette.HighlightedText, QColor(255, 255, 255))):
        pal.setColor(role, color)
    pal.setColor(QPalette.Disabled, QPalette.Text, QColor(120, 120, 120))
    pal.setColor(QPalette.Disabled, QPalette.ButtonText, QColor(120, 120, 120))
    qt_app.setPalette(pal)

def list_output_devices() -> tuple[list[str], str | None]:
    """Output device names, and why there are none (PortAudio missing, no device)."""
    try:
        from melsynth.engine import list_output_devices as engine_list
    except ImportError:
        engine_list = None
    try:
        if engine_list is not None:
            devices = engine_list()
            names = [d if isinstance(d, str) else getattr(d, "name", None) or d["name"] for d in devices]
        else:
            import sounddevice as sd

            names = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
    except Exception as exc:  # OSError: PortAudio library missing; PortAudioError
        return [], f"audio unavailable: {exc}"
    return names, (None if names else "no audio output device found")

def about_text(synth) -> str:
    lines = ["<b>melsynth</b> \u2014 a real-time neural music synthesizer.",
             "Noise \u2192 mel prior GAN \u2192 vocoder \u2192 audio, steered by latent knobs, "
             "or paint the spectrogram.",
             "Engine: numpy + onnxruntime. App: PySide6, pyqtgraph, python-rtmidi."]
    if synth is not None:
        b = synth.bundle
        lines.append(f"Model bundle: {b.name} ({b.root}), vocoder {synth.vocoder_name}.")
    lines.append("Keys: Space play/stop, R record, Ctrl+S save preset, Ctrl+N new point.")
    return "<br>".join(lines)

def signal_emit_leaks_bool_refs(n: int = 200) -> bool:
    """PySide6 6.12.0's ``Signal.emit()`` returns True without a reference: on Python < 3.12
    the count of True falls by one per emit until the interpreter aborts (bool_dealloc)."""
    import sys

    from PySide6.QtCore import QObject
    from PySide6.QtCore import Signal as _Signal

    class _Probe(QObject):
        fired = _Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(n):
        probe.fired.emit()
    leaked = before - sys.getrefcount(True) >= n // 2
    # give back what the probe took, so the check itself costs nothing
    if leaked:
        _BOOL_REFS_RETURNED.extend([True] * n)
    return leaked

_BOOL_REFS_RETURNED: list = []
