"""Outpaint: how many pixels to add on each side of the image (the new area is all masked).

A1111's "Poor man's outpainting" script (``scripts/poor_mans_outpainting.py``) takes one "Pixels to
expand" value, a slider from 8 to 256 in steps of 8, for the chosen directions. Here each side has
its own field, 0 to :data:`OUTPAINT_MAX` in multiples of :data:`OUTPAINT_STEP` (a typed value is
rounded to the nearest multiple). The editor previews the grown canvas exactly as entered; A1111
additionally rounds the grown canvas up to a multiple of 64 and shares the extra pixels between
the two sides of each axis. That, the mask blur overlap and the fill belong to the engine.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from PySide6.QtCore import QRectF, Signal
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QSpinBox, QWidget
from superqt.utils import signals_blocked

OUTPAINT_STEP = 8
OUTPAINT_MAX = 256


class OutpaintSides(NamedTuple):
    """Pixels added on each side of the image; all 0 means no outpainting."""

    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0

    @property
    def any(self) -> bool:
        return any(self)


def document_rect(width: int, height: int, sides: OutpaintSides) -> QRectF:
    """The grown canvas in image coordinates: the image keeps (0, 0) and the new area is outside it."""
    return QRectF(
        -sides.left, -sides.top, width + sides.left + sides.right, height + sides.top + sides.bottom
    )


def snap(value: int, step: int = OUTPAINT_STEP, maximum: int = OUTPAINT_MAX) -> int:
    """``value`` rounded to the nearest multiple of ``step`` (halves up: 4 -> 8) within 0..maximum."""
    return max(0, min(maximum, math.floor(value / step + 0.5) * step))


class StepSpinBox(QSpinBox):
    """A spin box whose value is always a multiple of its single step (typed values are rounded)."""

    def valueFromText(self, text: str) -> int:
        return snap(super().valueFromText(text), self.singleStep(), self.maximum())


class OutpaintFields(QWidget):
    """Four side fields; :attr:`sides_changed` carries the new :class:`OutpaintSides`."""

    sides_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields: dict[str, StepSpinBox] = {}
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Outpaint (px)"))
        for side in OutpaintSides._fields:
            box = StepSpinBox()
            box.setObjectName(f"mask.outpaint.{side}")
            box.setRange(0, OUTPAINT_MAX)
            box.setSingleStep(OUTPAINT_STEP)
            box.setKeyboardTracking(False)
            box.setToolTip(
                f"Pixels to add on the {side} (multiples of {OUTPAINT_STEP}); the new area is masked.\n"
                "A1111: Poor man's outpainting, Pixels to expand / Outpainting direction"
            )
            box.valueChanged.connect(self._on_value_changed)
            self.fields[side] = box
            form = QFormLayout()
            form.setContentsMargins(0, 0, 0, 0)
            form.addRow(side.capitalize(), box)
            row.addLayout(form)
        row.addStretch(1)

    def sides(self) -> OutpaintSides:
        return OutpaintSides(*(self.fields[side].value() for side in OutpaintSides._fields))

    def set_sides(self, sides: OutpaintSides) -> None:
        """Show ``sides`` (each rounded to a multiple of the step and clamped); one signal at most."""
        before = self.sides()
        for side, value in zip(OutpaintSides._fields, sides, strict=True):
            box = self.fields[side]
            with signals_blocked(box):
                box.setValue(snap(int(value)))
        if self.sides() != before:
            self.sides_changed.emit(self.sides())

    def _on_value_changed(self, _value: int) -> None:
        self.sides_changed.emit(self.sides())
