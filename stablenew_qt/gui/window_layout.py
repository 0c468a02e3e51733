"""The window's first size and the split between the editors and the tabs (issue 17, items 1, 11).

A first start (no saved geometry) opens at :data:`FIRST_SIZE_FRACTION` of the screen's available
area, centred, with the left panel wide enough for the stage cards without a horizontal
scrollbar (when the screen allows it). Later starts restore what the user left (the window's
geometry and the splitter, saved in QSettings by the window).
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize

#: The first window's share of the screen's available width and height.
FIRST_SIZE_FRACTION = 0.85
#: The least width the right pane (progress, results, queue, history, log) may be squeezed to.
RIGHT_MIN_WIDTH = 320
#: The least width of the left panel (prompt and cards).
LEFT_MIN_WIDTH = 300


def first_geometry(available: QRect, fraction: float = FIRST_SIZE_FRACTION) -> QRect:
    """The first window's frame: ``fraction`` of ``available`` (the screen minus its panels), centred."""
    size = QSize(round(available.width() * fraction), round(available.height() * fraction))
    rect = QRect(available.topLeft(), size)
    rect.moveCenter(available.center())
    return rect


def left_width(total: int, cards_width: int, scrollbar: int) -> int:
    """The left panel's width in a splitter ``total`` wide: the cards' width plus the scroll bar,
    at least :data:`LEFT_MIN_WIDTH`, leaving the right pane :data:`RIGHT_MIN_WIDTH` when it can."""
    wanted = max(cards_width + scrollbar + 4, LEFT_MIN_WIDTH)
    return max(min(wanted, total - RIGHT_MIN_WIDTH), min(LEFT_MIN_WIDTH, total // 2))
