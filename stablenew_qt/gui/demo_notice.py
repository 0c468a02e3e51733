"""The first start with no models of one's own says so (issue 17, item 12 and "a first start
that a newcomer understands").

With only the built-in demo models found, the window says it runs them (their images are noise
by design) and offers to choose an existing A1111/Forge models folder or to open its own
``models`` folder. Asked once per settings file; Models > Set models folder… stays for later.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from .services import ModelChoices

SHOWN_KEY = "intro/demo_notice_shown"
CHOOSE, OPEN, KEEP = "Choose a models folder…", "Open the models folder", "Use the demo models"


class DemoNotice(QObject):
    """Offers, once, to leave the demo models; ``choose`` asks for a folder (the Models menu's)."""

    def __init__(self, parent: QWidget, settings: QSettings, choose: Callable[[], None]) -> None:
        super().__init__(parent)
        self._parent = parent
        self._settings = settings
        self._choose = choose
        self.box: QMessageBox | None = None

    def offer(self, choices: ModelChoices, models_dir: Path) -> QMessageBox | None:
        """Open the notice when ``choices`` holds demo models only and it was not shown before."""
        if not choices.demo_checkpoints or choices.installed_checkpoints:
            return None
        if self._settings.value(SHOWN_KEY, False, type=bool):
            return None
        self._settings.setValue(SHOWN_KEY, True)
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Running the demo models",
            f"No models were found in {models_dir}, so StableNew Qt runs its built-in demo models: "
            "tiny and random, their images are noise by design.\n\nChoose an existing A1111 or "
            "Forge models folder (the one holding Stable-diffusion/, Lora/, VAE/ …), or put "
            "checkpoints in the models folder and use Models > Refresh.",
            QMessageBox.StandardButton.NoButton,
            self._parent,
        )
        box.setObjectName("dialog.demo_models")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setModal(False)  # the window stays usable meanwhile
        box.setWindowModality(Qt.WindowModality.NonModal)

        def nothing() -> None:
            pass

        actions: dict[object, Callable[[], None]] = {
            box.addButton(CHOOSE, QMessageBox.ButtonRole.AcceptRole): self._choose,
            box.addButton(OPEN, QMessageBox.ButtonRole.ActionRole): lambda: _open(models_dir),
            box.addButton(KEEP, QMessageBox.ButtonRole.RejectRole): nothing,
        }
        box.buttonClicked.connect(lambda button: actions.get(button, nothing)())
        self.box = box
        box.show()
        return box


def _open(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
