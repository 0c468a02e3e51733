"""The Extra networks tab of the main window: the ExtraNetworksPanel, wired to the prompt boxes.

Clicking a card inserts its text at the prompt box's cursor (where the user left it; a space
between it and the words around it, as A1111's ``extra_networks_add_text_separator``) and gives
the box the focus; a LoRA's negative text goes to the end of the negative prompt. The catalog of
the models folder is scanned on the panel's own thread (never the GUI thread): first when the
tab is first shown, then on Refresh or when the models folder changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QTabWidget

from ..core.extra_networks import ExtraNetworksCatalog
from .extra_networks_panel import ExtraNetworksPanel, Listing

TAB_TITLE = "Extra networks"


def catalog_scan(models_dir: Path) -> Callable[[], Listing]:
    """The panel's scan function for ``models_dir`` (run on the panel's worker thread)."""
    catalog = ExtraNetworksCatalog(models_dir)

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


class ExtraNetworksTab:
    """Owns the panel in ``tabs`` and connects it to ``prompt`` and ``negative``."""

    def __init__(
        self, tabs: QTabWidget, prompt: QPlainTextEdit, negative: QPlainTextEdit, models_dir: Path
    ) -> None:
        self.panel = ExtraNetworksPanel(catalog_scan(models_dir))
        self.panel.setObjectName("extraNetworks")
        self._tabs, self._prompt, self._negative = tabs, prompt, negative
        self._scanned = False
        tabs.addTab(self.panel, TAB_TITLE)
        tabs.currentChanged.connect(self._on_tabs_current_changed)
        self.panel.insertRequested.connect(self._on_panel_insert_requested)

    def set_models_dir(self, models_dir: Path) -> None:
        """Use another models folder (scanned now if the tab was shown before, else when shown)."""
        self.panel.set_scan(catalog_scan(models_dir))
        if self._scanned:
            self.panel.refresh()

    def shutdown(self) -> None:
        self.panel.shutdown()

    def _on_tabs_current_changed(self, _index: int) -> None:
        if not self._scanned and self._tabs.currentWidget() is self.panel:
            self._scanned = True
            self.panel.refresh()

    def _on_panel_insert_requested(self, text: str, negative_text: str) -> None:
        if negative_text:
            insert_text(self._negative, negative_text, at_end=True)
        insert_text(self._prompt, text)
