"""The Extra networks tab of the main window: the ExtraNetworksPanel, wired to the prompt boxes.

Clicking a card inserts its text at the prompt box's cursor (where the user left it; a space
between it and the words around it, as A1111's ``extra_networks_add_text_separator``) and gives
the box the focus; a LoRA's negative text goes to the end of the negative prompt. The catalog of
the models folder is scanned on the panel's own thread (never the GUI thread): first when the
tab is first shown, then on Refresh or when the models folder changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTabWidget, QWidget

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.extra_networks import ExtraNetworksCatalog, RestoredNetwork, restore_networks_in_config
from ..core.extra_networks.run_check import check_config_networks, prompt_uses
from .config_model import ConfigModel
from .extra_networks_panel import ExtraNetworksPanel, Listing

log = logging.getLogger(__name__)

TAB_TITLE = "Extra networks"
#: How long after the last edit the prompts' LoRA tags are checked (off the GUI thread).
CHECK_DELAY_MS = 300


def catalog_scan(catalog: ExtraNetworksCatalog) -> Callable[[], Listing]:
    """The panel's scan function for ``catalog`` (run on the panel's worker thread)."""

    def scan() -> Listing:
        catalog.refresh()
        return catalog.loras(), catalog.embeddings()

    return scan


def insert_text(edit: QPlainTextEdit, text: str, *, at_end: bool = False) -> None:
    """Insert ``text`` at ``edit``'s cursor (or its end), separated by spaces from the words
    around it, and focus ``edit``; the model sees it through the box's normal editing signal."""
    if not text:
        return
    cursor = edit.textCursor()
    if at_end:
        cursor.movePosition(QTextCursor.MoveOperation.End)
    whole = edit.toPlainText()
    before, after = whole[: cursor.position()], whole[cursor.position() :]
    lead = " " if before and not before[-1].isspace() else ""
    trail = " " if after and not after[0].isspace() else ""
    cursor.insertText(lead + text + trail)
    if trail:
        cursor.movePosition(QTextCursor.MoveOperation.Left)
    edit.setTextCursor(cursor)
    edit.setFocus()


def tag_problems(config: RunConfig, catalog: ExtraNetworksCatalog) -> list[str]:
    """The problems of ``config``'s LoRA tags the window can know: missing names (with the closest
    ones), unusable files, unsupported types (the checkpoint family is the engine's to check).
    Reads the folders: call it off the GUI thread."""
    catalog.refresh()
    problems, _warnings = check_config_networks(config, catalog, lambda _model: None)
    return [str(problem) for problem in problems]


class ExtraNetworksTab:
    """Owns the panel in ``tabs``, connects it to ``prompt`` and ``negative``, and shows the LoRA
    tag problems of ``model``'s config in ``problems`` (a label it adds to ``problems_parent``)."""

    def __init__(
        self,
        tabs: QTabWidget,
        prompt: QPlainTextEdit,
        negative: QPlainTextEdit,
        models_dir: Path,
        model: ConfigModel,
        problems_parent: QWidget,
    ) -> None:
        self.catalog = ExtraNetworksCatalog(models_dir)
        self.panel = ExtraNetworksPanel(catalog_scan(self.catalog))
        self.panel.setObjectName("extraNetworks")
        self._tabs, self._prompt, self._negative, self._model = tabs, prompt, negative, model
        self._scanned = False
        self._generation = 0
        self.problems = QLabel()
        self.problems.setObjectName("prompt.networkProblems")
        self.problems.setWordWrap(True)
        self.problems.setProperty("role", "error")
        self.problems.hide()
        layout = problems_parent.layout()
        if layout is not None:
            layout.addWidget(self.problems)
        self._check_timer = QTimer(self.panel)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self.check_now)
        tabs.addTab(self.panel, TAB_TITLE)
        tabs.currentChanged.connect(self._on_tabs_current_changed)
        self.panel.insertRequested.connect(self._on_panel_insert_requested)
        model.changed.connect(self._on_model_changed)
        model.replaced.connect(self._on_model_changed)
        self.check_now()

    def set_models_dir(self, models_dir: Path) -> None:
        """Use another models folder (scanned now if the tab was shown before, else when shown)."""
        self.catalog = ExtraNetworksCatalog(models_dir)
        self.panel.set_scan(catalog_scan(self.catalog))
        if self._scanned:
            self.panel.refresh()
        self.check_now()

    def check_now(self) -> None:
        """Check the config's LoRA tags on the panel's pool; the label follows when it answers
        (an older answer arriving after a newer edit is dropped)."""
        self._check_timer.stop()
        self._generation += 1
        generation, config, catalog = self._generation, self._model.config, self.catalog
        if not prompt_uses(config):
            self._show([])
            return

        def done(problems: list[str]) -> None:
            if generation == self._generation:
                self._show(problems)

        self.panel.thumbnails.submit(lambda: tag_problems(config, catalog), done)

    def restore_names(self, path: Path) -> None:
        """After the window restored ``path``'s settings: rename its LoRAs and embeddings to the
        local files by the image's ``Lora hashes`` / ``TI hashes`` (hashing off the GUI thread),
        if the config has not changed meanwhile; what was found goes to the log."""
        config, catalog = self._model.config, self.catalog

        def work() -> tuple[RunConfig, list[RestoredNetwork]] | None:
            from ..core.infotext import read_image_metadata

            try:
                parameters = read_image_metadata(path).parameters
            except ConfigError:
                return None
            if not parameters or ("Lora hashes" not in parameters and "TI hashes" not in parameters):
                return None
            catalog.refresh()
            return restore_networks_in_config(config, parameters, catalog)

        def done(result: tuple[RunConfig, list[RestoredNetwork]] | None) -> None:
            if result is None:
                return
            restored, notes = result
            for note in notes:
                log.info("%s: %s", path.name, note.message)
            if restored != config and self._model.config == config:
                self._model.replace(restored)

        self.panel.thumbnails.submit(work, done)

    def shutdown(self) -> None:
        self._check_timer.stop()
        self.panel.shutdown()

    def _show(self, problems: list[str]) -> None:
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))

    def _on_model_changed(self, _what: object) -> None:
        self._check_timer.start()

    def _on_tabs_current_changed(self, _index: int) -> None:
        if not self._scanned and self._tabs.currentWidget() is self.panel:
            self._scanned = True
            self.panel.refresh()

    def _on_panel_insert_requested(self, text: str, negative_text: str) -> None:
        if negative_text:
            insert_text(self._negative, negative_text, at_end=True)
        insert_text(self._prompt, text)
