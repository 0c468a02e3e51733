"""ResultsPanel: this session's and past runs' images, newest first, with a viewer and parameters.

Buttons open the image's folder, copy its parameters (A1111 infotext) and restore the settings
that made it ("use these settings", through ``config_from_image``).

Nothing here reads image files on the GUI thread: the past images are listed, and every thumbnail
and the viewer's image decoded, on a :class:`~stablenew_qt.gui.thumbnails.ThumbnailLoader`.
Items appear at once with a placeholder icon and get their thumbnail when it arrives.
"""

from __future__ import annotations

import heapq
import stat
import time
from datetime import datetime
from functools import partial
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QDesktopServices,
    QGuiApplication,
    QIcon,
    QImage,
    QKeyEvent,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.events import GroupFinished, RunCompleted
from ..core.job_group import GridState
from . import image_facts
from .bridge import EventBridge
from .history_listing import seed_in_name
from .image_actions import ImageActions
from .image_facts import ImageFacts
from .queue_client import QueueClient
from .rating import NOT_A_RATING, rate_image, rating_from_key, stars
from .thumbnails import ThumbnailLoader

THUMB = 96
#: Past images listed at start (the newest); older ones stay on disk.
MAX_PAST_IMAGES = 100
VIEWER_MIN = 256
#: Item data: when the image was made (seconds since the epoch), and its rating's stars.
WHEN_ROLE = Qt.ItemDataRole.UserRole + 1
STARS_ROLE = Qt.ItemDataRole.UserRole + 2
READING = "Reading the parameters…"


def past_images(output_dir: Path, limit: int = MAX_PAST_IMAGES) -> list[Path]:
    """Final images of earlier runs (``<date>/<run_id>/*.png``), newest first.

    Reads the whole folder tree (one stat per image: 10-25 ms per 1,000 images on a local disk),
    so the panel calls it on its loader's pool, never on the GUI thread.
    """
    return [path for path, _mtime in listed_images(output_dir, limit)]


def listed_images(output_dir: Path, limit: int = MAX_PAST_IMAGES) -> list[tuple[Path, float]]:
    """:func:`past_images` with each image's modification time (seconds since the epoch)."""
    found: list[tuple[float, Path]] = []
    try:
        for path in output_dir.glob("*/*/*.png"):
            try:
                info = path.stat()
            except OSError:  # removed while listing
                continue
            if stat.S_ISREG(info.st_mode):
                found.append((info.st_mtime, path))
    except OSError:
        return []
    return [(path, mtime) for mtime, path in heapq.nlargest(limit, found, key=lambda pair: pair[0])]


def image_label(
    path: Path, when: float, now: float | None = None, *, seed: str | None = None, model: str | None = None
) -> str:
    """A gallery label that tells images apart: the time it was made, its seed and its model
    ("14:03:22 · seed 1234 · dreamshaper_8"; the date too when not today). The seed is ``seed``
    (from the infotext) or else the file name's (ours are ``<index>-<seed>.png``); ``model`` is
    the infotext's ``Model:``, known once the file was read on the loader's pool."""
    made = datetime.fromtimestamp(when)
    today = datetime.fromtimestamp(time.time() if now is None else now).date()
    stamp = made.strftime("%H:%M:%S" if made.date() == today else "%m-%d %H:%M")
    seed = seed or seed_in_name(path)  # not xyz_grid-00001's
    label = f"{stamp} · seed {seed}" if seed else f"{stamp} · {path.stem}"
    return f"{label} · {model}" if model else label


def _placeholder_icon() -> QIcon:
    pixmap = QPixmap(THUMB, THUMB)
    pixmap.fill(QColor(128, 128, 128, 48))  # a faint square, visible on light and dark palettes
    return QIcon(pixmap)


class ResultsPanel(QWidget):
    """The gallery. Emits :attr:`useSettingsRequested` with an image path for the window to restore;
    its context menu (:attr:`actions_`) also sends an image to img2img or upscale."""

    useSettingsRequested = Signal(object)
    #: An image was rated (its path, the rating 1-5 or None).
    rated = Signal(object, object)
    #: Something could not be done (a message for the user).
    errorOccurred = Signal(str)

    def __init__(self, bridge: EventBridge, output_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gallery = QListWidget()
        self.gallery.setObjectName("results.gallery")
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMB, THUMB))
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)  # to compare two
        self.gallery.currentItemChanged.connect(self._on_gallery_current_item_changed)
        self.thumbnails = ThumbnailLoader(self)
        self.actions_ = ImageActions(self, self.thumbnails)
        self.actions_.useSettingsRequested.connect(self.useSettingsRequested)
        self.actions_.deleted.connect(self.forget_image)
        self.gallery.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.gallery.customContextMenuRequested.connect(self._on_gallery_custom_context_menu_requested)
        self.gallery.itemActivated.connect(self._on_gallery_item_activated)  # double-click, Enter
        self.gallery.installEventFilter(self)
        #: Where ratings are stored (the window sets it; without a queue, images cannot be rated).
        self.client: QueueClient | None = None
        self.viewer = QLabel("No image selected")
        self.viewer.setObjectName("results.viewer")
        self.viewer.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.viewer.setMinimumSize(VIEWER_MIN, VIEWER_MIN)
        self.parameters = QPlainTextEdit()
        self.parameters.setObjectName("results.parameters")
        self.parameters.setReadOnly(True)
        self.open_button = self._button("Open folder", "Show the image's folder", self._on_open_clicked)
        self.copy_button = self._button(
            "Copy parameters", "Copy the A1111 parameters text", self._on_copy_clicked
        )
        self.use_button = self._button(
            "Use these settings", "Restore every knob from this image", self._on_use_clicked
        )
        self.compare_button = self._button(
            "Compare", "Show the two selected images side by side (C)", self.compare_selected
        )
        self.compare_button.setEnabled(False)
        self.gallery.itemSelectionChanged.connect(self._on_gallery_item_selection_changed)
        buttons = QHBoxLayout()
        for button in (self.open_button, self.copy_button, self.use_button, self.compare_button):
            buttons.addWidget(button)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.parameters, 1)
        side_layout.addLayout(buttons)
        detail = QSplitter(Qt.Orientation.Horizontal)
        detail.addWidget(self.viewer)
        detail.addWidget(side)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(detail)
        split.addWidget(self.gallery)
        layout = QVBoxLayout(self)
        layout.addWidget(split)
        self.thumbnails.thumbnailReady.connect(self._on_thumbnails_thumbnail_ready)
        self._placeholder = _placeholder_icon()
        self._waiting: dict[str, list[QListWidgetItem]] = {}  # items still showing the placeholder
        self._viewed: tuple[str, int] | None = None  # (path, size) the viewer waits for or shows
        self._facts: dict[str, ImageFacts] = {}  # read on the pool: parameters, seed, model
        self._reading: set[str] = set()  # facts asked for and not yet arrived
        self._set_selected(None)
        self.set_output_dir(output_dir)
        bridge.runCompleted.connect(self._on_run_completed)
        bridge.groupFinished.connect(self._on_group_finished)  # a sweep's grid, first as in A1111

    def _button(self, text: str, tooltip: str, slot: object) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tooltip)
        button.clicked.connect(slot)
        return button

    def set_output_dir(self, output_dir: Path) -> None:
        """Replace the gallery with the images already in ``output_dir``, newest first.

        The folder is read on the loader's pool: the items arrive a moment later, below any image
        added meanwhile.
        """
        self.thumbnails.cancel_pending()  # thumbnails and listing of the previous folder
        self._waiting.clear()
        self._reading.clear()
        self.gallery.clear()
        self.thumbnails.submit(partial(listed_images, output_dir), self._on_past_images_listed)

    def add_image(self, path: Path) -> None:
        """Put ``path`` first in the gallery (its thumbnail follows)."""
        self.gallery.insertItem(0, self._item(path, time.time()))

    def shutdown(self) -> None:
        """Stop loading images and wait for the loader's running work (the window is closing)."""
        self.thumbnails.shutdown()

    def _item(self, path: Path, when: float) -> QListWidgetItem:
        item = QListWidgetItem(self._placeholder, image_label(path, when))
        item.setData(Qt.ItemDataRole.UserRole, str(path))
        item.setData(WHEN_ROLE, when)
        item.setToolTip(str(path))
        # Registered before the request: a cache hit answers inside request().
        self._waiting.setdefault(str(path), []).append(item)
        self.thumbnails.request(path, THUMB)
        self._read_facts(path)  # the label's model and seed
        return item

    def _read_facts(self, path: Path) -> None:
        if str(path) not in self._reading:
            self._reading.add(str(path))
            self.thumbnails.submit(
                partial(image_facts.read_image_facts, path), partial(self._on_facts_read, path)
            )

    def _on_facts_read(self, path: Path, facts: ImageFacts) -> None:
        self._reading.discard(str(path))
        self._facts[str(path)] = facts
        for item in self._items_of(path):
            when = item.data(WHEN_ROLE)
            seed = None if facts.script else facts.seed  # a grid: its name tells it apart
            label = image_label(path, when, seed=seed, model=facts.model)
            self._set_label(item, label, item.data(STARS_ROLE) or "")
        if self.selected == path:  # an answer for an image no longer selected is only cached
            self.parameters.setPlainText(facts.text)
            self._update_copy_button()

    def facts(self, path: Path) -> ImageFacts | None:
        """What was read of ``path`` so far (None: not read yet)."""
        return self._facts.get(str(path))

    def _items_of(self, path: Path) -> list[QListWidgetItem]:
        items = (self.gallery.item(row) for row in range(self.gallery.count()))
        return [item for item in items if item.data(Qt.ItemDataRole.UserRole) == str(path)]

    @staticmethod
    def _set_label(item: QListWidgetItem, label: str, rated: str) -> None:
        item.setData(STARS_ROLE, rated)
        item.setText(f"{label}  {rated}".rstrip())

    def _on_past_images_listed(self, listed: list[tuple[Path, float]]) -> None:
        shown = {str(path) for path in self.image_paths()}  # this session's, also on disk
        for path, when in listed:
            if str(path) not in shown:
                self.gallery.addItem(self._item(path, when))

    def _on_thumbnails_thumbnail_ready(self, path: Path, size: int, image: QImage) -> None:
        if self._viewed == (str(path), size):
            self._show_in_viewer(image)
        if size != THUMB or image.isNull():
            return  # an unreadable file keeps the placeholder (its tooltip names the file)
        icon = QIcon(QPixmap.fromImage(image))
        for item in self._waiting.pop(str(path), []):
            item.setIcon(icon)

    def image_paths(self) -> list[Path]:
        """The gallery's images, in display order (newest first)."""
        return [
            Path(self.gallery.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.gallery.count())
        ]

    @property
    def selected(self) -> Path | None:
        item = self.gallery.currentItem()
        return Path(item.data(Qt.ItemDataRole.UserRole)) if item else None

    def _on_run_completed(self, event: RunCompleted) -> None:
        for path in event.image_paths:
            self.add_image(path)
        if event.image_paths:
            self.gallery.setCurrentRow(0)

    def _on_group_finished(self, event: GroupFinished) -> None:
        if event.group.grid_state is GridState.WRITTEN:
            for path in reversed(event.group.grid_paths):  # the main grid first, then its sub-grids
                self.add_image(path)

    def _on_gallery_current_item_changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        self._set_selected(Path(current.data(Qt.ItemDataRole.UserRole)) if current else None)

    def _set_selected(self, path: Path | None) -> None:
        for button in (self.open_button, self.use_button):
            button.setEnabled(path is not None)
        self._update_copy_button()
        if path is None:
            self._viewed = None
            self.viewer.setText("No image selected")
            self.parameters.setPlainText("")
            return
        size = max(self.viewer.width(), self.viewer.height(), VIEWER_MIN)
        self._viewed = (str(path), size)
        self.thumbnails.request(path, size)  # the previous image stays up until this one arrives
        facts = self._facts.get(str(path))
        if facts is not None:
            self.parameters.setPlainText(facts.text)
            return
        self.parameters.setPlainText(READING)  # read on the pool: _on_facts_read shows it
        self._read_facts(path)

    def _show_in_viewer(self, image: QImage) -> None:
        if image.isNull():
            self.viewer.setText("Cannot read this image")
            return
        self.viewer.setPixmap(
            QPixmap.fromImage(image).scaled(
                self.viewer.size(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )

    def selected_paths(self) -> list[Path]:
        """The selected images, in display order (two of them can be compared)."""
        rows = sorted(self.gallery.row(item) for item in self.gallery.selectedItems())
        return [Path(self.gallery.item(row).data(Qt.ItemDataRole.UserRole)) for row in rows]

    def compare_selected(self) -> None:
        """Open the two selected images side by side (a message unless two are selected)."""
        paths = self.selected_paths()
        labels = [item.text() for path in paths for item in self._items_of(path)[:1]]
        self.actions_.compare(paths, labels)

    def _on_gallery_item_selection_changed(self) -> None:
        self.compare_button.setEnabled(len(self.gallery.selectedItems()) == 2)

    def context_menu(self, item: QListWidgetItem) -> QMenu:
        """The menu for ``item``: the image's actions, and Compare when it is one of two selected."""
        if not item.isSelected():
            self.gallery.setCurrentItem(item)  # a right-click elsewhere selects that image alone
        menu = self.actions_.menu(Path(item.data(Qt.ItemDataRole.UserRole)))
        if len(self.gallery.selectedItems()) == 2:
            compare = QAction("Compare the two selected", menu)
            compare.setObjectName("results.menu.compare")
            compare.triggered.connect(self.compare_selected)
            menu.insertAction(menu.actions()[0], compare)
        return menu

    def _on_gallery_custom_context_menu_requested(self, pos: QPoint) -> None:
        item = self.gallery.itemAt(pos)
        if item is not None:
            self.context_menu(item).exec(self.gallery.viewport().mapToGlobal(pos))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.gallery and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            return self._on_gallery_key(event)
        return super().eventFilter(watched, event)

    def _on_gallery_key(self, event: QKeyEvent) -> bool:
        path = self.selected
        if path is None:
            return False
        rating = rating_from_key(event)
        if rating != NOT_A_RATING:
            self.rate(path, rating)
            return True
        plain = event.modifiers() == Qt.KeyboardModifier.NoModifier
        if event.key() == Qt.Key.Key_Space and plain:
            self.actions_.full_view(path, self.image_paths())
            return True
        if event.key() == Qt.Key.Key_C and plain:
            self.compare_selected()
            return True
        return False

    def rate(self, path: Path, rating: int | None) -> None:
        """Rate the job that made ``path`` (queue thread); :attr:`rated` follows."""
        if self.client is None:
            self.errorOccurred.emit("Ratings are stored in the queue, and this window has none")
            return
        self.client.call(
            partial(rate_image, self.client.queue, path, rating),
            on_done=lambda _job: self._on_rated(path, rating),
            on_error=lambda message: self.errorOccurred.emit(f"Cannot rate {path.name}: {message}"),
        )

    def _on_rated(self, path: Path, rating: int | None) -> None:
        for item in self._items_of(path):
            self._set_label(item, item.text().split("  ")[0], stars(rating))
        self.rated.emit(path, rating)

    def _on_gallery_item_activated(self, item: QListWidgetItem) -> None:
        self.actions_.full_view(Path(item.data(Qt.ItemDataRole.UserRole)), self.image_paths())

    def forget_image(self, path: Path) -> None:
        """Take ``path`` out of the gallery (it was deleted, here or from History)."""
        for row in reversed(range(self.gallery.count())):
            if self.gallery.item(row).data(Qt.ItemDataRole.UserRole) == str(path):
                self.gallery.takeItem(row)
        self._waiting.pop(str(path), None)
        self._facts.pop(str(path), None)

    def _on_open_clicked(self) -> None:
        if self.selected is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.selected.parent)))

    def _selected_parameters(self) -> str:
        """The selected image's infotext once read ("" before, or when it has none)."""
        facts = self._facts.get(str(self.selected)) if self.selected is not None else None
        return facts.parameters if facts is not None else ""

    def _update_copy_button(self) -> None:
        # Never copies "Reading the parameters…" or why a file has none: only a read infotext.
        self.copy_button.setEnabled(bool(self._selected_parameters()))

    def _on_copy_clicked(self) -> None:
        if parameters := self._selected_parameters():
            QGuiApplication.clipboard().setText(parameters)

    def _on_use_clicked(self) -> None:
        if self.selected is not None:
            self.useSettingsRequested.emit(self.selected)
