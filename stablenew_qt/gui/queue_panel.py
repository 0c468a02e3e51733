"""QueuePanel: the jobs still to run (running, queued, interrupted) as a list the user reorders,
cancels, retries and runs, with the running job's progress. Finished jobs are in the
:class:`~stablenew_qt.gui.history_panel.HistoryPanel`.

Like napari's widgets it takes its model and listens to its events: the queue's changes arrive as
``bridge.queueChanged`` (from whichever thread changed it), and the list is read again. Every read
and write goes through the :class:`~stablenew_qt.gui.queue_client.QueueClient`, on its thread, so
the GUI thread never waits for SQLite; running jobs is the engine thread's work (the window asks
the :class:`~stablenew_qt.gui.engine_host.EngineHost`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial

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
from ..core.events import QueueChanged, RunCancelled, RunCompleted, RunFailed, StageStarted, StepProgress
from ..core.field_labels import message_in_user_words
from ..core.job_group import JobGroup
from ..core.queue import RETRYABLE_STATUSES, Job, JobQueue, JobStatus, QueueError
from .bridge import EventBridge
from .queue_client import QueueClient

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


#: What the Queue tab says when it holds no job.
EMPTY_QUEUE = (
    "The queue is empty. Generate runs the current settings at once; Add to queue keeps them here "
    "for later, to run with Run queue. Finished jobs are in History."
)


def job_text(job: Job) -> str:
    """One line for ``job``: id, status, model and the start of its prompt (and its error)."""
    prompt = str(job.config_data.get("prompt") or "").replace("\n", " ")
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    text = f"#{job.id}  {job.status.value}  {job.model}  {prompt}".rstrip()
    return f"{text}  — {message_in_user_words(job.error)}" if job.error else text


MenuEntry = tuple[str, bool, Callable[[int], object]]


def job_menu(parent: QWidget, job_id: int, entries: Iterable[MenuEntry]) -> QMenu:
    """A context menu of (text, enabled, operation) entries; each action calls ``operation(job_id)``."""
    menu = QMenu(parent)
    add_entries(menu, job_id, entries)
    return menu


def add_entries(menu: QMenu, target_id: int, entries: Iterable[MenuEntry]) -> None:
    """Add (text, enabled, operation) entries to ``menu``; each calls ``operation(target_id)``."""
    for text, enabled, operation in entries:
        action = menu.addAction(text)
        action.setEnabled(enabled)
        action.triggered.connect(lambda _checked=False, operation=operation: operation(target_id))


class QueuePanel(QWidget):
    """Lists the jobs of ``client``'s queue still to run: the running one, the queued ones in run
    order, then the interrupted ones. ``bridge`` brings the queue's changes and feeds the running
    job's progress bar.

    Queued jobs can be dragged into a new order; the context menu offers every queue operation.
    Interrupted jobs found at start are offered for resume in a banner (:meth:`offer_resume`).
    """

    #: "Load into the editor" was chosen for a job (its RunConfig).
    loadRequested = Signal(object)
    #: "Run queue" was pressed: the window hands this to the EngineHost.
    runRequested = Signal()
    #: "Run now" was chosen for a queued job (its id): the window hands this to the EngineHost.
    runJobRequested = Signal(int)
    #: How many jobs are queued changed (for the status bar).
    queuedCountChanged = Signal(int)
    #: A queue operation was refused (message for the user).
    errorOccurred = Signal(str)
    #: The list now shows the queue as it was when read (after :meth:`refresh`).
    listed = Signal()

    def __init__(self, client: QueueClient, bridge: EventBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.jobs: list[Job] = []
        self.groups: dict[int, JobGroup] = {}  # the groups of the jobs listed
        self.paused = False
        self._offered: list[int] = []
        self._detached = self._listing = self._stale = False
        self._build()
        self._bridge = bridge
        bridge.queueChanged.connect(self._on_queue_changed)
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
        self.empty_label = QLabel(EMPTY_QUEUE)
        self.empty_label.setObjectName("queue.empty")
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.empty_label)
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
        """Stop following the queue (the window is closing)."""
        self._detached = True
        self._bridge.queueChanged.disconnect(self._on_queue_changed)

    def _on_queue_changed(self, _event: QueueChanged) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Read the queue (on the queue thread) and show it as it is then; :attr:`listed` follows.
        Refreshes asked for meanwhile are folded into one more."""
        if self._detached:
            return
        if self._listing:
            self._stale = True
            return
        self._listing = True
        self.client.call(lambda: _read_active(self.client.queue), self._on_active_read, self._on_read_failed)

    def _on_read_failed(self, message: str) -> None:
        self._listing = False
        self.errorOccurred.emit(message)

    def _on_active_read(self, listing: tuple[list[Job], bool, dict[int, JobGroup]]) -> None:
        self._listing = False
        if self._stale:
            self._stale = False
            self.refresh()
            return
        if not self._detached:
            self._show(*listing)
            self.listed.emit()

    def _show(self, jobs: list[Job], paused: bool, groups: dict[int, JobGroup] | None = None) -> None:
        self.jobs, self.paused, self.groups = jobs, paused, groups or {}
        self.list.blockSignals(True)
        self.list.clear()
        for job in self.jobs:
            self.list.addItem(self._item(job))
        self.list.blockSignals(False)
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.empty_label.setVisible(not self.jobs)
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

    def resume_interrupted(self, job_ids: list[int], on_done: Callable[[int], object] | None = None) -> None:
        """Queue the interrupted jobs ``job_ids`` again at the front (in that order), then ask for
        the queue to run; ``on_done`` gets how many were queued."""
        self.banner.setVisible(False)

        def resumed(count: int) -> None:
            if count:
                self.runRequested.emit()
            if on_done is not None:
                on_done(count)

        self.client.call(lambda: _retry_first(self.client.queue, job_ids), resumed)

    def _on_resume_button_clicked(self) -> None:
        self.resume_interrupted(self._offered)

    def _on_dismiss_button_clicked(self) -> None:
        self.banner.setVisible(False)

    def _item(self, job: Job) -> QListWidgetItem:
        text = job_text(job)
        group = self.groups.get(job.group_id) if job.group_id is not None else None
        if group is not None:
            text += f"  [group {group.id}: {group.label}{', paused' if group.paused else ''}]"
        item = QListWidgetItem(QIcon(self.style().standardIcon(STATUS_ICONS[job.status])), text)
        item.setData(JOB_ID_ROLE, job.id)
        item.setToolTip(
            message_in_user_words(job.error) if job.error else job.config_data.get("prompt", "") or ""
        )
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
    # Each runs on the queue thread; a refusal comes back as :attr:`errorOccurred`.
    def cancel(self, job_id: int) -> None:
        """Cancel a queued or interrupted job, or ask the running one to stop at its next step."""
        self.client.call(lambda: self.client.session.cancel(job_id), on_error=self.errorOccurred.emit)

    def cancel_group(self, group_id: int) -> None:
        """Cancel every job of the group still to run; its running job stops at its next step."""
        self.client.call(lambda: self.client.session.cancel_group(group_id), on_error=self.errorOccurred.emit)

    def set_group_paused(self, group_id: int, paused: bool) -> None:
        """Start none of the group's jobs (``paused``) or let them run again; others still run."""
        queue = self.client.queue
        pause = queue.pause_group if paused else queue.resume_group
        self.client.call(lambda: pause(group_id), on_error=self.errorOccurred.emit)

    def move_group(self, group_id: int, *, top: bool) -> None:
        """Move the group's queued jobs before (``top``) or after every other queued job."""
        self.client.call(
            lambda: self.client.queue.move_group(group_id, top=top), on_error=self.errorOccurred.emit
        )

    def remove(self, job_id: int) -> None:
        """Delete a job that is not running (its images stay on disk)."""
        self.client.call(lambda: self.client.queue.remove(job_id), on_error=self.errorOccurred.emit)

    def retry(self, job_id: int) -> None:
        """Queue a failed, cancelled or interrupted job again, at the end."""
        self.client.call(lambda: self.client.queue.retry(job_id), on_error=self.errorOccurred.emit)

    def move_up(self, job_id: int) -> None:
        self.client.call(lambda: self.client.queue.move_up(job_id), on_error=self.errorOccurred.emit)

    def move_down(self, job_id: int) -> None:
        self.client.call(lambda: self.client.queue.move_down(job_id), on_error=self.errorOccurred.emit)

    def move_to_top(self, job_id: int) -> None:
        self.client.call(lambda: self.client.queue.move_to_top(job_id), on_error=self.errorOccurred.emit)

    def load(self, job_id: int) -> None:
        """Emit :attr:`loadRequested` with the job's RunConfig (an error message if it is gone or
        no longer validates)."""
        load_config(self.client, job_id, self.loadRequested.emit, self.errorOccurred.emit)

    # -- slots ---------------------------------------------------------------------------------
    def _on_run_button_clicked(self) -> None:
        self.runRequested.emit()

    def _on_pause_button_clicked(self, checked: bool) -> None:
        if checked:
            self.client.set_paused(True)
            return
        # Resume starts the queue too (issue 17, item 8: a second "Run queue" click was needed),
        # once the queue thread has un-paused it.
        self.client.call(lambda: self.client.queue.resume(), lambda _none: self.runRequested.emit())

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
        self.client.move_to(job.id, index, on_done=lambda moved: None if moved else self.refresh())

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
        menu = job_menu(self, job.id, entries)
        group = self.groups.get(job.group_id) if job.group_id is not None else None
        if group is not None:
            self._add_group_entries(menu, group)
        return menu

    def _add_group_entries(self, menu: QMenu, group: JobGroup) -> None:
        """The group's operations, after the job's: the whole sweep, pack or wildcards run at once."""
        members = [j for j in self.jobs if j.group_id == group.id]  # those listed are still to run
        queued = any(j.status is JobStatus.QUEUED for j in members)
        menu.addSection(f"Group {group.id}: {group.label}")
        entries: tuple[MenuEntry, ...] = (
            ("Move the group to the top", queued, partial(self.move_group, top=True)),
            ("Move the group to the bottom", queued, partial(self.move_group, top=False)),
            (
                "Resume the group" if group.paused else "Pause the group",
                True,
                partial(self.set_group_paused, paused=not group.paused),
            ),
            (f"Cancel the group ({len(members)} job(s) still to run)", bool(members), self.cancel_group),
        )
        add_entries(menu, group.id, entries)


def load_config(
    client: QueueClient, job_id: int, loaded: Callable[[RunConfig], None], report: Callable[[str], None]
) -> None:
    """Read job ``job_id``'s RunConfig on the queue thread and pass it to ``loaded``, or pass
    ``report`` a message (the job is gone, or its config no longer validates)."""
    client.config_of(job_id, loaded, lambda message: report(f"Cannot load job {job_id}: {message}"))


def _read_active(queue: JobQueue) -> tuple[list[Job], bool, dict[int, JobGroup]]:
    jobs = queue.list(status=ACTIVE_STATUSES)
    wanted = {job.group_id for job in jobs if job.group_id is not None}
    groups = {group.id: group for group in queue.groups() if group.id in wanted} if wanted else {}
    return jobs, queue.paused, groups


def _retry_first(queue: JobQueue, job_ids: list[int]) -> int:
    resumed = 0
    for job_id in reversed(job_ids):  # each goes before every queued job: keep their order
        try:
            queue.retry(job_id, front=True)
            resumed += 1
        except QueueError as exc:  # cancelled or removed meanwhile
            log.info("not resuming job %s: %s", job_id, exc)
    return resumed
