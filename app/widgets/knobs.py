"""The knob bank (one dial per latent direction) and the latent panel (seed, walk, A/B, notes).

Knob values are in sigma of the direction's spread in the prior's latent space:
0 is the base point, +-1 a typical excursion, the dial spans +-3. Named
directions (Loudness, Brightness, ...) are labelled by name, PCA directions by
number ("PC 1", "PC 2", ...). Double-click a dial to reset it to 0; right-click
for MIDI learn.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDial, QDoubleSpinBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QMenu, QPushButton, QSlider, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from melsynth.engine import WALK_SPEED, WALK_SPREAD

DIAL_STEPS_PER_SIGMA = 100
KNOB_SPAN_SIGMA = 3.0


@dataclass(frozen=True)
class KnobSpec:
    name: str  # the direction's name in bundle.json (preset and MIDI-map key)
    label: str  # what the dial shows


def knob_specs(directions) -> list[KnobSpec]:
    """Bundle directions -> dials: named ones by name, PCA ones numbered in bundle order."""
    specs, pc = [], 0
    for d in directions:
        if getattr(d, "kind", "pca") == "named":
            specs.append(KnobSpec(d.name, d.name.replace("_", " ").capitalize()))
        else:
            pc += 1
            specs.append(KnobSpec(d.name, f"PC {pc}"))
    return specs


class _Dial(QDial):
    doubleClicked = Signal()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.doubleClicked.emit()
        event.accept()


class Knob(QWidget):
    """A dial with its label and its value in sigma."""

    moved = Signal(str, float)  # name, sigma (by the player: dial, reset; not by set_value)
    learnRequested = Signal(str)
    forgetRequested = Signal(str)

    def __init__(self, spec: KnobSpec, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self.dial = _Dial()
        span = int(KNOB_SPAN_SIGMA * DIAL_STEPS_PER_SIGMA)
        self.dial.setRange(-span, span)
        self.dial.setValue(0)
        self.dial.setNotchesVisible(True)
        self.dial.setNotchTarget(25.0)
        self.dial.setFixedSize(56, 56)
        self.dial.setFocusPolicy(Qt.ClickFocus)
        self.dial.setToolTip(f"{spec.name}: drag to turn, double-click resets to 0, right-click: MIDI learn")
        self.title = QLabel(spec.label)
        self.title.setAlignment(Qt.AlignCenter)
        self.readout = QLabel()
        self.readout.setAlignment(Qt.AlignCenter)
        self.binding = QLabel("")
        self.binding.setAlignment(Qt.AlignCenter)
        self.binding.setStyleSheet("color: gray; font-size: 9px;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(1)
        lay.addWidget(self.title)
        lay.addWidget(self.dial, alignment=Qt.AlignCenter)
        lay.addWidget(self.readout)
        lay.addWidget(self.binding)
        self._armed = False
        self._binding_text = ""
        self._update_readout()
        self.dial.valueChanged.connect(self._on_dial)
        self.dial.doubleClicked.connect(self.reset)
        self.setContextMenuPolicy(Qt.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.dial.setContextMenuPolicy(Qt.CustomContextMenu)
        self.dial.customContextMenuRequested.connect(self._menu)
        self._quiet = False

    @property
    def value(self) -> float:
        return self.dial.value() / DIAL_STEPS_PER_SIGMA

    def set_value(self, sigma: float, emit: bool = False) -> None:
        self._quiet = not emit
        try:
            self.dial.setValue(int(round(max(-KNOB_SPAN_SIGMA, min(KNOB_SPAN_SIGMA, sigma))
                                         * DIAL_STEPS_PER_SIGMA)))
        finally:
            self._quiet = False
        self._update_readout()

    def reset(self) -> None:
        self.set_value(0.0, emit=True)
        self.moved.emit(self.spec.name, 0.0)  # also when already at 0: a reset is a gesture

    def set_armed(self, armed: bool) -> None:
        self._armed = armed
        self.setStyleSheet("Knob, QLabel { background: #5a3b00; }" if armed else "")
        self.binding.setText("move a controller\u2026" if armed else self._binding_text)

    def set_binding(self, text: str) -> None:
        self._binding_text = text
        if not self._armed:
            self.binding.setText(text)

    def _on_dial(self, _v: int) -> None:
        self._update_readout()
        if not self._quiet:
            self.moved.emit(self.spec.name, self.value)

    def _update_readout(self) -> None:
        self.readout.setText(f"{self.value:+.2f}\u03c3")

    def _menu(self, pos) -> None:
        menu = QMenu(self)
        learn = menu.addAction("MIDI learn")
        forget = menu.addAction("Forget MIDI controller")
        reset = menu.addAction("Reset to 0")
        chosen = menu.exec(self.mapToGlobal(pos))
        if chosen is learn:
            self.learnRequested.emit(self.spec.name)
        elif chosen is forget:
            self.forgetRequested.emit(self.spec.name)
        elif chosen is reset:
            self.reset()


class KnobBank(QGroupBox):
    """One ``Knob`` per direction; empty (with a note) when the bundle has no prior."""

    knobMoved = Signal(str, float)
    learnRequested = Signal(str)
    forgetRequested = Signal(str)

    COLUMNS = 4

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Latent directions", parent)
        self.knobs: dict[str, Knob] = {}
        self._grid = QGridLayout(self)
        self._grid.setSpacing(2)
        self._note = QLabel("")
        self._note.setWordWrap(True)
        self.set_specs([])

    def set_specs(self, specs: list[KnobSpec]) -> None:
        values = self.values()
        for knob in self.knobs.values():
            self._grid.removeWidget(knob)
            knob.deleteLater()
        self.knobs = {}
        self._grid.removeWidget(self._note)
        if not specs:
            self._note.setText("This model bundle has no prior: no latent knobs.")
            self._grid.addWidget(self._note, 0, 0)
            self._note.show()
            return
        self._note.hide()
        for i, spec in enumerate(specs):
            knob = Knob(spec)
            knob.moved.connect(self.knobMoved)
            knob.learnRequested.connect(self.learnRequested)
            knob.forgetRequested.connect(self.forgetRequested)
            self._grid.addWidget(knob, i // self.COLUMNS, i % self.COLUMNS)
            self.knobs[spec.name] = knob
            if spec.name in values:
                knob.set_value(values[spec.name])

    def values(self) -> dict[str, float]:
        return {name: k.value for name, k in self.knobs.items()}

    def set_values(self, values: dict[str, float]) -> None:
        """Show ``values`` (missing names -> 0) without emitting ``knobMoved``."""
        for name, knob in self.knobs.items():
            knob.set_value(values.get(name, 0.0))


class LatentPanel(QGroupBox):
    """Seed of the base point, random walk, A/B morph, and latent points stored per MIDI note."""

    newPointRequested = Signal()
    seedChosen = Signal(int)
    walkChanged = Signal(float, float)  # speed 0..1, spread (share that walks): engine.stream.controls
    glideChanged = Signal(float)
    storeRequested = Signal(str)  # "A", "B"
    recallRequested = Signal(str)  # "A", "B"
    morphChanged = Signal(float)  # 0 = A .. 1 = B
    storeNoteRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Latent point", parent)
        lay = QGridLayout(self)
        self.new_button = QPushButton("New point")
        self.new_button.setToolTip("Jump to a new random latent point (a new seed)")
        self.new_button.setFocusPolicy(Qt.NoFocus)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Seed of the base latent point; type one to go back to it")
        self.seed.setKeyboardTracking(False)
        self.seed.setMaximumWidth(120)
        self.seed_label = QLabel("seed")
        lay.addWidget(self.new_button, 0, 0)
        lay.addWidget(self.seed_label, 0, 1)
        lay.addWidget(self.seed, 0, 2, 1, 2)

        self.walk_speed = QSlider(Qt.Horizontal)
        self.walk_speed.setMinimumWidth(70)
        self.walk_speed.setRange(0, 100)  # 0..1: share of a fresh random point per latent step
        self.walk_speed.setToolTip("How fast the music wanders on its own (0 = stays put, "
                                   "100% = a new random point every latent step)")
        self.walk_spread = QSlider(Qt.Horizontal)
        self.walk_spread.setMinimumWidth(70)
        self.walk_spread.setRange(0, 300)  # 0..3: share of the latent that walks
        self.walk_spread.setValue(int(round(100 * WALK_SPREAD)))
        self.walk_speed.setValue(int(round(100 * WALK_SPEED)))
        self.walk_spread.setToolTip("How much of the sound walks away from the point: 0 = the point held "
                                    "(a steady sound), 1 = all of it (the prior's own music), above 1 wilder")
        self.walk_readout = QLabel()
        lay.addWidget(QLabel("walk speed"), 1, 0)
        lay.addWidget(self.walk_speed, 1, 1, 1, 3)
        lay.addWidget(QLabel("spread"), 2, 0)
        lay.addWidget(self.walk_spread, 2, 1, 1, 2)
        lay.addWidget(self.walk_readout, 2, 3)

        self.store_a = QPushButton("Store A")
        self.store_b = QPushButton("Store B")
        self.recall_a = QToolButton(text="A")
        self.recall_b = QToolButton(text="B")
        self.recall_a.setToolTip("Glide to the stored point A")
        self.recall_b.setToolTip("Glide to the stored point B")
        for b in (self.store_a, self.store_b, self.recall_a, self.recall_b):
            b.setFocusPolicy(Qt.NoFocus)
        self.morph = QSlider(Qt.Horizontal)
        self.morph.setRange(0, 1000)
        self.morph.setToolTip("Morph between the stored points A and B")
        self.morph.setEnabled(False)
        self.morph.setMinimumWidth(60)
        ab = QHBoxLayout()
        ab.addWidget(self.store_a)
        ab.addWidget(self.recall_a)
        ab.addWidget(self.morph, 1)
        ab.addWidget(self.recall_b)
        ab.addWidget(self.store_b)
        lay.addLayout(ab, 3, 0, 1, 4)

        self.note = QSpinBox()
        self.note.setRange(0, 127)
        self.note.setValue(60)
        self.note.setToolTip("MIDI note that recalls the stored point")
        self.store_note = QPushButton("Store to note")
        self.store_note.setFocusPolicy(Qt.NoFocus)
        self.glide = QDoubleSpinBox()
        self.glide.setRange(0.0, 5.0)
        self.glide.setSingleStep(0.05)
        self.glide.setValue(0.3)
        self.glide.setSuffix(" s glide")
        self.glide.setToolTip("Time to glide to a point recalled by a note or a button")
        self.notes_label = QLabel("notes: none stored")
        self.notes_label.setWordWrap(True)
        lay.addWidget(self.store_note, 4, 0)
        lay.addWidget(self.note, 4, 1)
        lay.addWidget(self.glide, 4, 2, 1, 2)
        lay.addWidget(self.notes_label, 5, 0, 1, 4)

        self.new_button.clicked.connect(self.newPointRequested)
        self.seed.valueChanged.connect(self.seedChosen)
        self.walk_speed.valueChanged.connect(self._walk)
        self.walk_spread.valueChanged.connect(self._walk)
        self.glide.valueChanged.connect(self.glideChanged)
        self.store_a.clicked.connect(lambda: self.storeRequested.emit("A"))
        self.store_b.clicked.connect(lambda: self.storeRequested.emit("B"))
        self.recall_a.clicked.connect(lambda: self.recallRequested.emit("A"))
        self.recall_b.clicked.connect(lambda: self.recallRequested.emit("B"))
        self.morph.valueChanged.connect(lambda v: self.morphChanged.emit(v / 1000.0))
        self.store_note.clicked.connect(lambda: self.storeNoteRequested.emit(self.note.value()))
        self._update_walk_readout()

    # display (no signals) -------------------------------------------------------
    def show_seed(self, seed: int | None, text: str | None = None) -> None:
        self.seed.blockSignals(True)
        if seed is not None:
            self.seed.setValue(seed)
        self.seed.blockSignals(False)
        self.seed_label.setText("seed" if seed is not None else (text or "morph"))

    def show_walk(self, speed: float, spread: float) -> None:
        for slider, v in ((self.walk_speed, speed), (self.walk_spread, spread)):
            slider.blockSignals(True)
            slider.setValue(int(round(v * 100)))
            slider.blockSignals(False)
        self._update_walk_readout()

    def show_morph(self, t: float, enabled: bool) -> None:
        self.morph.blockSignals(True)
        self.morph.setValue(int(round(t * 1000)))
        self.morph.blockSignals(False)
        self.morph.setEnabled(enabled)

    def show_glide(self, seconds: float) -> None:
        self.glide.blockSignals(True)
        self.glide.setValue(seconds)
        self.glide.blockSignals(False)

    def show_notes(self, notes: list[int]) -> None:
        self.notes_label.setText("notes: " + (", ".join(_note_name(n) for n in sorted(notes)) or "none stored"))

    def _walk(self, _v=None) -> None:
        self._update_walk_readout()
        self.walkChanged.emit(self.walk_speed.value() / 100.0, self.walk_spread.value() / 100.0)

    def _update_walk_readout(self) -> None:
        self.walk_readout.setText(f"{self.walk_speed.value()}%  {self.walk_spread.value() / 100:.2f}")


_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _note_name(note: int) -> str:
    return f"{_NOTE_NAMES[note % 12]}{note // 12 - 1}"
