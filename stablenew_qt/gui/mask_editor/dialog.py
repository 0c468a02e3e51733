"""MaskEditorDialog: a MaskEditor in its own resizable window (room for large images)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QVBoxLayout, QWidget

from .editor import MaskEditor


class MaskEditorDialog(QDialog):
    """A window around a :class:`MaskEditor` (``dialog.editor``), closed with Done or Esc.

    The editor keeps its state while the dialog is hidden, so one dialog can be shown again and
    again; whoever owns it calls ``dialog.editor.shutdown()`` before dropping it.
    """

    def __init__(self, parent: QWidget | None = None, editor: MaskEditor | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mask.dialog")
        self.setWindowTitle("Inpaint mask")
        self.setModal(False)
        self.resize(1100, 850)
        self.editor = editor if editor is not None else MaskEditor()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.editor, 1)
        layout.addWidget(buttons)
