"""QueuePanel: the jobs still to run (running, queued, interrupted) as a list the user reorders,
cancels, retries and runs, with the running job's progress. Finished jobs are in the
:class:`~stablenew_qt.gui.history_panel.HistoryPanel`.

Like napari's widgets it takes its model, :class:`~stablenew_qt.core.queue.JobQueue`, and listens
to its events: ``JobQueue.subscribe`` calls back on whichever thread changed the queue (the engine
thread while a job runs), so the callback only emits a queued signal and the list is rebuilt on the
GUI thread. User actions write straight to the queue (quick SQLite transactions); running jobs is
the :class:`~stablenew_qt.gui.queue_worker.QueueWorker`'s work, on the engine thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QFont, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.events import RunCancelled, RunCompleted, RunFailed, StageStarted, StepProgress
from ..core.queue import RETRYABLE_STATUSES, Job, JobQueue, JobStatus, QueueChanged, QueueError
from .bridge import EventBridge

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
#: The jobs the queue panel lists; the others are the history.
ACTIVE_STATUSES = (JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.INTERRUPTED)


def job_text(job: Job) -> str:
    """One line for ``job``: id, status, model and the start of its prompt (and its error)."""
    prompt = str(job.config_data.get("prompt") or "").replace("\n", " ")
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    text = f"#{job.id}  {job.status.value}  {job.model}  {prompt}".rstrip()
    return f"{text}  — {job.error}" if job.error else text


def job_config(queue: JobQueue, job_id: int, report: Callable[[str], object]) -> RunConfig | None:
    """Job ``job_id``'s RunConfig, or None after passing ``report`` a message (the job is gone, or
    its config no longer validates)."""
    try:
        return queue.get(job_id).config
    except (ConfigError, QueueError) as exc:
        report(f"Cannot load job {job_id}: {exc}")
        return None


MenuEntry = tuple[str, bool, Callable[[int], object]]


def job_menu(parent: QWidget, job_id: int, entries: Iterable[MenuEntry]) -> QMenu:
    """A context menu of (text, enabled, operation) entries; each action calls ``operation(job_id)``."""
    menu = QMenu(parent)
    for text, enabled, operation in entries:
        action = menu.addAction(text)
        action.setEnabled(enabled)
        action.triggered.connect(lambda _checked=False, operation=operation: operation(job_id))
    return menu


class QueuePanel(QWidget):
    """Lists the jobs of ``queue`` still to run: the running one, the queued ones in run order,
    then the interrupted ones. ``bridge`` (optional) feeds the running job's progress bar.

    Queued jobs can be dragged into a new order; the context menu offers every queue operation.
    Interrupted jobs found at start are offered for resume in a banner (:meth:`offer_resume`).
    """

    #: "Load into the editor" was chosen for a job (its RunConfig).
    loadRequested = Signal(object)
    #: "Run queue" was pressed: the window hands this to the QueueWorker.
    runRequested = Signal()
    #: "Run now" was chosen for a queued job (its id): the window hands this to the QueueWorker.
    runJobRequested = Signal(int)
    #: How many jobs are queued changed (for the status bar).
    queuedCountChanged = Signal(int)
    #: A queue operation was refused (message for the user).
    errorOccurred = Signal(str)

    _queueChanged = Signal()

    def __init__(
        self, queue: JobQueue, bridge: EventBridge | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.queue = queue
        self.jobs: list[Job] = []
        self._offered: list[int] = []
        self._detached = False
        self._build()
        self._queueChanged.connect(self._on_queue_changed, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe = queue.subscribe(self._on_queue_event)
        if bridge is not None:
            bridge.stageStarted.connect(self._on_stage_started)
            bridge.stepProgress.connect(self._on_step_progress)
            for ended in (bridge.runCompleted, bridge.runFailed, bridge.runCancelled):
                ended.connect(self._on_run_ended)
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
        self.count_label = QLabel("")
        self.count_label.setObjectName("status.queued")
        self.count_label.setToolTip("Jobs waiting in the queue")
        self.progress = QProgressBar()
        self.progress.setObjectName("queue.progress")
        self.progress.setRange(0, 1000)
        self.progress.setToolTip("Progress of the running job")
        self.progress.setVisible(False)
        buttons = QHBoxLayout()
        for button in (self.run_button, self.pause_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_banner())
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.list, 1)

    def _build_banner(self) -> QFrame:
        self.banner = QFrame()
        self.banner.setObjectName("queue.interrupted_banner")
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner_label = QLabel("")
        self.banner_label.setWordWrap(True)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Queue the interrupted jobs again, first, and run the queue")
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.dismiss_button = QPushButton("Not now")
        self.dismiss_button.setToolTip("Leave them interrupted (retry or cancel them from their menu)")
        self.dismiss_button.clicked.connect(self._on_dismiss_button_clicked)
        row = QHBoxLayout(self.banner)
        row.addWidget(self.banner_label, 1)
        row.addWidget(self.resume_button)
        row.addWidget(self.dismiss_button)
        self.banner.setVisible(False)
        return self.banner

    # -- following the queue ---------------------------------------------------------------
    def detach(self) -> None:
        """Stop listening to the queue (the window is closing; the queue outlives it, or is closed
        right after: a change notified before this is then ignored)."""
        self._detached = True
        self._unsubscribe()

    def _on_queue_event(self, _event: QueueChanged) -> None:
        # Any thread: only hand over to the GUI thread.
        self._queueChanged.emit()

    def _on_queue_changed(self) -> None:
        if not self._detached:
            self.refresh()

    def refresh(self) -> None:
        """Show the queue as it is now."""
        self.jobs = self.queue.list(status=ACTIVE_STATUSES)
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
        if self.running_job() is None:
            self.progress.setVisible(False)
        offered = set(self._offered)
        still = [job for job in self.jobs if job.status is JobStatus.INTERRUPTED and job.id in offered]
        if not self.banner.isHidden() and not still:
            self.banner.setVisible(False)

    def running_job(self) -> Job | None:
        """The running job as last listed (None if none runs)."""
        return next((job for job in self.jobs if job.status is JobStatus.RUNNING), None)

    # -- the running job's progress ------------------------------------------------------------
    def _on_stage_started(self, event: StageStarted) -> None:
        self._show_progress(f"stage {event.index + 1}/{event.total_stages} {event.stage}", None)

    def _on_step_progress(self, event: StepProgress) -> None:
        name = event.label or str(event.stage)
        text = f"stage {event.index + 1}/{event.total_stages} {name}: step {event.step}/{event.total_steps}"
        self._show_progress(text, event.fraction)

    def _show_progress(self, text: str, fraction: float | None) -> None:
        job = self.running_job()
        if job is None:  # a run outside the queue, or the list has not caught up yet
            return
        if fraction is not None:
            self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"#{job.id}: {text} (%p%)")
        self.progress.setVisible(True)

    def _on_run_ended(self, _event: RunCompleted | RunFailed | RunCancelled) -> None:
        self.progress.setVisible(False)
        self.progress.setValue(0)

    # -- interrupted jobs -------------------------------------------------------------------
    def offer_resume(self, jobs: list[Job]) -> None:
        """Show the banner offering to resume ``jobs`` (interrupted; none: hide it)."""
        self._offered = [job.id for job in jobs]
        if not jobs:
            self.banner.setVisible(False)
            return
        ids = ", ".join(f"#{job.id}" for job in jobs)
        noun = "job was" if len(jobs) == 1 else "jobs were"
        self.banner_label.setText(
            f"{len(jobs)} {noun} interrupted when the app last stopped ({ids}). Resume to run "
            "them again first; their finished images are kept."
        )
        self.banner.setVisible(True)

    def resume_interrupted(self, job_ids: list[int]) -> int:
        """Queue the interrupted jobs ``job_ids`` again at the front (in that order) and ask for
        the queue to run. Returns how many were queued."""
        resumed = 0
        for job_id in reversed(job_ids):  # each goes before every queued job: keep their order
            try:
                self.queue.retry(job_id, front=True)
                resumed += 1
            except QueueError as exc:  # cancelled or removed meanwhile
                log.info("not resuming job %s: %s", job_id, exc)
        self.banner.setVisible(False)
        if resumed:
            self.runRequested.emit()
        return resumed

    def _on_resume_button_clicked(self) -> None:
        self.resume_interrupted(self._offered)

    def _on_dismiss_button_clicked(self) -> None:
        self.banner.setVisible(False)

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
        config = job_config(self.queue, job_id, self.errorOccurred.emit)
        if config is not None:
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
        queued = job.status is JobStatus.QUEUED
        cancellable = job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.INTERRUPTED)
        entries: tuple[MenuEntry, ...] = (
            ("Run now", queued, self.runJobRequested.emit),
            ("Cancel", cancellable, self.cancel),
            ("Remove", job.status is not JobStatus.RUNNING, self.remove),
            ("Move up", queued, self.move_up),
            ("Move down", queued, self.move_down),
            ("Move to top", queued, self.move_to_top),
            ("Retry", job.status in RETRYABLE_STATUSES, self.retry),
            ("Load into the editor", True, self.load),
        )
        return job_menu(self, job.id, entries)
