"""The live spectrogram (a scrolling mel view) and the output level meter.

The view keeps a ring of the newest ``columns`` frames, coloured as they come in
(through the colour map's 256-entry table) into 8-bit RGB columns; each ``push`` writes
new frames at the write position and redraws the ring unrolled, so the newest
frame is always at the right edge::

    ring   [ f6 f7 f8 | f3 f4 f5 ]      write position -> after f8
    shown  [ f3 f4 f5 f6 f7 f8 ]       the ring unrolled: what pyqtgraph shows as it is

Handing pyqtgraph the float frames instead made it scale and colour the whole image, and
rebuild its colour table, at every paint: about 1 ms of the GUI thread's 3.3 ms a frame.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

# log10 mel values: MelSpec's log_floor is 1e-5 (-5); music peaks around 1.
DISPLAY_LEVELS = (-4.5, 1.5)


def mel_colormap() -> pg.ColorMap:
    try:
        return pg.colormap.get("inferno")
    except Exception:  # pragma: no cover - older pyqtgraph
        return pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)])


class SpectrogramView(pg.GraphicsLayoutWidget):
    """Scrolling view of the last ``seconds`` of log10 mel frames (newest at the right)."""

    def __init__(self, n_mels: int = 256, frames_per_second: float = 11025 / 256, seconds: float = 6.0,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.n_mels = n_mels
        self.columns = int(round(seconds * frames_per_second))
        self.frames_per_second = frames_per_second
        self._lut = np.ascontiguousarray(mel_colormap().getLookupTable(0.0, 1.0, 256, alpha=False), np.uint8)
        self._rgb = np.empty((n_mels, self.columns, 3), np.uint8)
        self._rgb[:] = self._lut[0]
        self._shown_rgb = np.empty_like(self._rgb)
        self.write = 0
        self.frames_seen = 0
        self.plot = self.addPlot()
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "seconds ago")
        self.plot.setLabel("left", "mel bin")
        self.image = pg.ImageItem(axisOrder="row-major")  # RGB: coloured here, not by pyqtgraph
        self.plot.addItem(self.image)
        self._redraw()  # the image needs its size before setRect can scale it
        # Column c of the shown image is (columns - c) frames old.
        self.image.setRect(QRectF(-seconds, 0, seconds, n_mels))
        self.plot.setXRange(-seconds, 0, padding=0)
        self.plot.setYRange(0, n_mels, padding=0)
        self.setMinimumHeight(160)

    def push(self, log_mel: np.ndarray) -> None:
        """Append ``(n_mels, k)`` log10 mel frames (oldest first)."""
        frames = np.asarray(log_mel, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[0] != self.n_mels or frames.shape[1] == 0:
            return
        frames = np.nan_to_num(frames[:, -self.columns:], nan=DISPLAY_LEVELS[0], posinf=DISPLAY_LEVELS[1],
                               neginf=DISPLAY_LEVELS[0])
        rgb = self._colour(frames)
        k = frames.shape[1]
        end = self.write + k
        if end <= self.columns:
            self._rgb[:, self.write:end] = rgb
        else:
            first = self.columns - self.write
            self._rgb[:, self.write:] = rgb[:, :first]
            self._rgb[:, : k - first] = rgb[:, first:]
        self.write = end % self.columns
        self.frames_seen += k
        self._redraw()

    def _colour(self, log_mel: np.ndarray) -> np.ndarray:
        """``(n_mels, k)`` finite log10 mel -> ``(n_mels, k, 3)`` uint8 through the colour map."""
        low, high = DISPLAY_LEVELS
        index = np.clip((log_mel - low) * (255.0 / (high - low)), 0.0, 255.0).astype(np.uint8)
        return self._lut[index]

    def shown_rgb(self) -> np.ndarray:
        """The image as displayed, coloured: ``(n_mels, columns, 3)`` uint8, newest frame last."""
        return self._shown_rgb.copy()

    def _redraw(self) -> None:
        shown, rgb, w = self._shown_rgb, self._rgb, self.write
        shown[:, :self.columns - w] = rgb[:, w:]
        shown[:, self.columns - w:] = rgb[:, :w]
        self.image.setImage(shown, autoLevels=False)


class LevelMeter(QWidget):
    """Peak and RMS of the output in dBFS, with a decaying peak hold, a clip light and a dBFS scale."""

    FLOOR_DB = -60.0
    HOLD_DECAY_DB_PER_UPDATE = 0.6
    TICKS_DB = (0, -6, -12, -24, -36, -48, -60)
    BAR_WIDTH = 18
    UNIT = "dBFS"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.peak_db = self.FLOOR_DB
        self.rms_db = self.FLOOR_DB
        self.hold_db = self.FLOOR_DB
        self.clipped = False
        font = self.font()
        font.setPointSizeF(max(font.pointSizeF() - 2.0, 6.0))
        self.setFont(font)
        fm = self.fontMetrics()
        # the scale's column: wide enough for every tick label and the unit under the bar
        self.scale_width = max(fm.horizontalAdvance(str(t)) for t in self.TICKS_DB) + 4
        self.setFixedWidth(max(self.scale_width + self.BAR_WIDTH, fm.horizontalAdvance(self.UNIT) + 2))
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Expanding)
        self.setToolTip("Output level (dBFS): RMS bar, peak line, peak hold; click to reset the clip light")

    def set_level(self, peak_db: float, rms_db: float) -> None:
        def clean(x: float) -> float:
            return self.FLOOR_DB if not np.isfinite(x) else float(min(max(x, self.FLOOR_DB), 0.0))

        self.peak_db, self.rms_db = clean(peak_db), clean(rms_db)
        self.hold_db = max(self.peak_db, self.hold_db - self.HOLD_DECAY_DB_PER_UPDATE)
        if np.isfinite(peak_db) and peak_db >= -0.1:
            self.clipped = True
        self.update()

    def reset_clip(self) -> None:
        self.clipped = False
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.reset_clip()

    def _y(self, db: float, top: int, height: int) -> int:
        return top + int(round((db / self.FLOOR_DB) * height))

    def _span(self) -> tuple[int, int]:
        """(top, height) of the 0..FLOOR_DB range in pixels: below it, a line for the unit."""
        top = 8
        return top, self.height() - top - self.fontMetrics().height() - 4

    def scale_ticks(self) -> list[tuple[int, int]]:
        """(dB, y) of each scale mark at the widget's current height."""
        top, height = self._span()
        return [(db, self._y(db, top, height)) for db in self.TICKS_DB]

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        w, h = self.width(), self.height()
        top, height = self._span()
        x0 = self.scale_width  # the bar's left edge; the scale is left of it
        p.fillRect(0, 0, w, h, QColor(20, 20, 20))
        p.fillRect(x0 + 2, 1, w - x0 - 4, 5, QColor(220, 30, 30) if self.clipped else QColor(60, 20, 20))
        y_rms = self._y(self.rms_db, top, height)
        grad_color = QColor(40, 200, 80) if self.rms_db < -12 else (
            QColor(230, 200, 40) if self.rms_db < -3 else QColor(230, 60, 40))
        p.fillRect(x0 + 3, y_rms, w - x0 - 6, top + height - y_rms, grad_color)
        p.setPen(QColor(240, 240, 240))
        y_peak = self._y(self.peak_db, top, height)
        p.drawLine(x0 + 2, y_peak, w - 3, y_peak)
        p.setPen(QColor(255, 120, 60))
        y_hold = self._y(self.hold_db, top, height)
        p.drawLine(x0 + 2, y_hold, w - 3, y_hold)
        fm = self.fontMetrics()
        for db, y in self.scale_ticks():
            p.setPen(QColor(90, 90, 90))
            p.drawLine(x0 - 2, y, x0 + 2, y)
            p.setPen(QColor(170, 170, 170))
            p.drawText(QRect(0, y - fm.height() // 2, x0 - 3, fm.height()), Qt.AlignRight | Qt.AlignVCenter,
                       str(db))
        p.drawText(QRect(0, top + height + 2, w, fm.height()), Qt.AlignHCenter | Qt.AlignTop, self.UNIT)
        p.end()
