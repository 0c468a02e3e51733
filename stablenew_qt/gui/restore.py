"""Restoring settings from an image: any generator's PNG, a plain picture, missing models.

:class:`SettingsRestorer` reads an image with core's :func:`read_generation_settings` (A1111,
Forge, Fooocus, ComfyUI, InvokeAI, NovelAI, SwarmUI, stealth metadata, our own), puts the
settings in the ConfigModel and says what did not carry over (the notes, in the Log). An image
with no settings at all is offered as the input image; models the settings name that are not
installed are listed at once with the closest installed names (issue 17, items 3, 4, 14).
Dialogs never block: they open window-modal and act when answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.errors import ConfigError
from ..core.metadata import GenerationSettings, NoGenerationSettings, read_generation_settings
from .config_model import ConfigModel
from .installed import MissingModel, missing_models
from .services import ModelChoices

log = logging.getLogger(__name__)


class SettingsRestorer(QObject):
    """Restores images' settings into ``model`` for the window ``parent``.

    ``choices`` gives the installed model names now; ``use_as_input`` sets the input image;
    ``show_status`` shows a status-bar message for a time in milliseconds.
    """

    #: Settings were restored (the GenerationSettings read).
    restored = Signal(object)

    def __init__(
        self,
        parent: QWidget,
        model: ConfigModel,
        choices: Callable[[], ModelChoices],
        use_as_input: Callable[[Path], None],
        show_status: Callable[[str, int], None],
    ) -> None:
        super().__init__(parent)
        self._window = parent
        self._model = model
        self._choices = choices
        self._use_as_input = use_as_input
        self._show_status = show_status
        self.dialog: QMessageBox | None = None

    def restore(self, path: Path) -> bool:
        """Restore ``path``'s settings; False (with a message, or the input-image offer) if none."""
        try:
            settings = read_generation_settings(path)
        except NoGenerationSettings:
            self._offer_as_input(path)
            return False
        except ConfigError as exc:
            log.warning("cannot use %s: %s", path, exc)
            self._show_status(f"Cannot use {path.name}: {exc}", 15000)
            return False
        self._model.replace(settings.config)
        self._report(path, settings)
        self.restored.emit(settings)
        return True

    def _report(self, path: Path, settings: GenerationSettings) -> None:
        for note in settings.notes:
            log.info("%s (%s): %s", path.name, settings.generator, note)
        text = f"Settings restored from {path.name} ({settings.generator})"
        if settings.notes:
            text += f"; {len(settings.notes)} setting(s) had no equivalent: see the Log"
        missing = missing_models(settings.config, self._choices())
        if missing:
            self._tell_missing(path, missing)
            text += f"; {len(missing)} model(s) not installed"
        self._show_status(text, 10000)

    def _tell_missing(self, path: Path, missing: list[MissingModel]) -> None:
        lines = "\n".join(f"• {m}" for m in missing)
        self._open(
            "dialog.missing_models",
            QMessageBox.Icon.Warning,
            "Models not installed",
            f"{path.name} was made with models that are not installed here:\n\n{lines}\n\n"
            "Pick an installed one in the card (the field is marked), or install the model and "
            "use Models > Refresh.",
            QMessageBox.StandardButton.Ok,
            None,
        )

    def _offer_as_input(self, path: Path) -> None:
        def answered(button: QMessageBox.StandardButton) -> None:
            if button == QMessageBox.StandardButton.Yes:
                self._use_as_input(path)
                self._show_status(f"{path.name} is the input image", 5000)

        self._open(
            "dialog.use_as_input",
            QMessageBox.Icon.Question,
            "No generation settings",
            f"{path.name}: no generation settings in this image.\n\nUse it as the input image "
            "(for img2img or upscale)?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            answered,
        )

    def _open(
        self,
        name: str,
        icon: QMessageBox.Icon,
        title: str,
        text: str,
        buttons: QMessageBox.StandardButton,
        answered: Callable[[QMessageBox.StandardButton], None] | None,
    ) -> None:
        box = QMessageBox(icon, title, text, buttons, self._window)
        box.setObjectName(name)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        if answered is not None:
            box.buttonClicked.connect(lambda button: answered(box.standardButton(button)))
        self.dialog = box
        box.open()
