"""Transport bar: play/stop, source (latent / paint / file), loop length, record."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QWidget)

from melsynth.app.performance import SOURCE_LABELS

RECORD_FORMATS = ("wav", "flac")
RECORDING_RED = "#c62828"  # the Rec button while a take runs


class TransportBar(QWidget):
    playToggled = Signal(bool)  # True = play
    sourceChosen = Signal(str)  # engine source name
    fileRequested = Signal()
    loopSecondsChanged = Signal(float)
    recordToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.play = QPushButton("\u25b6 Play")
        self.play.setCheckable(True)
        self.play.setToolTip("Play / stop (Space)")
        self.source = QComboBox()
        for name, label in SOURCE_LABELS.items():
            self.source.addItem(label, name)
        self.source.setToolTip("Where the mel frames come from: the prior (latent), the paint canvas, "
                               "or an audio file (resynthesis)")
        self.file_button = QPushButton("File\u2026")
        self.file_label = QLabel("no file")
        self.file_label.setMinimumWidth(80)
        self.loop = QDoubleSpinBox()
        self.loop.setRange(0.5, 30.0)
        self.loop.setSingleStep(0.5)
        self.loop.setValue(4.0)
        self.loop.setSuffix(" s loop")
        self.loop.setKeyboardTracking(False)
        self.loop.setToolTip("Length of the paint canvas loop")
        self.record = QPushButton("\u25cf Rec")
        self.record.setCheckable(True)
        self.record.setToolTip("Record what is heard to WAV or FLAC (R)")
        self.record.setStyleSheet(f"QPushButton:checked {{ background-color: {RECORDING_RED}; color: white; }}")
        self.record_format = QComboBox()
        for f in RECORD_FORMATS:
            self.record_format.addItem(f.upper(), f)
        self.record_label = QLabel("")
        for w in (self.play, self.file_button, self.record):
            w.setFocusPolicy(Qt.NoFocus)

        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addWidget(self.play)
        lay.addWidget(QLabel("source"))
        lay.addWidget(self.source)
        lay.addWidget(self.file_button)
        lay.addWidget(self.file_label)
        lay.addWidget(self.loop)
        lay.addStretch(1)
        lay.addWidget(self.record)
        lay.addWidget(self.record_format)
        lay.addWidget(self.record_label)

        self.play.toggled.connect(self._play_toggled)
        self.source.currentIndexChanged.connect(lambda _i: self.sourceChosen.emit(self.source.currentData()))
        self.file_button.clicked.connect(self.fileRequested)
        self.loop.valueChanged.connect(self.loopSecondsChanged)
        self.record.toggled.connect(self._record_toggled)

    def _play_toggled(self, on: bool) -> None:
        self.play.setText("\u25a0 Stop" if on else "\u25b6 Play")
        self.playToggled.emit(on)

    def _record_toggled(self, on: bool) -> None:
        self.record.setText("\u25a0 Rec" if on else "\u25cf Rec")
        self.recordToggled.emit(on)

    # display (no signals) ---------------------------------------------------------
    def show_playing(self, on: bool) -> None:
        self.play.blockSignals(True)
        self.play.setChecked(on)
        self.play.setText("\u25a0 Stop" if on else "\u25b6 Play")
        self.play.blockSignals(False)

    def show_recording(self, on: bool, text: str = "") -> None:
        self.record.blockSignals(True)
        self.record.setChecked(on)
        self.record.setText("\u25a0 Rec" if on else "\u25cf Rec")
        self.record.blockSignals(False)
        self.record_label.setText(text)

    def show_source(self, source: str) -> None:
        i = self.source.findData(source)
        if i >= 0:
            self.source.blockSignals(True)
            self.source.setCurrentIndex(i)
            self.source.blockSignals(False)

    def show_file(self, path: str | None) -> None:
        self.file_label.setText(Path(path).name if path else "no file")
        self.file_label.setToolTip(path or "")

    def show_loop(self, seconds: float) -> None:
        self.loop.blockSignals(True)
        self.loop.setValue(seconds)
        self.loop.blockSignals(False)

    @property
    def record_extension(self) -> str:
        return self.record_format.currentData()
