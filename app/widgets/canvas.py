"""The paint canvas: a loop of log10 mel frames that the player paints and the engine plays.

``CanvasModel`` is the array and the brush arithmetic (numpy only); ``CanvasView``
shows it with the engine's playhead and turns mouse strokes into model edits.
Every edit reports the rectangle it changed, and the window sends exactly that
rectangle to the engine (``Synth.edit_canvas``), so an edit ahead of the
playhead is heard on this pass.

Brush (size ``s`` cells, Gaussian falloff of standard deviation ``s / 2``)::

    paint:   x <- x + w * max(target - x, 0)      only ever brightens, up to target
    erase:   x <- x + w * (silence - x)
    smooth:  x <- x + w * (blur3x3(x) - x)
    w = strength * exp(-d^2 / (2 (s/2)^2)),   target = denormalize(2 * intensity - 1)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QSlider, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from melsynth.app.widgets.spectrogram import DISPLAY_LEVELS, mel_colormap
from melsynth.engine import MelSpec

MODES = ("paint", "erase", "smooth")
DAB_STRENGTH = 0.6


@dataclass(frozen=True)
class Region:
    """Changed cells: frames [frame_start, frame_stop) x bins [bin_start, bin_stop)."""

    frame_start: int
    frame_stop: int
    bin_start: int
    bin_stop: int

    def union(self, other: "Region | None") -> "Region":
        if other is None:
            return self
        return Region(min(self.frame_start, other.frame_start), max(self.frame_stop, other.frame_stop),
                      min(self.bin_start, other.bin_start), max(self.bin_stop, other.bin_stop))


class CanvasModel:
    """``data``: ``(n_mels, frames)`` float32 log10 mel, silence = ``spec.log_min``."""

    def __init__(self, spec: MelSpec, frames: int):
        self.spec = spec
        self.silence = spec.log_min
        self.data = np.full((spec.n_mels, max(1, int(frames))), self.silence, dtype=np.float32)

    @property
    def frames(self) -> int:
        return self.data.shape[1]

    def level_of(self, intensity: float) -> float:
        """Brush intensity 0..1 -> log10 mel level (0 = silence, 1 = the normalisation ceiling)."""
        i = float(min(max(intensity, 0.0), 1.0))
        return float(self.spec.denormalize(2.0 * i - 1.0))

    def resize(self, frames: int) -> None:
        """Loop length changed: keep the start, pad with silence or crop."""
        frames = max(1, int(frames))
        out = np.full((self.spec.n_mels, frames), self.silence, dtype=np.float32)
        n = min(frames, self.frames)
        out[:, :n] = self.data[:, :n]
        self.data = out

    def clear(self) -> Region:
        self.data[:] = self.silence
        return self.whole()

    def whole(self) -> Region:
        return Region(0, self.frames, 0, self.spec.n_mels)

    def load(self, log_mel: np.ndarray) -> Region:
        """Fill the loop from the start of ``log_mel`` (``(n_mels, F)``), silence after its end."""
        log_mel = np.asarray(log_mel, dtype=np.float32)
        if log_mel.ndim != 2 or log_mel.shape[0] != self.spec.n_mels:
            raise ValueError(f"canvas needs ({self.spec.n_mels}, frames) log mel, got {log_mel.shape}")
        self.data[:] = self.silence
        n = min(self.frames, log_mel.shape[1])
        self.data[:, :n] = np.clip(np.nan_to_num(log_mel[:, :n], nan=self.silence), self.silence,
                                   self.spec.norm_high)
        return self.whole()

    def dab(self, frame: float, mel_bin: float, size: float, intensity: float, mode: str = "paint",
            strength: float = DAB_STRENGTH) -> Region | None:
        """One brush dab centred on (frame, mel_bin); -> the changed region (None if off-canvas)."""
        if mode not in MODES:
            raise ValueError(f"unknown brush mode {mode!r}; known: {', '.join(MODES)}")
        size = max(float(size), 0.5)
        radius = int(np.ceil(size))
        f0, f1 = max(int(np.floor(frame)) - radius, 0), min(int(np.floor(frame)) + radius + 1, self.frames)
        b0, b1 = max(int(np.floor(mel_bin)) - radius, 0), min(int(np.floor(mel_bin)) + radius + 1,
                                                              self.spec.n_mels)
        if f0 >= f1 or b0 >= b1:
            return None
        bins = np.arange(b0, b1)[:, None] + 0.5
        frs = np.arange(f0, f1)[None, :] + 0.5
        d2 = (bins - mel_bin) ** 2 + (frs - frame) ** 2
        sd = size / 2.0
        w = (strength * np.exp(-d2 / (2.0 * sd * sd))).astype(np.float32)
        patch = self.data[b0:b1, f0:f1]
        if mode == "paint":
            target = self.level_of(intensity)
            patch += w * np.maximum(target - patch, 0.0)
        elif mode == "erase":
            patch += w * (self.silence - patch)
        else:
            blurred = _blur3(self.data, b0, b1, f0, f1)
            patch += w * (blurred - patch)
        return Region(f0, f1, b0, b1)

    def stroke(self, points: list[tuple[float, float]], size: float, intensity: float,
               mode: str = "paint") -> Region | None:
        """Dabs along a polyline of (frame, bin) points, spaced a quarter brush apart."""
        region = None
        prev = None
        for p in points:
            if prev is None:
                seg = [p]
            else:
                dist = float(np.hypot(p[0] - prev[0], p[1] - prev[1]))
                n = max(1, int(np.ceil(dist / max(size / 4.0, 0.5))))
                seg = [(prev[0] + (p[0] - prev[0]) * k / n, prev[1] + (p[1] - prev[1]) * k / n)
                       for k in range(1, n + 1)]
            for f, b in seg:
                r = self.dab(f, b, size, intensity, mode)
                if r is not None:
                    region = r.union(region)
            prev = p
        return region

    def smooth_all(self) -> Region:
        self.data[:] = _blur3(self.data, 0, self.spec.n_mels, 0, self.frames)
        return self.whole()

    def values(self, region: Region) -> np.ndarray:
        return self.data[region.bin_start:region.bin_stop, region.frame_start:region.frame_stop].copy()


def _blur3(data: np.ndarray, b0: int, b1: int, f0: int, f1: int) -> np.ndarray:
    """3x3 box blur of ``data[b0:b1, f0:f1]``, reading one cell beyond (edges replicated)."""
    padded = np.pad(data, 1, mode="edge")
    acc = np.zeros((b1 - b0, f1 - f0), dtype=np.float32)
    for db in (0, 1, 2):
        for df in (0, 1, 2):
            acc += padded[b0 + db:b1 + db, f0 + df:f1 + df]
    return acc / 9.0


class _PaintImage(pg.ImageItem):
    """An ImageItem whose drags paint: (x, y) in item coordinates are (frame, mel bin)."""

    def __init__(self, view: "CanvasView"):
        super().__init__(axisOrder="row-major")
        self._view = view

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() == Qt.LeftButton:
            pos = ev.pos()
            self._view.paint_stroke([(pos.x(), pos.y())])
            ev.accept()

    def mouseDragEvent(self, ev) -> None:  # noqa: N802
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        a, b = ev.lastPos(), ev.pos()
        if ev.isStart():
            a = ev.buttonDownPos()
        self._view.paint_stroke([(a.x(), a.y()), (b.x(), b.y())])


class CanvasView(QWidget):
    """Paint panel: tools, brush, the image with the playhead."""

    edited = Signal(object)  # Region
    stroked = Signal()  # the player painted (a brush gesture, not Load / Grab / Clear)
    hearRequested = Signal()  # the "not heard" banner's button: make the canvas the source
    loadRequested = Signal()
    grabRequested = Signal()

    def __init__(self, spec: MelSpec | None = None, frames: int = 172, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec or MelSpec()
        self.model = CanvasModel(self.spec, frames)
        self.mode = "paint"

        tools = QHBoxLayout()
        self.mode_buttons = QButtonGroup(self)
        for i, mode in enumerate(MODES):
            rb = QRadioButton(mode.capitalize())
            rb.setFocusPolicy(Qt.NoFocus)
            rb.setChecked(mode == self.mode)
            self.mode_buttons.addButton(rb, i)
            tools.addWidget(rb)
        self.mode_buttons.idClicked.connect(lambda i: self.set_mode(MODES[i]))
        self.size = QSpinBox()
        self.size.setRange(1, 48)
        self.size.setValue(6)
        self.size.setPrefix("brush ")
        self.size.setToolTip("Brush size in cells (mel bins / frames)")
        self.intensity = QSlider(Qt.Horizontal)
        self.intensity.setRange(0, 100)
        self.intensity.setValue(65)
        self.intensity.setToolTip("Brush intensity: how loud what you paint is")
        self.intensity.setMinimumWidth(60)
        self.intensity.setMaximumWidth(140)
        self.smooth_button = QToolButton(text="Blur all")
        self.clear_button = QToolButton(text="Clear")
        self.load_button = QToolButton(text="Load\u2026")
        self.grab_button = QToolButton(text="Grab")
        self.grab_button.setToolTip("Fill the canvas with the last loop of what was playing, to paint over it")
        self.smooth_button.setToolTip("Blur the whole canvas a little")
        self.clear_button.setToolTip("Silence the whole canvas")
        self.load_button.setToolTip("Fill the canvas from the start of an audio file's mel")
        for b in (self.smooth_button, self.clear_button, self.grab_button, self.load_button):
            b.setFocusPolicy(Qt.NoFocus)
        tools.addWidget(self.size)
        tools.addWidget(QLabel("level"))
        tools.addWidget(self.intensity)
        tools.addStretch(1)
        tools.addWidget(self.smooth_button)
        tools.addWidget(self.clear_button)
        tools.addWidget(self.grab_button)
        tools.addWidget(self.load_button)

        # The canvas is heard only when it is the source: say so where the player paints.
        self.not_heard = QWidget()
        banner = QHBoxLayout(self.not_heard)
        banner.setContentsMargins(4, 0, 4, 0)
        self.not_heard_label = QLabel("Not heard: the source is not Paint. Painting switches to it.")
        self.not_heard_label.setStyleSheet("color: #e0a040;")
        self.hear_button = QToolButton(text="Hear the canvas")
        self.hear_button.setToolTip("Make the canvas the source (transport: source Paint)")
        self.hear_button.setFocusPolicy(Qt.NoFocus)
        banner.addWidget(self.not_heard_label, 1)
        banner.addWidget(self.hear_button)

        self.graphics = pg.GraphicsLayoutWidget()
        self.plot = self.graphics.addPlot()
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "seconds")
        self.plot.setLabel("left", "mel bin")
        self.plot.getAxis("bottom").setScale(1.0 / self.spec.frame_rate)
        self.image = _PaintImage(self)
        self.image.setColorMap(mel_colormap())
        self.plot.addItem(self.image)
        self.playhead = pg.InfiniteLine(pos=0, angle=90, movable=False, pen=pg.mkPen((80, 220, 255), width=2))
        self.plot.addItem(self.playhead)
        self.graphics.setMinimumHeight(160)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(tools)
        lay.addWidget(self.not_heard)
        lay.addWidget(self.graphics, 1)

        self.smooth_button.clicked.connect(lambda: self._apply(self.model.smooth_all()))
        self.clear_button.clicked.connect(lambda: self._apply(self.model.clear()))
        self.load_button.clicked.connect(self.loadRequested)
        self.grab_button.clicked.connect(self.grabRequested)
        self.hear_button.clicked.connect(self.hearRequested)
        self._redraw()

    # model <-> view ---------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.mode_buttons.button(MODES.index(mode)).setChecked(True)

    def show_heard(self, heard: bool, source_label: str = "") -> None:
        """Hide the "not heard" banner while the canvas is the source; else name the source."""
        self.not_heard.setVisible(not heard)
        if source_label:
            self.not_heard_label.setText(f"Not heard: the source is {source_label}. Painting switches to Paint.")

    def set_frames(self, frames: int) -> None:
        self.model.resize(frames)
        self._redraw()

    def set_data(self, log_mel: np.ndarray) -> None:
        """Show the engine's canvas (no ``edited``)."""
        data = np.asarray(log_mel, dtype=np.float32)
        if data.shape[1] != self.model.frames:
            self.model.resize(data.shape[1])
        self.model.data[:] = data
        self._redraw()

    def load_log_mel(self, log_mel: np.ndarray) -> None:
        self._apply(self.model.load(log_mel))

    def paint_stroke(self, points: list[tuple[float, float]]) -> Region | None:
        region = self.model.stroke(points, self.size.value(), self.intensity.value() / 100.0, self.mode)
        if region is not None:
            self._apply(region)
            self.stroked.emit()
        return region

    def set_playhead(self, frame: int) -> None:
        self.playhead.setValue(frame % max(self.model.frames, 1))

    def _apply(self, region: Region | None) -> None:
        self._redraw()
        if region is not None:
            self.edited.emit(region)

    def _redraw(self) -> None:
        self.image.setImage(self.model.data, autoLevels=False, levels=DISPLAY_LEVELS)
        self.plot.setXRange(0, self.model.frames, padding=0)
        self.plot.setYRange(0, self.spec.n_mels, padding=0)
