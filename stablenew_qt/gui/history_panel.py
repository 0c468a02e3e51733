"""HistoryPanel: the queue's finished jobs (completed, failed, cancelled), filtered and re-used.

Filters: status, text (prompts, models, errors), model and period. Each job shows a thumbnail of
its first image (decoded off the GUI thread by a
:class:`~stablenew_qt.gui.thumbnails.ThumbnailLoader`), when it finished and how it ended. From
the buttons or the context menu: open its folder, re-queue it as it was or with a new seed, load
it into the editor, remove it, and clear the whole history; from the context menu also what the
Results gallery does with its first image (open, full view, copy image or parameters, send to)
and "Delete images" (to the trash, after asking; the job stays listed). Removing a job never
deletes its images.

It follows the queue like the QueuePanel does: ``bridge.queueChanged`` asks for a new listing,
which is read and filtered on the :class:`~stablenew_qt.gui.queue_client.QueueClient`'s thread
and shown when it arrives. Every operation runs there too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon, QImage, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.events import GroupFinished, QueueChanged
from ..core.queue import Job, JobStatus, QueueError
from .bridge import EventBridge
from .history_groups import (
    GROUP_ID_ROLE,
    MEMBER_INDENT,
    MEMBER_OF_ROLE,
    THUMB,
    GroupRow,
    GroupRows,
    grouped_order,
)
from .history_listing import (
    MAX_LISTED,
    PERIODS,
    SORTS,
    HistoryFilters,
    HistoryListing,
    JobFiles,
    compare_label,
    first_image,
    history_text,
    job_folder,
    period_start,
    read_history,
)
from .image_actions import SEND_TO, ImageActions
from .queue_client import QueueClient
from .queue_panel import JOB_ID_ROLE, STATUS_ICONS, MenuEntry, job_menu, load_config
from .rating import NOT_A_RATING, rating_from_key
from .thumbnails import ThumbnailLoader

log = logging.getLogger(__name__)

# The listing's names stay importable from here, where they were first defined.
__all__ = [
    "GROUP_ID_ROLE",
    "MAX_LISTED",
    "PERIODS",
    "SORTS",
    "HistoryFilters",
    "HistoryListing",
    "HistoryPanel",
    "JobFiles",
    "first_image",
    "history_text",
    "job_folder",
    "period_start",
    "read_history",
]

#: How long typing in the search box waits before filtering (ms).
SEARCH_DELAY_MS = 200
ALL = ""


class HistoryPanel(GroupRows, QWidget):
    """Finished jobs of ``queue``, newest first, with filters and re-use operations."""

    #: "Load into the editor" was chosen for a job (its RunConfig).
    loadRequested = Signal(object)
    #: A job was queued again (the new Job); the window may start the queue.
    requeued = Signal(object)
    #: An operation was refused (message for the user).
    errorOccurred = Signal(str)
    #: "Send to <stage>" was chosen for a job: its first image's path and the stage (A1111's Send to).
    sendToRequested = Signal(object, str)
    #: The list now shows the history as it was when read (after :meth:`refresh`).
    listed = Signal()

    def __init__(self, client: QueueClient, bridge: EventBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self._bridge = bridge
        self.jobs: list[Job] = []
        self.files: dict[int, JobFiles] = {}
        self.groups: dict[int, GroupRow] = {}
        #: Groups whose jobs are shown under their row (kept across refreshes).
        self.expanded: set[int] = set()
        self._job_items: dict[int, QListWidgetItem] = {}
        self._group_items: dict[int, QListWidgetItem] = {}
        self._status_icons: dict[JobStatus, QIcon] = {}
        self.thumbnails = ThumbnailLoader(self)
        self.actions_ = ImageActions(self, self.thumbnails)
        self.actions_.deleted.connect(lambda _path: self.refresh())  # from the full view
        self.actions_.errorOccurred.connect(self.errorOccurred)
        self.thumbnails.thumbnailReady.connect(self._on_thumbnail_ready)
        self._items_by_path: dict[Path, list[QListWidgetItem]] = {}
        self._listing = self._stale = self._closed = False
        self._build()
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(self._search_timer.start)
        for combo in (
            self.status_filter,
            self.model_filter,
            self.period_filter,
            self.rating_filter,
            self.sort_order,
        ):
            combo.currentIndexChanged.connect(self.refresh)
        bridge.queueChanged.connect(self._on_queue_changed)
        bridge.groupFinished.connect(self._on_group_finished)  # its grid is written: show it
        self.refresh()

    def _build(self) -> None:
        self.status_filter = QComboBox()
        self.status_filter.setObjectName("history.status")
        self.status_filter.setToolTip("Show jobs that ended this way")
        self.status_filter.addItem("All", ALL)
        for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            self.status_filter.addItem(status.value.capitalize(), status.value)
        self.search = QLineEdit()
        self.search.setObjectName("history.search")
        self.search.setPlaceholderText("Search prompts, models, errors")
        self.search.setClearButtonEnabled(True)
        self.model_filter = QComboBox()
        self.model_filter.setObjectName("history.model")
        self.model_filter.setToolTip("Show jobs made with this model")
        self.model_filter.addItem("All models", ALL)
        self.period_filter = QComboBox()
        self.period_filter.setObjectName("history.period")
        self.period_filter.setToolTip("Show jobs that finished in this period")
        self.period_filter.addItems(list(PERIODS))
        self.rating_filter = QComboBox()
        self.rating_filter.setObjectName("history.rating")
        self.rating_filter.setToolTip("Show jobs rated at least this (keys 1-5 rate the selected job)")
        self.rating_filter.addItem("Any rating", 0)
        for n in range(1, 6):
            self.rating_filter.addItem(f"rated ≥ {n}", n)
        self.sort_order = QComboBox()
        self.sort_order.setObjectName("history.sort")
        self.sort_order.setToolTip("Order of the list")
        for label, key in SORTS.items():
            self.sort_order.addItem(label, key)
        filters = QHBoxLayout()
        filters.addWidget(self.status_filter)
        filters.addWidget(self.search, 1)
        filters.addWidget(self.model_filter)
        filters.addWidget(self.period_filter)
        filters.addWidget(self.rating_filter)
        filters.addWidget(self.sort_order)
        self.list = QListWidget()
        self.list.setObjectName("history.list")
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setViewMode(QListView.ViewMode.ListMode)
        self.list.setUniformItemSizes(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)  # to compare two
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._on_list_custom_context_menu_requested)
        self.list.currentRowChanged.connect(self._on_list_current_row_changed)
        self.list.itemActivated.connect(self._on_list_item_activated)  # Enter, double-click
        self.list.installEventFilter(self)
        self.summary = QLabel("")
        self.summary.setObjectName("history.summary")
        self.open_button = self._button(
            "Open folder", "Show the job's images in the file manager", self.open_folder
        )
        self.requeue_button = self._button("Re-queue", "Queue the job again exactly as it was", self.requeue)
        self.new_seed_button = self._button(
            "Re-queue, new seed", "Queue the job again with a new random seed", self.requeue_new_seed
        )
        self.load_button = self._button(
            "Load into editor", "Show the job's settings in the editor", self.load
        )
        self.remove_button = self._button("Remove", "Forget the job (its images stay on disk)", self.remove)
        self.best_button = QPushButton("Load best-rated cell")
        self.best_button.setObjectName("history.load_best")
        self.best_button.setToolTip("Load the settings of the sweep's highest-rated job into the editor")
        self.best_button.clicked.connect(self._on_best_button_clicked)
        self.clear_button = QPushButton("Clear history")
        self.clear_button.setToolTip("Forget every finished job (their images stay on disk)")
        self.clear_button.clicked.connect(self._on_clear_button_clicked)
        buttons = QHBoxLayout()
        for button in (
            self.open_button,
            self.requeue_button,
            self.new_seed_button,
            self.load_button,
            self.best_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        self._update_buttons()

    def _button(self, text: str, tooltip: str, operation: Callable[[int], object]) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tooltip)
        button.clicked.connect(lambda: self._on_selected(operation))
        return button

    # -- following the queue ---------------------------------------------------------------
    def detach(self) -> None:
        """Stop following the queue and stop decoding thumbnails (the window is closing)."""
        self._closed = True
        self._bridge.queueChanged.disconnect(self._on_queue_changed)
        self._bridge.groupFinished.disconnect(self._on_group_finished)
        self._search_timer.stop()
        self.thumbnails.shutdown()

    def _on_queue_changed(self, _event: QueueChanged) -> None:
        self.refresh()

    def _on_group_finished(self, _event: GroupFinished) -> None:
        self.refresh()

    def filters(self) -> HistoryFilters:
        """The filters as the widgets show them now."""
        status = self.status_filter.currentData()
        return HistoryFilters(
            status=JobStatus(status) if status else None,
            text=self.search.text().strip() or None,
            model=self.model_filter.currentData() or None,
            since=period_start(self.period_filter.currentText()),
            min_rating=self.rating_filter.currentData() or None,
            sort=self.sort_order.currentData() or "newest",
        )

    def refresh(self) -> None:
        """List the finished jobs that pass the filters, newest first. Reading and filtering run
        on the queue thread (a long history takes tens of ms); the list follows when done, and
        :attr:`listed` is emitted. Refreshes asked for meanwhile are folded into one more."""
        if self._closed:
            return
        if self._listing:
            self._stale = True
            return
        self._listing = True
        self.client.call(partial(read_history, self.client.queue, self.filters()), self._on_history_read)

    def _on_history_read(self, listing: HistoryListing | QueueError) -> None:
        self._listing = False
        if self._closed:
            return
        if self._stale:
            self._stale = False
            self.refresh()
            return
        if isinstance(listing, QueueError):
            self.errorOccurred.emit(str(listing))
            return
        self._show(listing)
        self.listed.emit()

    def _show(self, listing: HistoryListing) -> None:
        selected, selected_group = self.selected_job(), self.selected_group()
        kept = [job.id for job in self.selected_jobs()]  # a selection of two (to compare) survives
        self._update_models(listing.models)
        jobs = listing.jobs
        self.groups = listing.groups
        self.jobs = grouped_order(jobs[:MAX_LISTED], self.groups)
        self.files = listing.files
        self.list.clear()
        self._items_by_path.clear()
        self._job_items.clear()
        self._group_items.clear()
        for job in self.jobs:
            group_id = job.group_id if job.group_id in self.groups else None
            if group_id is not None and not self._group_item(group_id):
                listed = sum(j.group_id == group_id for j in self.jobs)
                self.list.addItem(self._new_group_item(self.groups[group_id], listed))
            item = self._item(job)
            self._job_items[job.id] = item
            self.list.addItem(item)
            if group_id is not None:
                item.setText(MEMBER_INDENT + item.text().replace("\n", "\n" + MEMBER_INDENT))
                item.setData(MEMBER_OF_ROLE, group_id)
                item.setHidden(group_id not in self.expanded)
        shown = f"{len(self.jobs)} of {len(jobs)}" if len(jobs) > len(self.jobs) else str(len(jobs))
        self.summary.setText(f"{shown} finished job(s)")
        if selected is not None and selected.id in self._job_items:
            self.list.setCurrentItem(self._job_items[selected.id])
        elif selected_group is not None and (header := self._group_item(selected_group.group.id)):
            self.list.setCurrentItem(header)
        if len(kept) > 1:
            for job_id in kept:
                if (kept_item := self._job_items.get(job_id)) is not None:
                    kept_item.setSelected(True)
        self._update_buttons()

    def _update_models(self, models: list[str]) -> None:
        current = self.model_filter.currentData()
        if [self.model_filter.itemData(i) for i in range(1, self.model_filter.count())] == models:
            return
        self.model_filter.blockSignals(True)
        self.model_filter.clear()
        self.model_filter.addItem("All models", ALL)
        for model in models:
            self.model_filter.addItem(model, model)
        self.model_filter.setCurrentIndex(max(self.model_filter.findData(current), 0))
        self.model_filter.blockSignals(False)

    def _item(self, job: Job) -> QListWidgetItem:
        icon = self._status_icons.get(job.status)
        if icon is None:  # made once: the style's icon costs 50 µs, a 500-row refresh 25 ms
            icon = self._status_icons[job.status] = QIcon(self.style().standardIcon(STATUS_ICONS[job.status]))
        files = self._files(job.id)
        item = QListWidgetItem(icon, history_text(job, len(files.images)))
        item.setData(JOB_ID_ROLE, job.id)
        item.setToolTip(job.error or str(job.config_data.get("prompt") or ""))
        if files.image is not None:  # images gone (deleted): the status icon stays
            self._items_by_path.setdefault(files.image, []).append(item)
            self.thumbnails.request(files.image, THUMB)
        return item

    def _on_thumbnail_ready(self, path: Path, _size: int, image: QImage) -> None:
        if image.isNull():
            return  # deleted or unreadable: the status icon stays
        icon = QIcon(QPixmap.fromImage(image))
        for item in self._items_by_path.get(Path(path), []):
            item.setIcon(icon)

    # -- selection and operations ------------------------------------------------------------
    def selected_job(self) -> Job | None:
        """The job of the current row (None on a group's row)."""
        item = self.list.currentItem()
        return self._job_of(item) if item is not None else None

    def selected_group(self) -> GroupRow | None:
        """The group whose row is current, or the group of the current job."""
        item = self.list.currentItem()
        if item is None:
            return None
        group_id = item.data(GROUP_ID_ROLE) or item.data(MEMBER_OF_ROLE)
        return self.groups.get(group_id) if group_id is not None else None

    def _job_of(self, item: QListWidgetItem) -> Job | None:
        job_id = item.data(JOB_ID_ROLE)
        return next((job for job in self.jobs if job.id == job_id), None) if job_id is not None else None

    def _on_list_current_row_changed(self, _row: int) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        job = self.selected_job()
        for button in (self.requeue_button, self.new_seed_button, self.load_button, self.remove_button):
            button.setEnabled(job is not None)
        self.open_button.setEnabled(job is not None and self._files(job.id).folder is not None)
        group = self.selected_group()
        self.best_button.setEnabled(group is not None and group.can_load_best)

    def _on_best_button_clicked(self) -> None:
        group = self.selected_group()
        if group is not None:
            self.load_best(group.group.id)

    def _files(self, job_id: int) -> JobFiles:
        return self.files.get(job_id, JobFiles())

    def image_paths(self) -> list[Path]:
        """The first images of the jobs shown (not those of a group whose jobs are hidden), in
        list order: what the full view steps through."""
        shown = [job for job in self.jobs if not self._job_items[job.id].isHidden()]
        return [files.image for job in shown if (files := self._files(job.id)).image is not None]

    def full_view(self, job_id: int) -> None:
        """Open the job's first image in the full view (Left / Right step through the list)."""
        image = self._files(job_id).image
        if image is None:
            self.errorOccurred.emit(f"job {job_id} has no image on disk")
            return
        self.actions_.full_view(image, self.image_paths())

    def selected_jobs(self) -> list[Job]:
        """The selected jobs, in list order."""
        items = sorted(self.list.selectedItems(), key=self.list.row)
        return [job for item in items if (job := self._job_of(item)) is not None]

    def compare_selected(self, _job_id: int | None = None) -> None:
        """Open the first images of the two selected jobs side by side (a message otherwise)."""
        jobs = [job for job in self.selected_jobs() if self._files(job.id).image is not None]
        paths = [image for job in jobs if (image := self._files(job.id).image) is not None]
        labels = [compare_label(job) for job in jobs]
        self.actions_.compare(paths, labels)

    def _on_list_item_activated(self, item: QListWidgetItem) -> None:
        if item.data(GROUP_ID_ROLE) is not None:
            self.toggle(item.data(GROUP_ID_ROLE))
        else:
            self.full_view(item.data(JOB_ID_ROLE))

    def _on_selected(self, operation: Callable[[int], object]) -> None:
        job = self.selected_job()
        if job is not None:
            operation(job.id)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.list and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            return self._on_list_key(event)
        return super().eventFilter(watched, event)

    def _on_list_key(self, event: QKeyEvent) -> bool:
        job = self.selected_job()
        rating = rating_from_key(event)
        if job is not None and rating != NOT_A_RATING:
            self.rate(job.id, rating)
            return True
        plain = event.modifiers() == Qt.KeyboardModifier.NoModifier
        if event.key() == Qt.Key.Key_C and plain:
            self.compare_selected()
            return True
        item = self.list.currentItem()
        header = item.data(GROUP_ID_ROLE) if item is not None else None
        if header is not None and plain and event.key() in (Qt.Key.Key_Right, Qt.Key.Key_Left):
            self.set_expanded(header, event.key() == Qt.Key.Key_Right)
            return True
        return False

    def rate(self, job_id: int, rating: int | None) -> None:
        """Store ``rating`` (1-5, None clears) for the job, on the queue thread; the list follows
        through the queue's change."""
        self.client.call(
            lambda: self.client.queue.rate(job_id, rating),
            on_error=lambda message: self.errorOccurred.emit(f"Cannot rate job {job_id}: {message}"),
        )

    def open_folder(self, job_id: int) -> Path | None:
        """Open the job's run folder in the file manager; returns it (None if it is gone)."""
        folder = self._files(job_id).folder
        if folder is None:
            self.errorOccurred.emit(f"job {job_id} has no image folder on disk")
            return None
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        return folder

    def requeue(self, job_id: int) -> None:
        """Queue the job again as it was (same seed: the same images); :attr:`requeued` follows."""
        self._requeue(job_id, new_seed=False)

    def requeue_new_seed(self, job_id: int) -> None:
        """Queue the job again with a fresh random seed (recorded in the new job)."""
        self._requeue(job_id, new_seed=True)

    def _requeue(self, job_id: int, *, new_seed: bool) -> None:
        self.client.requeue(
            job_id,
            new_seed=new_seed,
            on_done=self.requeued.emit,
            on_error=lambda message: self.errorOccurred.emit(f"Cannot queue job {job_id} again: {message}"),
        )

    def load(self, job_id: int) -> None:
        """Emit :attr:`loadRequested` with the job's RunConfig (a message if it no longer validates)."""
        load_config(self.client, job_id, self.loadRequested.emit, self.errorOccurred.emit)

    def remove(self, job_id: int) -> None:
        """Forget the job (its images stay on disk)."""
        self.client.call(lambda: self.client.queue.remove(job_id), on_error=self.errorOccurred.emit)

    def _on_clear_button_clicked(self) -> None:
        self.client.clear_finished()

    def _on_list_custom_context_menu_requested(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        if not item.isSelected():
            self.list.setCurrentItem(item)
        job, group_id = self._job_of(item), item.data(GROUP_ID_ROLE)
        menu = self.context_menu(job) if job is not None else self.group_menu(group_id)
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def context_menu(self, job: Job) -> QMenu:
        """The menu for ``job``: every operation the buttons offer."""
        files = self._files(job.id)
        two = [j for j in self.selected_jobs() if self._files(j.id).image is not None]
        image = files.image is not None
        entries: tuple[MenuEntry, ...] = (
            *((("Compare the two selected", True, self.compare_selected),) if len(two) == 2 else ()),
            ("Open image", image, partial(self._on_image, self.actions_.open)),
            ("Full view", image, self.full_view),
            ("Copy image", image, partial(self._on_image, self.actions_.copy_image)),
            ("Copy parameters", image, partial(self._on_image, self.actions_.copy_parameters)),
            ("Re-queue", True, self.requeue),
            ("Re-queue with a new seed", True, self.requeue_new_seed),
            ("Load into the editor", True, self.load),
            *((text, image, partial(self._send_to, stage)) for stage, text in SEND_TO),
            ("Open folder", files.folder is not None, self.open_folder),
            ("Delete images… (to trash)", bool(files.images), self.delete_images),
            ("Remove", True, self.remove),
        )
        return job_menu(self, job.id, entries)

    def _on_image(self, action: Callable[[Path], object], job_id: int) -> None:
        image = self._files(job_id).image
        if image is not None:
            action(image)

    def _send_to(self, stage: str, job_id: int) -> None:
        self._on_image(lambda image: self.sendToRequested.emit(image, stage), job_id)

    def delete_images(self, job_id: int) -> QMessageBox | None:
        """Ask (naming how many files), then move the job's images to the trash off the GUI
        thread; the list follows (the row without its thumbnail). The job stays listed: Remove
        forgets it. None (and a message) when none of its images is on disk."""
        images = self._files(job_id).images
        if not images:
            self.errorOccurred.emit(f"job {job_id} has no image on disk")
            return None
        return self.actions_.delete_files(images, what=f"the {len(images)} image file(s) of job #{job_id}")
