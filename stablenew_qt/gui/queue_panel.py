"""QueuePanel: the JobQueue as a list the user reorders, cancels, retries and runs.

Like napari's widgets it takes its model, :class:`~stablenew_qt.core.queue.JobQueue`, and listens
to its events: ``JobQueue.subscribe`` calls back on whichever thread changed the queue (the engine
thread while a job runs), so the callback only emits a queued signal and the list is rebuilt on the
GUI thread. User actions write straight to the queue (quick SQLite transactions); running jobs is
the :class:`~stablenew_qt.gui.queue_worker.QueueWorker`'s work, on the engine thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.queue import RETRYABLE_STATUSES, Job, JobQueue, JobStatus, QueueChanged, QueueError

log = logging.getLogger(__name__)

#: The standard icon shown for each status.
STATUS_ICONS: dict[JobStatus, QStyle.StandardPixmap] = {
    JobStatus.QUEUED: QStyle.StandardPixmap.SP_FileDialogListView,
    JobStatus.RUNNING: QStyle.StandardPixmap.SP_MediaPlay,
    JobStatus.COMPLETED: QStyle.StandardPixmap.SP_DialogApplyButton,
    JobStatus.FAILED: QStyle.StandardPixmap.SP_MessageBoxCritical,
    JobStatus.CANCELLED: QStyle.StandardPixmap.SP_DialogCancelButton,
    JobStatus.INTERRUPTED: QStyle.StandardPixmap.SP_MessageBoxWarning,
}

JOB_ID_ROLE = Qt.ItemDataRole.UserRole
PROMPT_CHARS = 60


def job_text(job: Job) -> str:
    """One line for ``job``: id, status, model and the start of its prompt (and its error)."""
    prompt = str(job.config_data.get("prompt") or "").replace("\n", " ")
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    text = f"#{job.id}  {job.status.value}  {job.model}  {prompt}".rstrip()
    return f"{text}  — {job.error}" if job.error else text


class QueuePanel(QWidget):
    """Lists the jobs of ``queue`` in display order (running, queued in run order, then the rest).

    Queued jobs can be dragged into a new order; the context menu offers every queue operation.
    """

    #: "Load into the editor" was chosen for a job (its RunConfig).
    loadRequested = Signal(object)
    #: "Run queue" was pressed: the window hands this to the QueueWorker.
    runRequested = Signal()
    #: How many jobs are queued changed (for the status bar).
    queuedCountChanged = Signal(int)
    #: A queue operation was refused (message for the user).
    errorOccurred = Signal(str)

    _queueChanged = Signal()

    def __init__(self, queue: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.jobs: list[Job] = []
        self._build()
        self._queueChanged.connect(self._on_queue_changed, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe = queue.subscribe(self._on_queue_event)
        self.refresh()

    def _build(self) -> None:
        self.list = QListWidget()
        self.list.setObjectName("queue.list")
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._on_list_custom_context_menu_requested)
        self.list.model().rowsMoved.connect(self._on_rows_moved)
        self.run_button = QPushButton("Run queue")
        self.run_button.setToolTip("Run the queued jobs one at a time on the engine")
        self.run_button.clicked.connect(self._on_run_button_clicked)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Start no further job; the running one finishes")
        self.pause_button.clicked.connect(self._on_pause_button_clicked)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove completed, failed and cancelled jobs (their images stay)")
        self.clear_button.clicked.connect(self._on_clear_button_clicked)
        self.count_label = QLabel("")
        self.count_label.setObjectName("status.queued")
        self.count_label.setToolTip("Jobs waiting in the queue")
        buttons = QHBoxLayout()
        for button in (self.run_button, self.pause_button, self.clear_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.list, 1)

    # -- following the queue ---------------------------------------------------------------
    def detach(self) -> None:
        """Stop listening to the queue (the window is closing; the queue outlives it)."""
        self._unsubscribe()

    def _on_queue_event(self, _event: QueueChanged) -> None:
        # Any thread: only hand over to the GUI thread.
        self._queueChanged.emit()

    def _on_queue_changed(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Show the queue as it is now."""
        self.jobs = self.queue.list()
        self.list.blockSignals(True)
        self.list.clear()
        for job in self.jobs:
            self.list.addItem(self._item(job))
        self.list.blockSignals(False)
        paused = self.queue.paused
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        queued = sum(job.status is JobStatus.QUEUED for job in self.jobs)
        self.count_label.setText(f"Queued: {queued}" + (" (paused)" if paused else ""))
        self.queuedCountChanged.emit(queued)

    def _item(self, job: Job) -> QListWidgetItem:
        item = QListWidgetItem(QIcon(self.style().standardIcon(STATUS_ICONS[job.status])), job_text(job))
        item.setData(JOB_ID_ROLE, job.id)
        item.setToolTip(job.error or job.config_data.get("prompt", "") or "")
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if job.status is JobStatus.QUEUED:
            flags |= Qt.ItemFlag.ItemIsDragEnabled
        item.setFlags(flags)
        if job.status is JobStatus.RUNNING:
            font = QFont(item.font())
            font.setBold(True)
            item.setFont(font)
            item.setBackground(QBrush(QColor(255, 230, 150)))
        return item

    def job_at(self, row: int) -> Job | None:
        """The job shown in ``row`` (None if out of range)."""
        return self.jobs[row] if 0 <= row < len(self.jobs) else None

    # -- operations (the context menu's actions) ----------------------------------------------
    def cancel(self, job_id: int) -> None:
        """Cancel a queued or interrupted job, or ask the running one to stop at its next step."""
        self._do(lambda: self.queue.cancel(job_id))

    def remove(self, job_id: int) -> None:
        """Delete a job that is not running (its images stay on disk)."""
        self._do(lambda: self.queue.remove(job_id))

    def retry(self, job_id: int) -> None:
        """Queue a failed, cancelled or interrupted job again, at the end."""
        self._do(lambda: self.queue.retry(job_id))

    def move_up(self, job_id: int) -> None:
        self._do(lambda: self.queue.move_up(job_id))

    def move_down(self, job_id: int) -> None:
        self._do(lambda: self.queue.move_down(job_id))

    def move_to_top(self, job_id: int) -> None:
        self._do(lambda: self.queue.move_to_top(job_id))

    def load(self, job_id: int) -> None:
        """Emit :attr:`loadRequested` with the job's RunConfig (an error message if it no longer
        validates)."""
        try:
            config: RunConfig = self.queue.get(job_id).config
        except (ConfigError, QueueError) as exc:
            self.errorOccurred.emit(f"Cannot load job {job_id}: {exc}")
            return
        self.loadRequested.emit(config)

    def _do(self, operation: Callable[[], object]) -> None:
        try:
            operation()
        except QueueError as exc:
            self.errorOccurred.emit(str(exc))

    # -- slots ---------------------------------------------------------------------------------
    def _on_run_button_clicked(self) -> None:
        self.runRequested.emit()

    def _on_pause_button_clicked(self, checked: bool) -> None:
        if checked:
            self.queue.pause()
        else:
            self.queue.resume()

    def _on_clear_button_clicked(self) -> None:
        self.queue.clear_finished()

    def _on_rows_moved(
        self, _parent: QModelIndex, start: int, _end: int, _dest: QModelIndex, row: int
    ) -> None:
        job = self.job_at(start)
        if job is None or job.status is not JobStatus.QUEUED:
            self.refresh()
            return
        target = row - 1 if row > start else row  # the row it lands on, once it has left ``start``
        others = [other for other in self.jobs if other.id != job.id]
        index = sum(other.status is JobStatus.QUEUED for other in others[:target])
        if not self.queue.move_to(job.id, index):
            self.refresh()

    def _on_list_custom_context_menu_requested(self, pos: QPoint) -> None:
        job = self.job_at(self.list.indexAt(pos).row())
        if job is not None:
            self.context_menu(job).exec(self.list.viewport().mapToGlobal(pos))

    def context_menu(self, job: Job) -> QMenu:
        """The menu for ``job``, offering only the operations its status allows."""
        menu = QMenu(self)
        queued = job.status is JobStatus.QUEUED
        cancellable = job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.INTERRUPTED)
        entries = (
            ("Cancel", cancellable, self.cancel),
            ("Remove", job.status is not JobStatus.RUNNING, self.remove),
            ("Move up", queued, self.move_up),
            ("Move down", queued, self.move_down),
            ("Move to top", queued, self.move_to_top),
            ("Retry", job.status in RETRYABLE_STATUSES, self.retry),
            ("Load into the editor", True, self.load),
        )
        for text, enabled, slot in entries:
            action = menu.addAction(text)
            action.setEnabled(enabled)
            action.triggered.connect(lambda _checked=False, slot=slot: slot(job.id))
        return menu
