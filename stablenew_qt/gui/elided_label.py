"""Labels for text of any length that never widen the window (issue 17, item 1).

A plain QLabel asks for the width of its whole text: a 2,000-character error made the window
wider than the screen. :class:`ElidedLabel` shows one line cut with "…" at the width it is given
and keeps the whole text in its tooltip; :func:`breakable` lets a word-wrapped label break long
words (paths, URLs, repeated characters) instead of growing to fit them.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

#: Characters a word-wrapped label may have between break opportunities.
BREAK_EVERY = 40
_ZERO_WIDTH_SPACE = "\u200b"


def breakable(text: str, every: int = BREAK_EVERY) -> str:
    """``text`` with a zero-width space after every ``every`` characters of an unbroken word, so
    Qt's word wrap can break it (the text reads the same; copying it drops nothing visible)."""
    out: list[str] = []
    run = 0
    for char in text:
        out.append(char)
        run = 0 if char.isspace() else run + 1
        if run >= every:
            out.append(_ZERO_WIDTH_SPACE)
            run = 0
    return "".join(out)


class ElidedLabel(QLabel):
    """One line of text, elided to the width the layout gives; the full text in the tooltip.

    :meth:`text` returns the full text; :meth:`shown_text` what fits. Its size hint is a short
    line, so a layout never grows to fit a long text.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None, *, min_chars: int = 12) -> None:
        super().__init__(parent)
        self._full = ""
        self._min_chars = min_chars
        self._tooltip_is_text = True
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        if self._tooltip_is_text:
            super().setToolTip(text)
        super().setText(text)
        self._elide()

    def text(self) -> str:
        return self._full

    def setToolTip(self, tooltip: str) -> None:
        """A tooltip of its own (the full text is no longer put there); "" goes back to it."""
        self._tooltip_is_text = not tooltip
        super().setToolTip(tooltip or self._full)

    def shown_text(self) -> str:
        """What the label shows: the text, or its start and "…" when it is too wide."""
        return str(self.property("shownText") or "")

    def sizeHint(self) -> QSize:
        metrics = self.fontMetrics()
        width = min(metrics.horizontalAdvance(self._full), metrics.averageCharWidth() * 60)
        return QSize(width + 4, metrics.height())

    def minimumSizeHint(self) -> QSize:
        metrics = self.fontMetrics()
        return QSize(metrics.averageCharWidth() * self._min_chars, metrics.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        line = self._full.splitlines()[0] if self._full else ""
        more = line != self._full
        shown = self.fontMetrics().elidedText(
            line + (" …" if more else ""), Qt.TextElideMode.ElideRight, max(self.width(), 1)
        )
        self.setProperty("shownText", shown)
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        rect = self.contentsRect()
        painter.drawText(rect, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter), self.shown_text())
