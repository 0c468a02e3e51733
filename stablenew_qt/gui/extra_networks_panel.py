"""ExtraNetworksPanel: A1111's Extra networks browser (LoRA and Embeddings tabs) as cards.

Each card shows the preview image A1111 users keep beside their files, the name, a family badge
(SD 1.x / SDXL) and the trigger words. Typing in the search box filters by name, alias, folder and
trigger words; Refresh scans again. Clicking a card emits :attr:`insertRequested` with the text
A1111's card inserts: ``<lora:name:weight>`` (the file's preferred weight, else
:attr:`default_weight`) followed by its activation text, or the embedding's name; the second
argument is text for the negative prompt (a LoRA's "negative text", as ``(text:1)``).

A card whose family does not fit :attr:`model_family` (the window sets it when the model changes)
is marked: dimmed, with a "does not fit" badge and tooltip; cards of unusable files (pickles,
damaged headers) are disabled and say why.

Nothing here touches the disk on the GUI thread. The caller passes ``scan``, a function that lists
the catalog (``lambda: (catalog.refresh(), (catalog.loras(), catalog.embeddings()))[1]``); the
panel runs it, and decodes every preview, on its own :class:`ThumbnailLoader`. Call
:meth:`shutdown` before the panel is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.extra_networks import EmbeddingEntry, LoraEntry, NetworkFamily
from .thumbnails import ThumbnailLoader

__all__ = ["CARD", "ExtraNetworksPanel", "Listing", "card_text"]

CARD = 128
#: Item data: the entry (LoraEntry or EmbeddingEntry).
ENTRY_ROLE = Qt.ItemDataRole.UserRole
#: Item data: True when the card's family does not fit the current model.
MISMATCH_ROLE = Qt.ItemDataRole.UserRole + 1

Entry = LoraEntry | EmbeddingEntry
Listing = tuple[Sequence[LoraEntry], Sequence[EmbeddingEntry]]


@dataclass(frozen=True)
class _Failed:
    message: str


def _run_scan(scan: Callable[[], Listing]) -> Listing | _Failed:
    try:
        return scan()
    except Exception as exc:  # shown in the panel; the worker thread must not raise
        return _Failed(f"{type(exc).__name__}: {exc}")


def _weight_text(weight: float) -> str:
    """A1111's card writes the weight as JavaScript prints a number: 1, 0.8, 1.25."""
    return f"{weight:g}"


def card_text(entry: Entry, default_weight: float) -> tuple[str, str]:
    """What clicking ``entry``'s card inserts: (prompt text, negative prompt text)."""
    if isinstance(entry, EmbeddingEntry):
        return entry.name, ""
    sidecars = entry.sidecars
    weight = sidecars.preferred_weight or default_weight
    prompt = f"<lora:{entry.prompt_name or entry.name}:{_weight_text(weight)}>"
    if sidecars.activation_text:
        prompt += " " + sidecars.activation_text
    negative = f"({sidecars.negative_text}:1)" if sidecars.negative_text else ""
    return prompt, negative


def _search_text(entry: Entry) -> str:
    parts = [entry.name, entry.relative]
    if isinstance(entry, LoraEntry):
        parts += [entry.alias, entry.trigger_words, " ".join(tag for tag, _ in entry.training_tags)]
    return " ".join(parts).casefold()


class ExtraNetworksPanel(QWidget):
    """LoRA and Embeddings tabs of cards; emits :attr:`insertRequested` (prompt text, negative text)."""

    insertRequested = Signal(str, str)
    refreshFinished = Signal()

    def __init__(
        self,
        scan: Callable[[], Listing] | None = None,
        parent: QWidget | None = None,
        *,
        default_weight: float = 1.0,
    ) -> None:
        super().__init__(parent)
        self._scan = scan
        self._default_weight = default_weight
        self._model_family: NetworkFamily | None = None
        self.thumbnails = ThumbnailLoader(self)
        self.thumbnails.thumbnailReady.connect(self._on_thumbnails_thumbnail_ready)
        self._waiting: dict[str, list[QListWidgetItem]] = {}
        self._placeholder = _placeholder_icon()
        self.search = QLineEdit()
        self.search.setObjectName("extraNetworks.search")
        self.search.setPlaceholderText("Search names, folders, trigger words")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._on_search_text_changed)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("extraNetworks.refresh")
        self.refresh_button.setToolTip("Scan the LoRA and embeddings folders again")
        self.refresh_button.clicked.connect(self.refresh)
        self.status = QLabel("")
        self.status.setObjectName("extraNetworks.status")
        self.lora_cards = self._cards("extraNetworks.lora")
        self.embedding_cards = self._cards("extraNetworks.embeddings")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.lora_cards, "LoRA")
        self.tabs.addTab(self.embedding_cards, "Embeddings")
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.status)
        self.refresh_button.setEnabled(scan is not None)

    # -- properties the window sets -----------------------------------------------------------
    @property
    def default_weight(self) -> float:
        """The weight a LoRA card inserts when the file has no preferred weight (A1111's
        ``extra_networks_default_multiplier``, 1.0 by default)."""
        return self._default_weight

    @default_weight.setter
    def default_weight(self, weight: float) -> None:
        self._default_weight = float(weight)

    @property
    def model_family(self) -> NetworkFamily | None:
        """The current model's family; cards of other families are marked. None marks nothing."""
        return self._model_family

    @model_family.setter
    def model_family(self, family: NetworkFamily | None) -> None:
        self._model_family = family
        for cards in (self.lora_cards, self.embedding_cards):
            for row in range(cards.count()):
                self._mark(cards.item(row))

    # -- content ------------------------------------------------------------------------------
    def set_scan(self, scan: Callable[[], Listing] | None) -> None:
        """List another catalog from the next :meth:`refresh` on (e.g. the models folder changed)."""
        self._scan = scan
        self.refresh_button.setEnabled(scan is not None)

    def refresh(self) -> None:
        """Run the caller's scan on the loader's pool; the cards are replaced when it returns."""
        if self._scan is None:
            return
        self.refresh_button.setEnabled(False)
        self.status.setText("Scanning…")
        self.thumbnails.submit(partial(_run_scan, self._scan), self._on_scanned)

    def set_entries(self, loras: Sequence[LoraEntry], embeddings: Sequence[EmbeddingEntry]) -> None:
        """Show these entries (sorted by name ignoring case); previews load in the background."""
        self.thumbnails.cancel_pending()
        self._waiting.clear()
        tabs: tuple[tuple[QListWidget, Sequence[Entry]], ...] = (
            (self.lora_cards, loras),
            (self.embedding_cards, embeddings),
        )
        for cards, entries in tabs:
            cards.clear()
            for entry in sorted(entries, key=lambda e: (e.name.casefold(), e.relative)):
                cards.addItem(self._item(entry))
        self.tabs.setTabText(0, f"LoRA ({len(loras)})")
        self.tabs.setTabText(1, f"Embeddings ({len(embeddings)})")
        self._on_search_text_changed(self.search.text())

    def visible_names(self, tab: int = 0) -> list[str]:
        """Names of the cards the search leaves visible on tab ``tab`` (0 LoRA, 1 Embeddings)."""
        cards = self.lora_cards if tab == 0 else self.embedding_cards
        return [
            cards.item(r).data(ENTRY_ROLE).name for r in range(cards.count()) if not cards.item(r).isHidden()
        ]

    def shutdown(self) -> None:
        """Stop scans and preview decodes and wait for running ones (the window is closing)."""
        self.thumbnails.shutdown()

    # -- internals ----------------------------------------------------------------------------
    def _cards(self, name: str) -> QListWidget:
        cards = QListWidget()
        cards.setObjectName(name)
        cards.setViewMode(QListView.ViewMode.IconMode)
        cards.setIconSize(QSize(CARD, CARD))
        cards.setGridSize(QSize(CARD + 24, CARD + 56))
        cards.setResizeMode(QListView.ResizeMode.Adjust)
        cards.setMovement(QListView.Movement.Static)
        cards.setWordWrap(True)
        cards.itemClicked.connect(self._on_cards_item_clicked)
        return cards

    def _item(self, entry: Entry) -> QListWidgetItem:
        item = QListWidgetItem(self._placeholder, "")
        item.setData(ENTRY_ROLE, entry)
        if not entry.usable:
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
        self._mark(item)
        preview = entry.sidecars.preview
        if preview is not None:
            self._waiting.setdefault(str(preview), []).append(item)  # before request: hits answer inside it
            self.thumbnails.request(preview, CARD)
        return item

    def _mark(self, item: QListWidgetItem) -> None:
        entry: Entry = item.data(ENTRY_ROLE)
        family = entry.family
        mismatch = (
            self._model_family is not None
            and family not in (NetworkFamily.UNKNOWN, self._model_family)
            and entry.usable
        )
        item.setData(MISMATCH_ROLE, mismatch)
        badge = family.label if family is not NetworkFamily.UNKNOWN else ""
        if mismatch:
            badge = f"{badge} – does not fit"
        trigger = entry.trigger_words if isinstance(entry, LoraEntry) else ""
        lines = [entry.name, f"[{badge}]" if badge else "", trigger[:60]]
        item.setText("\n".join(line for line in lines if line))
        item.setToolTip(self._tooltip(entry, mismatch))
        dim = mismatch or not entry.usable
        item.setForeground(QColor(128, 128, 128) if dim else self.palette().text().color())

    def _tooltip(self, entry: Entry, mismatch: bool) -> str:
        lines = [entry.relative, entry.folder]
        if isinstance(entry, LoraEntry):
            if entry.alias != entry.name:
                lines.append(f"alias: {entry.alias}")
            lines.append(f"type: {entry.network_type or '?'}")
            if entry.trigger_words:
                lines.append(f"trigger words: {entry.trigger_words}")
        elif entry.vectors:
            lines.append(f"{entry.vectors} vector{'s' if entry.vectors != 1 else ''}")
        if entry.family is not NetworkFamily.UNKNOWN:
            lines.append(f"for {entry.family.label}")
        if mismatch and self._model_family is not None:
            lines.append(f"does not fit the current {self._model_family.label} model")
        if entry.sidecars.description:
            lines.append(entry.sidecars.description[:300])
        if entry.error:
            lines.append(f"cannot be used: {entry.error}")
        return "\n".join(lines)

    def _on_scanned(self, result: Listing | _Failed) -> None:
        self.refresh_button.setEnabled(True)
        if isinstance(result, _Failed):
            self.status.setText(f"Scan failed: {result.message}")
            return
        loras, embeddings = result
        self.set_entries(loras, embeddings)
        self.status.setText(f"{len(loras)} LoRAs, {len(embeddings)} embeddings")
        self.refreshFinished.emit()

    def _on_search_text_changed(self, text: str) -> None:
        words = text.casefold().split()
        for cards in (self.lora_cards, self.embedding_cards):
            for row in range(cards.count()):
                item = cards.item(row)
                haystack = _search_text(item.data(ENTRY_ROLE))
                item.setHidden(not all(word in haystack for word in words))

    def _on_cards_item_clicked(self, item: QListWidgetItem) -> None:
        entry: Entry = item.data(ENTRY_ROLE)
        if entry.usable:
            self.insertRequested.emit(*card_text(entry, self._default_weight))

    def _on_thumbnails_thumbnail_ready(self, path: object, size: int, image: QImage) -> None:
        if size != CARD or image.isNull():
            return  # an unreadable preview keeps the placeholder
        icon = QIcon(QPixmap.fromImage(image))
        for item in self._waiting.pop(str(path), []):
            item.setIcon(icon)


def _placeholder_icon() -> QIcon:
    pixmap = QPixmap(CARD, CARD)
    pixmap.fill(QColor(128, 128, 128, 48))
    return QIcon(pixmap)
