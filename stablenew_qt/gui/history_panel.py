"""HistoryPanel: the queue's finished jobs (completed, failed, cancelled), filtered and re-used.

Filters: status, text (prompts, models, errors), model and period. Each job shows a thumbnail of
its first image (decoded off the GUI thread by a
:class:`~stablenew_qt.gui.thumbnails.ThumbnailLoader`), when it finished and how it ended. From
the buttons or the context menu: open its folder, re-queue it as it was or with a new seed, load
it into the editor, remove it, and clear the whole history. Removing a job never deletes its
images.

It follows the queue like the QueuePanel does: ``bridge.queueChanged`` asks for a new listing,
which is read and filtered on the :class:`~stablenew_qt.gui.queue_client.QueueClient`'s thread
and shown when it arrives. Every operation runs there too.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ..core.events import GroupFinished, QueueChanged
from ..core.queue import FINISHED_STATUSES, Job, JobQueue, JobStatus, QueueError, filter_jobs
from .bridge import EventBridge
from .history_groups import GroupRow, group_text, grouped_order, read_group_rows
from .image_actions import SEND_TO, ImageActions
from .queue_client import QueueClient
from .queue_panel import JOB_ID_ROLE, STATUS_ICONS, MenuEntry, job_menu, job_text, load_config
from .rating import NOT_A_RATING, rating_from_key, stars
from .thumbnails import ThumbnailLoader

log = logging.getLogger(__name__)

THUMB = 64
#: Item data: the group a row heads (group rows), the group a job row belongs to (its jobs).
GROUP_ID_ROLE = Qt.ItemDataRole.UserRole + 10
MEMBER_OF_ROLE = Qt.ItemDataRole.UserRole + 11
#: How a group's job rows are set off under the group's row.
MEMBER_INDENT = "      "
#: The newest jobs listed; older ones match the filters but are not shown (the label says so).
MAX_LISTED = 500
#: How long typing in the search box waits before filtering (ms).
SEARCH_DELAY_MS = 200
ALL = ""

#: The period filter: label -> how far back from the start of today (None: any time).
PERIODS: dict[str, timedelta | None] = {
    "Any time": None,
    "Today": timedelta(0),
    "Last 7 days": timedelta(days=6),
    "Last 30 days": timedelta(days=29),
}


def period_start(label: str, now: datetime | None = None) -> datetime | None:
    """The first moment the period ``label`` keeps (local midnight ``n`` days ago); None: any time."""
    back = PERIODS[label]
    if back is None:
        return None
    now = now or datetime.now().astimezone()
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - back


def first_image(job: Job) -> Path | None:
    """The job's first image, if it still exists (what "Send to" starts from)."""
    return job.outputs[0] if job.outputs and job.outputs[0].is_file() else None


def job_folder(job: Job) -> Path | None:
    """The folder holding the job's images (its run folder), if it still exists."""
    if job.outputs:
        return job.outputs[0].parent if job.outputs[0].parent.is_dir() else None
    if job.output_root is not None and job.run_id:
        return next((p for p in job.output_root.glob(f"*/{job.run_id}") if p.is_dir()), None)
    return None


def history_text(job: Job) -> str:
    """Two lines: the job's summary, then when it finished and what it left."""
    when = job.when.strftime("%Y-%m-%d %H:%M")
    images = f"{len(job.outputs)} image(s)" if job.outputs else "no images"
    rated = f"  ·  {stars(job.rating)}" if job.rating else ""
    return f"{job_text(job)}\n{when}  ·  {images}  ·  attempt {job.attempts}{rated}"


def compare_label(job: Job) -> str:
    """What tells two jobs' images apart in the compare view: id, seed, model."""
    seed = job.config_data.get("seed")
    return f"#{job.id} · seed {seed} · {job.model}" if seed is not None else f"#{job.id} · {job.model}"


@dataclass(frozen=True)
class HistoryFilters:
    """What the history shows: None keeps everything (status: any finished status)."""

    status: JobStatus | None = None
    text: str | None = None
    model: str | None = None
    since: datetime | None = None
    #: Keep jobs rated at least this (1-5); None keeps rated and unrated.
    min_rating: int | None = None
    #: "newest" (newest first) or "rating" (best rated first, unrated last, then newest).
    sort: str = "newest"


#: The sort choices: label -> HistoryFilters.sort.
SORTS: dict[str, str] = {"Newest first": "newest", "Best rated first": "rating"}


@dataclass(frozen=True)
class HistoryListing:
    """The result of :func:`read_history`."""

    jobs: list[Job]  # newest first
    models: list[str]  # every model of the finished jobs (for the model filter), sorted
    #: For each listed job (by id): its first image and its folder, where they exist (looked up
    #: on the queue thread with the listing, so selecting a job never waits on the disk).
    files: dict[int, JobFiles] = field(default_factory=dict)
    #: The groups of the listed jobs (by group id), read with them.
    groups: dict[int, GroupRow] = field(default_factory=dict)


@dataclass(frozen=True)
class JobFiles:
    """What of a job is on disk: its first image and its run folder (None: gone)."""

    image: Path | None = None
    folder: Path | None = None


def job_files(job: Job) -> JobFiles:
    """The job's first image and folder as the disk has them now (not on the GUI thread)."""
    return JobFiles(first_image(job), job_folder(job))


def read_history(queue: JobQueue, filters: HistoryFilters) -> HistoryListing | QueueError:
    """The finished jobs of ``queue`` passing ``filters``, newest first (any thread). Never raises:
    a failure comes back as a QueueError, so the panel always hears back and can list again."""
    try:
        finished = queue.list(status=FINISHED_STATUSES)
    except (QueueError, sqlite3.Error) as exc:
        return QueueError(f"cannot read the history: {exc}")
    except Exception as exc:
        log.exception("reading the history failed")
        return QueueError(f"cannot read the history: {type(exc).__name__}: {exc} (details in the log)")
    jobs = filter_jobs(
        finished,
        None if filters.status is None else {filters.status},
        filters.text,
        model=filters.model,
        since=filters.since,
    )
    if filters.min_rating is not None:
        jobs = [job for job in jobs if (job.rating or 0) >= filters.min_rating]
    jobs.sort(key=lambda job: (job.when, job.id), reverse=True)
    if filters.sort == "rating":
        jobs.sort(key=lambda job: -(job.rating or 0))  # stable: newest first among equals
    files = {job.id: job_files(job) for job in jobs[:MAX_LISTED]}
    groups = read_group_rows(queue, (job.group_id for job in jobs[:MAX_LISTED] if job.group_id is not None))
    return HistoryListing(jobs, sorted({job.model for job in finished if job.model}), files, groups)


class HistoryPanel(QWidget):
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
        self._update_models(listing.models)
        jobs = listing.jobs
        self.groups = listing.groups
        self.jobs = grouped_order(jobs[:MAX_LISTED], self.groups)
        self.files = listing.files
        self.list.clear()
        self._items_by_path.clear()
        self._job_items.clear()
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
        self._update_buttons()

    def _new_group_item(self, row: GroupRow, listed: int) -> QListWidgetItem:
        icon = QIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon))
        item = QListWidgetItem(icon, group_text(row, row.group.id in self.expanded, listed))
        item.setData(GROUP_ID_ROLE, row.group.id)
        item.setData(JOB_ID_ROLE, None)
        item.setToolTip("Enter or double-click shows or hides its jobs")
        if row.grid is not None:
            self._items_by_path.setdefault(row.grid, []).append(item)
            self.thumbnails.request(row.grid, THUMB)
        return item

    def _group_item(self, group_id: int) -> QListWidgetItem | None:
        for index in range(self.list.count()):
            item = self.list.item(index)
            if item.data(GROUP_ID_ROLE) == group_id:
                return item
        return None

    def set_expanded(self, group_id: int, expanded: bool) -> None:
        """Show (or hide) the group's jobs under its row."""
        header = self._group_item(group_id)
        if header is None:
            return
        (self.expanded.add if expanded else self.expanded.discard)(group_id)
        listed = sum(job.group_id == group_id for job in self.jobs)
        header.setText(group_text(self.groups[group_id], expanded, listed))
        for index in range(self.list.count()):
            item = self.list.item(index)
            if item.data(MEMBER_OF_ROLE) == group_id:
                item.setHidden(not expanded)

    def toggle(self, group_id: int) -> None:
        self.set_expanded(group_id, group_id not in self.expanded)

    def load_best(self, group_id: int) -> None:
        """Load the settings of the group's best-rated job into the editor (like "Load into the
        editor" on that job); a message when there is none yet."""
        row = self.groups.get(group_id)
        if row is None:
            return
        if not row.finished:
            done = f"{row.done} of {row.total} jobs done"
            self.errorOccurred.emit(f"{row.group.label}: {done}; wait for the rest")
        elif row.best is None:
            self.errorOccurred.emit(f"{row.group.label}: rate a cell first (keys 1-5 on its row)")
        else:
            self.load(row.best.id)

    def open_grid(self, group_id: int) -> None:
        row = self.groups.get(group_id)
        if row is not None and row.grid is not None:
            self.actions_.full_view(row.grid)

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
        icon = QIcon(self.style().standardIcon(STATUS_ICONS[job.status]))
        item = QListWidgetItem(icon, history_text(job))
        item.setData(JOB_ID_ROLE, job.id)
        item.setToolTip(job.error or str(job.config_data.get("prompt") or ""))
        if job.outputs:
            self._items_by_path.setdefault(job.outputs[0], []).append(item)
            self.thumbnails.request(job.outputs[0], THUMB)
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
        """The listed jobs' first images, in list order (what the full view steps through)."""
        return [files.image for job in self.jobs if (files := self._files(job.id)).image is not None]

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

    def group_menu(self, group_id: int) -> QMenu:
        """The menu of a group's row: show or hide its jobs, open its grid, load its best cell."""
        row = self.groups[group_id]
        shown = group_id in self.expanded
        entries: tuple[MenuEntry, ...] = (
            ("Hide its jobs" if shown else "Show its jobs", True, self.toggle),
            ("Open the grid", row.grid is not None, self.open_grid),
            ("Load best-rated cell", row.can_load_best, self.load_best),
        )
        return job_menu(self, group_id, entries)

    def context_menu(self, job: Job) -> QMenu:
        """The menu for ``job``: every operation the buttons offer."""
        files = self._files(job.id)
        two = [j for j in self.selected_jobs() if self._files(j.id).image is not None]
        entries: tuple[MenuEntry, ...] = (
            *((("Compare the two selected", True, self.compare_selected),) if len(two) == 2 else ()),
            ("Open folder", files.folder is not None, self.open_folder),
            ("Full view", files.image is not None, self.full_view),
            ("Re-queue", True, self.requeue),
            ("Re-queue with a new seed", True, self.requeue_new_seed),
            ("Load into the editor", True, self.load),
            *((text, files.image is not None, partial(self._send_to, stage)) for stage, text in SEND_TO),
            ("Remove", True, self.remove),
        )
        return job_menu(self, job.id, entries)

    def _send_to(self, stage: str, job_id: int) -> None:
        image = self._files(job_id).image
        if image is not None:
            self.sendToRequested.emit(image, stage)
