"""Binder: makes knob widgets that write straight into the ConfigModel and follow it back.

Each factory method creates one widget for one dotted config path, sets its tooltip (what it does
and its A1111 name) and connects its edit signal to ``ConfigModel.set``. The binding goes both
ways: when a path changes in the model (from code, a restored PNG, another widget) its widgets
show the new value; :meth:`Binder.refresh` puts every bound widget back in step at once. Widgets
are updated with signals blocked, and only when the shown value differs, so typing is never
disturbed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)
from superqt.utils import signals_blocked

from .config_model import ConfigModel


def tip(what: str, a1111: str) -> str:
    """A knob's tooltip: what it does, then the name A1111 uses for it."""
    return f"{what}\nA1111: {a1111}"


class Binder:
    """Creates widgets bound to paths of one ConfigModel."""

    def __init__(self, model: ConfigModel) -> None:
        self.model = model
        self._refreshers: dict[str, list[Callable[[], None]]] = {}
        self.widgets: dict[str, QWidget] = {}
        model.changed.connect(self._on_model_changed)

    def _bind(self, path: str, widget: QWidget, tooltip: str, show: Callable[[Any], None]) -> None:
        widget.setToolTip(tooltip)
        widget.setObjectName(path)
        self.widgets[path] = widget

        def refresh() -> None:
            with signals_blocked(widget):
                show(self.model.get(path))

        self._refreshers.setdefault(path, []).append(refresh)
        refresh()

    def refresh(self) -> None:
        """Show the model's current values in every bound widget."""
        for refreshers in self._refreshers.values():
            for refresh in refreshers:
                refresh()

    def _on_model_changed(self, path: str) -> None:
        for refresh in self._refreshers.get(path, ()):
            refresh()

    def spin(self, path: str, lo: int, hi: int, tooltip: str, step: int = 1) -> QSpinBox:
        box = QSpinBox()
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setKeyboardTracking(True)

        def show(value: Any) -> None:
            if box.value() != int(value):
                box.setValue(int(value))

        self._bind(path, box, tooltip, show)
        box.valueChanged.connect(lambda v: self.model.set(path, int(v)))
        return box

    def dspin(self, path: str, lo: float, hi: float, tooltip: str, step: float = 0.05) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setDecimals(2)

        def show(value: Any) -> None:
            # A value the user is typing ("1." of "1.5") must not be re-formatted under the cursor.
            if abs(box.value() - float(value)) > 1e-9:
                box.setValue(float(value))

        self._bind(path, box, tooltip, show)
        box.valueChanged.connect(lambda v: self.model.set(path, round(float(v), 4)))
        return box

    def check(self, path: str, text: str, tooltip: str) -> QCheckBox:
        box = QCheckBox(text)

        def show(value: Any) -> None:
            if box.isChecked() != bool(value):
                box.setChecked(bool(value))

        self._bind(path, box, tooltip, show)
        box.toggled.connect(lambda v: self.model.set(path, bool(v)))
        return box

    def combo(
        self,
        path: str,
        items: Sequence[str],
        tooltip: str,
        *,
        editable: bool = False,
        none_text: str | None = None,
    ) -> QComboBox:
        """A choice of ``items``. With ``none_text`` the first entry stands for ``None``."""
        box = QComboBox()
        box.setEditable(editable)
        narrow(box)
        if none_text is not None:
            box.addItem(none_text)
        box.addItems(list(items))

        def show(value: Any) -> None:
            text = none_text if value is None and none_text is not None else str(value)
            if box.currentText() == text:
                return
            index = box.findText(text)
            if index < 0 and text:
                box.addItem(text)
                index = box.count() - 1
            box.setCurrentIndex(index)

        def write(text: str) -> None:
            self.model.set(path, None if none_text is not None and text == none_text else text)

        self._bind(path, box, tooltip, show)
        box.currentTextChanged.connect(write)
        return box

    def line(self, path: str, tooltip: str, *, empty_is_none: bool = False) -> QLineEdit:
        edit = QLineEdit()

        def show(value: Any) -> None:
            if edit.text() != ("" if value is None else str(value)):
                edit.setText("" if value is None else str(value))

        self._bind(path, edit, tooltip, show)
        edit.textChanged.connect(lambda t: self.model.set(path, None if empty_is_none and not t else t))
        return edit

    def text(self, path: str, tooltip: str, *, empty_is_none: bool = False) -> QPlainTextEdit:
        edit = QPlainTextEdit()
        edit.setTabChangesFocus(True)

        def show(value: Any) -> None:
            if edit.toPlainText() != (value or ""):
                edit.setPlainText("" if value is None else str(value))

        def write() -> None:
            value = edit.toPlainText()
            self.model.set(path, None if empty_is_none and not value else value)

        self._bind(path, edit, tooltip, show)
        edit.textChanged.connect(write)
        return edit


#: Characters a combo box asks room for: long model names elide instead of widening the cards.
COMBO_MIN_CHARS = 14


def narrow(box: QComboBox, chars: int = COMBO_MIN_CHARS) -> QComboBox:
    """Size ``box`` for ``chars`` characters, not its longest item (its popup still shows all)."""
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(chars)
    return box


def set_items(box: QComboBox, items: Sequence[str], *, keep_first: int = 0) -> None:
    """Replace a combo's choices (after a model refresh), keeping its current text."""
    current = box.currentText()
    with signals_blocked(box):
        while box.count() > keep_first:
            box.removeItem(keep_first)
        box.addItems(list(items))
        index = box.findText(current)
        if index < 0:
            box.addItem(current)
            index = box.count() - 1
        box.setCurrentIndex(index)
