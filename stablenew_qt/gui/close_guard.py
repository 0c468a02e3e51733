"""Closing the window while a job runs asks what to do with it (issue 17, item 8).

Cancel it and quit; let it finish, then quit; or quit now and keep it for resume (the job is
marked interrupted and offered at the next start). The question never blocks: it opens
window-modal and acts when answered.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget


class CloseChoice(enum.Enum):
    """What to do with the running job when the window closes."""

    CANCEL = "Cancel the job and quit"
    FINISH = "Finish this job, then quit"
    KEEP = "Quit now, resume it next time"
    STAY = "Don't quit"


def ask_close(parent: QWidget, answered: Callable[[CloseChoice], None]) -> QMessageBox:
    """Open the question over ``parent``; ``answered`` gets the choice (STAY when dismissed)."""
    box = QMessageBox(
        QMessageBox.Icon.Question,
        "A job is running",
        "A job is still running. What should happen to it?",
        QMessageBox.StandardButton.NoButton,
        parent,
    )
    box.setObjectName("dialog.close_during_run")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    roles = {
        CloseChoice.CANCEL: QMessageBox.ButtonRole.DestructiveRole,
        CloseChoice.FINISH: QMessageBox.ButtonRole.AcceptRole,
        CloseChoice.KEEP: QMessageBox.ButtonRole.ActionRole,
        CloseChoice.STAY: QMessageBox.ButtonRole.RejectRole,
    }
    buttons = {}
    for choice, role in roles.items():
        button = box.addButton(choice.value, role)
        button.setObjectName(f"close.{choice.name.lower()}")
        buttons[button] = choice
    box.setEscapeButton(next(b for b, c in buttons.items() if c is CloseChoice.STAY))
    box.buttonClicked.connect(lambda button: answered(buttons.get(button, CloseChoice.STAY)))
    box.open()
    return box
