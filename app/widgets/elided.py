"""``ElidedLabel``: a label that keeps to a fixed number of lines, however long its text.

Long engine messages would otherwise grow the panel they sit in and push the panels
below it down. The label wraps the text into at most ``lines`` lines of its width,
ends the last with an ellipsis when the text does not fit, and shows the whole text
in its tooltip. ``text()`` returns the whole text.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics, QTextLayout
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


def elide_lines(text: str, metrics: QFontMetrics, font, width: int, lines: int) -> str:
    """``text`` wrapped at word boundaries into at most ``lines`` lines of ``width`` pixels,
    the last ending in an ellipsis if anything is left over."""
    text = " ".join(text.split())  # one paragraph: newlines in a message would cost lines
    if not text or width <= 0:
        return text
    layout = QTextLayout(text, font)
    layout.beginLayout()
    starts: list[tuple[int, int]] = []
    while len(starts) < lines:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        starts.append((line.textStart(), line.textLength()))
    layout.endLayout()
    out = [text[s:s + n].rstrip() for s, n in starts]
    last_start = starts[-1][0]
    if last_start + starts[-1][1] < len(text):  # more text than lines: the last line takes the rest, elided
        out[-1] = metrics.elidedText(text[last_start:], Qt.ElideRight, width)
    return "\n".join(out)


class ElidedLabel(QLabel):
    """A QLabel of a fixed height of ``lines`` lines; the whole text is in the tooltip."""

    def __init__(self, text: str = "", lines: int = 3, parent: QWidget | None = None):
        super().__init__(parent)
        self.lines = int(lines)
        self._full = ""
        self.setWordWrap(False)
        self.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        m = self.contentsMargins()
        self.setFixedHeight(self.lines * self.fontMetrics().lineSpacing() + m.top() + m.bottom() + 2)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._full = str(text)
        self.setToolTip(self._full)
        self._relayout()

    def text(self) -> str:
        return self._full

    def shown_text(self) -> str:
        """What the label displays (wrapped, elided)."""
        return super().text()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._relayout()

    def _relayout(self) -> None:
        width = self.contentsRect().width()
        super().setText(elide_lines(self._full, self.fontMetrics(), self.font(), width, self.lines))
