"""Restoring settings from an image: any generator's PNG, a plain picture, missing models.

:class:`SettingsRestorer` reads an image with core's :func:`read_generation_settings` (A1111,
Forge, Fooocus, ComfyUI, InvokeAI, NovelAI, SwarmUI, stealth metadata, our own), puts the
settings in the ConfigModel and says what did not carry over (the notes, in the Log). An image
with no settings at all is offered as the input image; models the settings name that are not
installed are listed at once with the closest installed names (issue 17, items 3, 4, 14).
Dialogs never block: they open window-modal and act when answered.

The image is read on the restorer's own worker thread (a PNG on a slow disk or share never holds
the window); the answer is applied on the GUI thread when it arrives. Only the latest request
counts: one still reading when another is asked is dropped on arrival, so the last image dropped
or chosen is the one whose settings end up in the editor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.metadata import GenerationSettings, NoGenerationSettings, read_generation_settings
from .background import Background
from .config_model import ConfigModel
from .installed import MissingModel, missing_models
from .missing_models_dialog import MissingModelsDialog
from .services import ModelChoices

log = logging.getLogger(__name__)


class SettingsRestorer(QObject):
    """Restores images' settings into ``model`` for the window ``parent``.

    ``choices`` gives the installed model names now; ``use_as_input`` sets the input image;
    ``show_status`` shows a status-bar message for a time in milliseconds.
    """

    #: Settings were restored: (the image's Path, the GenerationSettings read).
    restored = Signal(object, object)
    #: The image's settings could not be used: (Path, the one-line reason shown).
    refused = Signal(object, str)
    #: The image has no settings and the user was asked whether to use it as the input image.
    offeredAsInput = Signal(object)

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
        self._reader = Background(self)
        self._latest = 0  # the number of the request whose answer counts
        self.dialog: QMessageBox | None = None
        self.picker: MissingModelsDialog | None = None

    def restore(self, path: Path) -> None:
        """Read ``path``'s settings off the GUI thread and restore them when they arrive (then
        :attr:`restored`); an image without settings is offered as the input image
        (:attr:`offeredAsInput`), one whose settings cannot be used says why (:attr:`refused`).
        Returns at once; a later call supersedes this one."""
        self._latest += 1
        number = self._latest
        self._reader.run(
            lambda: _read(path),
            lambda settings: self._arrived(number, path, settings),
            lambda message: self._failed(number, path, message),
        )

    def shutdown(self) -> None:
        """Stop reading (the window is closing); no answer is applied after this."""
        self._reader.shutdown()

    def wait(self, msecs: int = 10_000) -> bool:
        """Wait for the reads asked so far to finish (tests)."""
        return self._reader.wait(msecs)

    def _arrived(self, number: int, path: Path, settings: GenerationSettings | None) -> None:
        if number != self._latest:
            log.info("restore of %s superseded by a later one: dropped", path)
            return
        if settings is None:
            self._offer_as_input(path)
            self.offeredAsInput.emit(path)
            return
        self._model.replace(settings.config)
        self._report(path, settings)
        self.restored.emit(path, settings)

    def _failed(self, number: int, path: Path, message: str) -> None:
        if number != self._latest:
            return
        log.warning("cannot use %s: %s", path, message)
        self._show_status(f"Cannot use {path.name}: {message}", 15000)
        self.refused.emit(path, message)

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
        pickable = [m for m in missing if m.installed]

        def answered(button: QMessageBox.StandardButton) -> None:
            if button == QMessageBox.StandardButton.Apply:
                self.pick_models(pickable)

        self._open(
            "dialog.missing_models",
            QMessageBox.Icon.Warning,
            "Models not installed",
            f"{path.name} was made with models that are not installed here:\n\n{lines}\n\n"
            "Pick installed ones now or in the card (the field is marked), or install the model "
            "and use Models > Refresh.",
            QMessageBox.StandardButton.Ok
            | (QMessageBox.StandardButton.Apply if pickable else QMessageBox.StandardButton.NoButton),
            answered,
        )
        if pickable and self.dialog is not None:
            self.dialog.button(QMessageBox.StandardButton.Apply).setText("Pick installed models…")

    def pick_models(self, missing: list[MissingModel]) -> MissingModelsDialog:
        """Open the picker for ``missing`` (window-modal, never blocking); on OK each chosen name
        goes into its field unless the user changed that field meanwhile."""
        picker = MissingModelsDialog(missing, self._window)
        picker.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        picker.setWindowModality(Qt.WindowModality.WindowModal)
        asked = {item.path: item.name for item in missing}

        def chosen(names: dict[str, str]) -> None:
            used = []
            for field_path, name in names.items():
                if self._model.get(field_path) == asked[field_path]:
                    self._model.set(field_path, name)
                    used.append(name)
            if used:
                self._show_status("Using installed: " + ", ".join(used), 10000)

        picker.chosen.connect(chosen)
        self.picker = picker
        picker.open()
        return picker

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


def _read(path: Path) -> GenerationSettings | None:
    """On the worker thread: the settings, or None for an image that has none (a ConfigError or
    OSError becomes the refusal's message)."""
    try:
        return read_generation_settings(path)
    except NoGenerationSettings:
        return None
