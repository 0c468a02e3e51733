"""MissingModelsDialog: pick installed models for the ones a restored image names but this
computer lacks.

One row per missing model: its label, the name the image asked for, and a list of the installed
models of that kind, the closest spellings first (then the rest in the listing's order). The
first entry keeps the image's name as it is (the card then marks the field), so OK with nothing
changed changes nothing. It opens window-modal and never blocks: ``chosen`` carries
``{config path: installed name}`` for the rows the user changed when OK is pressed.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from .installed import MissingModel

KEEP_TEXT = "keep {name!r} (not installed)"


def offered_names(missing: MissingModel) -> list[str]:
    """What the picker offers for ``missing``: the closest installed names, then the others."""
    names = list(missing.closest)
    names += [name for name in missing.installed if name not in names]
    return names


class MissingModelsDialog(QDialog):
    """Choose an installed model for each missing one; ``chosen`` on OK."""

    #: {config path: installed name} for every row not left at "keep".
    chosen = Signal(dict)

    def __init__(self, missing: list[MissingModel], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dialog.pick_models")
        self.setWindowTitle("Pick installed models")
        self.combos: dict[str, QComboBox] = {}
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Use these installed models instead of the ones the image names:"))
        form = QFormLayout()
        for item in missing:
            combo = QComboBox()
            combo.setObjectName(f"pick.{item.path}")
            combo.addItem(KEEP_TEXT.format(name=item.name), None)
            for name in offered_names(item):
                combo.addItem(name, name)
            if item.closest:
                combo.setCurrentIndex(1)  # the closest spelling, as the warning said
            self.combos[item.path] = combo
            form.addRow(f"{item.label} ({item.name}):", combo)
        layout.addLayout(form)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.buttons = buttons

    def choice(self) -> dict[str, str]:
        """The rows' choices now: {config path: installed name} for rows not at "keep"."""
        return {path: combo.currentData() for path, combo in self.combos.items() if combo.currentData()}

    def accept(self) -> None:
        self.chosen.emit(self.choice())
        super().accept()
