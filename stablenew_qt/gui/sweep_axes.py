"""AxisRow: one X/Y/Z axis of the Sweep panel (its type, its values as typed, their count), and
SweepOptionsBar: A1111's X/Y/Z options.

The type combo lists every axis type core/sweep knows, in A1111's words and menu order. The
values are typed in A1111's syntax (``1-5``, ``1-10 (+2)``, ``1-10 [5]``, quoted comma lists) and
parsed as the user types (:func:`~stablenew_qt.core.sweep.parse_values`, pure and quick), so a
bad value shows its message under the field at once. For axes that take names (checkpoints,
VAEs, samplers, schedule types, upscalers, detectors) a "Names" button offers the installed ones;
picking one appends it to the values (quoted when it holds a comma).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import ConfigError
from ..core.samplers import SAMPLERS, SCHEDULERS
from ..core.sweep import AXIS_TYPES, AxisSpec, SweepSpec, axis_type, parse_values, split_values
from ..core.sweep.plan import values_text
from .services import HIRES_UPSCALERS, ModelChoices

NOTHING = "Nothing"


def axis_names(label: str, choices: ModelChoices) -> tuple[str, ...]:
    """The names to offer for an axis of type ``label`` (empty: the axis takes no names)."""
    names: dict[str, tuple[str, ...]] = {
        "Checkpoint name": choices.checkpoints,
        "Refiner checkpoint": ("None", *choices.checkpoints),
        "VAE": ("Automatic", *choices.vaes),
        "Sampler": SAMPLERS,
        "Schedule type": SCHEDULERS,
        "Hires upscaler": (*HIRES_UPSCALERS, *choices.upscalers),
        "[ADetailer] ADetailer model 1st": choices.detectors,
        "[ADetailer] ADetailer sampler 1st": SAMPLERS,
    }
    return names.get(label, ())


class AxisRow(QWidget):
    """One axis (``name`` is ``"x"``, ``"y"`` or ``"z"``). ``count`` is its number of values (1 for
    Nothing), or None while the values do not parse (``error`` says why)."""

    changed = Signal()

    def __init__(self, name: str, choices: Callable[[], ModelChoices], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._choices = choices
        self.count: int | None = 1
        self.error = ""
        self.type = QComboBox()
        self.type.setObjectName(f"sweep.{name}.type")
        self.type.addItems(list(AXIS_TYPES))
        self.type.setToolTip(f"{name.upper()} type: what changes along this axis (A1111's X/Y/Z plot types)")
        self.values = QLineEdit()
        self.values.setObjectName(f"sweep.{name}.values")
        self.values.setPlaceholderText('e.g. 1-5, 1-10 (+2), 1-10 [5] or a, b, "c, d"')
        self.values.setToolTip(
            f"{name.upper()} values: a comma list (quotes protect commas) or ranges: "
            "1-5, 1-10 (+2) steps by 2, 1-10 [5] spreads 5 values"
        )
        self.names_button = QToolButton()
        self.names_button.setObjectName(f"sweep.{name}.names")
        self.names_button.setText("Names")
        self.names_button.setToolTip("Add an installed name to the values")
        self.names_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.names_menu = QMenu(self.names_button)
        self.names_menu.aboutToShow.connect(self._fill_names)
        self.names_button.setMenu(self.names_menu)
        self.error_label = QLabel()
        self.error_label.setObjectName(f"sweep.{name}.error")
        self.error_label.setProperty("role", "error")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel(f"{name.upper()} type"))
        row.addWidget(self.type)
        row.addWidget(self.values, 1)
        row.addWidget(self.names_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        column.addWidget(self.error_label)
        self.type.currentTextChanged.connect(self._on_edited)
        self.values.textChanged.connect(self._on_edited)
        self._on_edited()

    @property
    def is_nothing(self) -> bool:
        return self.type.currentText() == NOTHING

    def spec(self) -> AxisSpec:
        if self.is_nothing:
            return AxisSpec()
        return AxisSpec(type=self.type.currentText(), values=self.values.text())

    def show_spec(self, spec: AxisSpec) -> None:
        """Show a loaded axis (a list of values is shown as one comma list)."""
        self.type.setCurrentText(axis_type(spec.type).label)
        self.values.setText(values_text(spec.values))

    def _on_edited(self, _text: str = "") -> None:
        label = self.type.currentText()
        self.values.setEnabled(not self.is_nothing)
        self.names_button.setVisible(bool(axis_names(label, self._choices())))
        self.count, self.error = self._parse(label)
        self.error_label.setText(self.error)
        self.error_label.setVisible(bool(self.error))
        self.changed.emit()

    def _parse(self, label: str) -> tuple[int | None, str]:
        if self.is_nothing:
            return 1, ""
        text = self.values.text()
        if not text.strip():
            return None, "type the values, separated by commas, or a range such as 1-5"
        try:
            count = len(parse_values(axis_type(label).kind, text, ""))
        except ConfigError as exc:
            return None, "; ".join(p.message for p in exc.problems)
        return (count, "") if count else (None, "has no values; type them separated by commas")

    def _fill_names(self) -> None:
        self.names_menu.clear()
        for name in axis_names(self.type.currentText(), self._choices()):
            self.names_menu.addAction(name, functools.partial(self.add_name, name))

    def add_name(self, name: str) -> None:
        """Append ``name`` to the values (quoted if it holds a comma or a quote)."""
        try:
            current = [v for v in split_values(self.values.text()) if v]
        except ConfigError:
            current = []
        self.values.setText(", ".join(_quoted(v) for v in (*current, name)))


def _quoted(value: str) -> str:
    """A value as A1111's CSV split reads it back: quoted when it holds a comma or a quote."""
    if "," in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


#: A1111's X/Y/Z options with a check box: SweepOptions key, label, tooltip.
_OPTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "keep_random_seeds",
        "Keep -1 for seeds",
        "On: every cell draws its own random seed; off: a -1 seed is fixed once for all cells",
    ),
    ("include_sub_grids", "Include Sub Grids", "Also keep each Z value's own X/Y grid"),
    ("draw_legend", "Draw legend", "Labels above the columns and beside the rows"),
    ("vary_seeds_x", "Vary seeds for X", "Each column's seed is one more than the last"),
    ("vary_seeds_y", "Vary seeds for Y", "Each row's seeds step on by the column count"),
    ("vary_seeds_z", "Vary seeds for Z", "Each sub-grid's seeds step on by its cell count"),
)


class SweepOptionsBar(QWidget):
    """A1111's X/Y/Z options as check boxes (``sweep.<key>``), and the prompt-matrix switch."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.boxes: dict[str, QCheckBox] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        for index, (key, text, tooltip) in enumerate(_OPTIONS):
            self.boxes[key] = box = _box(f"sweep.{key}", text, tooltip)
            grid.addWidget(box, index // 3, index % 3)
        self.boxes["draw_legend"].setChecked(True)
        self.matrix = _box(
            "sweep.matrix",
            "Prompt matrix",
            "Switch the prompt's | parts on and off (A1111's Prompt matrix) instead of axes",
        )
        grid.addWidget(self.matrix, 2, 0)
        for box in (*self.boxes.values(), self.matrix):
            box.toggled.connect(self.changed)

    def values(self) -> dict[str, bool]:
        """The options as SweepSpec keys."""
        return {key: box.isChecked() for key, box in self.boxes.items()}

    def show_values(self, spec: SweepSpec) -> None:
        data = spec.model_dump()
        for key, box in self.boxes.items():
            box.setChecked(bool(data[key]))
        self.matrix.setChecked(spec.prompt_matrix is not None)


def _box(name: str, text: str, tooltip: str) -> QCheckBox:
    box = QCheckBox(text)
    box.setObjectName(name)
    box.setToolTip(tooltip)
    return box
