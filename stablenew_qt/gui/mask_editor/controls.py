"""MaskControls: the editor's tool rows (brush, eraser, size, hardness, edits, files, zoom).

Every command is a QAction added to the editor with a widget-with-children shortcut, so its key
works while the focus is anywhere in the editor and nowhere else in the window.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget
from superqt import QLabeledSlider
from superqt.utils import signals_blocked

from .strokes import MAX_BRUSH_SIZE, MIN_BRUSH_SIZE, Brush
from .undo import TileUndoStack

DEFAULT_BRUSH_SIZE = 48
DEFAULT_HARDNESS_PERCENT = 100
#: [ and ] change the brush size by this factor.
SIZE_STEP = 1.2

_Key = QKeySequence.StandardKey
# name: (text, tooltip, shortcut); QKeySequences are made only once a QGuiApplication exists.
_ACTIONS: dict[str, tuple[str, str, str | QKeySequence.StandardKey]] = {
    "brush": ("Brush", "Paint the mask (B)", "B"),
    "eraser": ("Eraser", "Erase the mask (E)", "E"),
    "undo": ("Undo", "Undo (Ctrl+Z)", _Key.Undo),
    "redo": ("Redo", "Redo (Ctrl+Shift+Z)", _Key.Redo),
    "invert": ("Invert", "Swap masked and unmasked (Ctrl+I)", "Ctrl+I"),
    "clear": ("Clear", "Erase the whole mask", ""),
    "overlay": (
        "Show mask",
        "Show or hide the mask over the image (H); the mask is unchanged",
        "H",
    ),
    "from_alpha": ("From alpha", "Mask the image's transparent pixels", ""),
    "load": ("Load…", "Load a mask file (white or opaque = inpaint); resized to the image", ""),
    "save": ("Save…", "Save the mask as an 8-bit greyscale PNG (white = inpaint)", ""),
    "fit": ("Fit", "Fit the image in the view (Ctrl+0)", "Ctrl+0"),
    "actual_size": ("100%", "Show image pixels 1:1 (Ctrl+1)", "Ctrl+1"),
    "zoom_out": ("−", "Zoom out (Ctrl+-, wheel)", _Key.ZoomOut),
    "zoom_in": ("+", "Zoom in (Ctrl++, wheel)", _Key.ZoomIn),
    "smaller": ("Smaller", "Smaller brush ([)", "["),
    "larger": ("Larger", "Larger brush (])", "]"),
}
# The tool and edit rows are this widget; the view row is view_bar, which the editor places.
_ROWS = {
    "tools": ("brush", "eraser", "|size", "|hardness"),
    "edits": ("undo", "redo", "invert", "clear", "overlay", "from_alpha", "load", "save", "~"),
    "view": ("fit", "actual_size", "zoom_out", "zoom_in", "|zoom"),
}


class MaskControls(QWidget):
    """The buttons and sliders; :attr:`brush_changed` carries the new :class:`Brush`."""

    brush_changed = Signal(object)

    def __init__(self, shortcut_owner: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.commands: dict[str, QAction] = {}
        for name, (text, tooltip, keys) in _ACTIONS.items():
            action = QAction(text, shortcut_owner)
            action.setObjectName(f"mask.{name}")
            action.setToolTip(tooltip)
            action.setShortcut(QKeySequence(keys))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut_owner.addAction(action)
            self.commands[name] = action
        self.size_slider = self._slider("mask.size", MIN_BRUSH_SIZE, MAX_BRUSH_SIZE, DEFAULT_BRUSH_SIZE)
        self.size_slider.setToolTip("Brush diameter in image pixels ([ and ])")
        self.hardness_slider = self._slider("mask.hardness", 0, 100, DEFAULT_HARDNESS_PERCENT)
        self.hardness_slider.setToolTip("Hardness: 100% is a hard disc; lower values soften the edge")
        self.zoom_label = QLabel("100%")
        self.zoom_label.setObjectName("mask.zoom")
        self.zoom_label.setMinimumWidth(48)
        self._make_checkable()
        self._lay_out()
        self.commands["smaller"].triggered.connect(self._on_smaller_triggered)
        self.commands["larger"].triggered.connect(self._on_larger_triggered)

    def _make_checkable(self) -> None:
        tools = QActionGroup(self)
        tools.setExclusive(True)
        for name in ("brush", "eraser"):
            self.commands[name].setCheckable(True)
            tools.addAction(self.commands[name])
            self.commands[name].toggled.connect(self._on_tool_toggled)
        self.commands["brush"].setChecked(True)
        self.commands["overlay"].setCheckable(True)
        self.commands["overlay"].setChecked(True)

    def _slider(self, name: str, low: int, high: int, value: int) -> QLabeledSlider:
        slider = QLabeledSlider(Qt.Orientation.Horizontal)
        slider.setObjectName(name)
        slider.setRange(low, high)
        slider.setValue(value)
        slider.setMinimumWidth(120)
        slider.valueChanged.connect(self._on_slider_value_changed)
        return slider

    def _lay_out(self) -> None:
        extras: dict[str, QWidget] = {
            "|size": self.size_slider,
            "|hardness": self.hardness_slider,
            "|zoom": self.zoom_label,
        }
        captions = {"|size": "Size", "|hardness": "Hardness %"}
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        self.view_bar = QWidget()
        for row_name, names in _ROWS.items():
            row = QHBoxLayout()
            for name in names:
                if name == "~":
                    row.addStretch(1)
                elif name in extras:
                    if name in captions:
                        row.addWidget(QLabel(captions[name]))
                    row.addWidget(extras[name], 1 if name != "|zoom" else 0)
                else:
                    button = QToolButton()
                    button.setDefaultAction(self.commands[name])
                    button.setObjectName(f"mask.button.{name}")
                    row.addWidget(button)
            if row_name == "view":
                row.setContentsMargins(0, 0, 0, 0)
                self.view_bar.setLayout(row)
            else:
                column.addLayout(row)

    # -- brush ------------------------------------------------------------------------------------

    def brush(self) -> Brush:
        return Brush(
            float(self.size_slider.value()),
            self.hardness_slider.value() / 100.0,
            erase=self.commands["eraser"].isChecked(),
        )

    def set_brush(
        self,
        current: Brush,
        *,
        size: float | None = None,
        hardness: float | None = None,
        erase: bool | None = None,
    ) -> None:
        """Show a changed brush (values clamped to the sliders' ranges); one brush_changed at most."""
        with signals_blocked(self.size_slider), signals_blocked(self.hardness_slider):
            if size is not None:
                self.size_slider.setValue(round(size))
            if hardness is not None:
                self.hardness_slider.setValue(round(hardness * 100))
            if erase is not None:
                for name in ("brush", "eraser"):
                    with signals_blocked(self.commands[name]):
                        self.commands[name].setChecked(erase == (name == "eraser"))
        if self.brush() != current:
            self.brush_changed.emit(self.brush())

    def _on_tool_toggled(self, checked: bool) -> None:
        if checked:
            self.brush_changed.emit(self.brush())

    def _on_slider_value_changed(self, _value: int) -> None:
        self.brush_changed.emit(self.brush())

    def _on_smaller_triggered(self) -> None:
        self.size_slider.setValue(
            min(self.size_slider.value() - 1, round(self.size_slider.value() / SIZE_STEP))
        )

    def _on_larger_triggered(self) -> None:
        self.size_slider.setValue(
            max(self.size_slider.value() + 1, round(self.size_slider.value() * SIZE_STEP))
        )

    # -- state shown ------------------------------------------------------------------------------

    def show_zoom(self, zoom: float) -> None:
        self.zoom_label.setText(f"{100 * zoom:.0f}%")

    def show_undo_state(self, stack: TileUndoStack) -> None:
        undo, redo = self.commands["undo"], self.commands["redo"]
        undo.setEnabled(stack.can_undo)
        redo.setEnabled(stack.can_redo)
        undo.setToolTip(f"Undo {stack.undo_label} (Ctrl+Z)" if stack.can_undo else "Nothing to undo")
        redo.setToolTip(f"Redo {stack.redo_label} (Ctrl+Shift+Z)" if stack.can_redo else "Nothing to redo")

    def show_image_state(self, has_image: bool, has_alpha: bool) -> None:
        for name in ("invert", "clear", "load", "save"):
            self.commands[name].setEnabled(has_image)
        self.commands["from_alpha"].setEnabled(has_alpha)
