"""MainWindow: prompt, stage cards, run controls, progress, results, log, status bar.

The window owns one ConfigModel (what the widgets edit), one EventBridge (core events as signals)
and one EngineThread (the QThread that owns the AppController and the executor). It never waits
on the engine, except when closing, after cancelling the run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.events import LifecycleChanged, RunCompleted, RunFailed, RunStarted
from ..core.infotext import config_from_image
from ..core.lifecycle import TERMINAL_STATES, LifecycleState
from ..core.queue import Job, JobQueue, JobStatus, QueueError
from .adetailer_card import ADetailerCard
from .bridge import EventBridge
from .config_model import ConfigModel, section_of
from .engine_thread import EngineThread
from .history_panel import HistoryPanel
from .log_panel import LogPanel
from .menus import ModelsMenu, ViewMenu
from .progress_panel import ProgressPanel
from .prompt_panel import InputImagePanel, PromptPanel
from .queue_panel import QueuePanel
from .queue_worker import QueueWorker
from .results_panel import ResultsPanel
from .services import AppServices
from .settings import AppSettings
from .stage_cards import Img2ImgCard, StageCard, Txt2ImgCard, UpscaleCard
from .trust_dialog import TrustOffer

log = logging.getLogger(__name__)

#: How long a finished run's state (COMPLETED, ERROR, CANCELLED) shows before returning to IDLE.
RECOVER_DELAY_MS = 1500


class MainWindow(QMainWindow):
    """The StableNew Qt main window. ``services`` supplies the engine; ``settings`` persists state."""

    #: The status bar's config-error text changed ("" when the config is valid).
    configErrorChanged = Signal(str)

    def __init__(
        self,
        services: AppServices,
        settings: QSettings,
        parent: QWidget | None = None,
        *,
        queue: JobQueue | None = None,
    ) -> None:
        super().__init__(parent)
        self.queue = queue  # None: no queue panel (the caller owns and closes the queue)
        self.setWindowTitle("StableNew Qt")
        self.setAcceptDrops(True)
        self.services = services
        self.settings = AppSettings(settings, services)
        self.model = ConfigModel(self.settings.last_config(), self)
        self.bridge = EventBridge(self)
        self.engine = EngineThread(
            services.make_executor(self.settings.models_dir, self.settings.memory_mode),
            self.settings.output_dir,
            self.bridge,
            self,
            describe_device=services.describe_device,
            warm_up=services.warm_up,
            save_intermediates=self.settings.save_intermediates,
        )
        self.choices = services.list_models(self.settings.models_dir)
        if not self.model.get("txt2img.model") and self.choices.checkpoints:
            self.model.set("txt2img.model", self.choices.checkpoints[0])
        self._busy = False
        self._closed = False
        self._build_widgets()
        self._build_controls()
        self.models_menu = ModelsMenu(self)
        self.menuBar().addMenu(self.models_menu)
        self.menuBar().addMenu(ViewMenu(self))
        if self.queue_worker is not None:
            self.menuBar().addMenu(self._queue_menu(self.queue_worker))
        self.recover_timer = QTimer(self)
        self.recover_timer.setSingleShot(True)
        self.recover_timer.setInterval(RECOVER_DELAY_MS)
        self.recover_timer.timeout.connect(self._on_recover_timer_timeout)
        self.model.validityChanged.connect(self._on_validity_changed)
        self.bridge.lifecycleChanged.connect(self._on_lifecycle_changed)
        self.bridge.runStarted.connect(self._on_run_started)
        self.bridge.runCompleted.connect(self._on_run_completed)
        self.bridge.runFailed.connect(self._on_run_failed)
        self.engine.worker.submitRejected.connect(self._on_submit_rejected)
        self.engine.worker.deviceDescribed.connect(self._on_device_described)
        self.trust_offer = TrustOffer(
            services, self.bridge, self, self._run_again_after_trust, self.generate_button.isEnabled
        )
        self._on_validity_changed(self.model.error)
        self.settings.restore_window(self)

    # -- layout ----------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.prompt_panel = PromptPanel(self.model)
        self.input_panel = InputImagePanel(self.model)
        self.cards: dict[str, StageCard] = {
            "txt2img": Txt2ImgCard(self.model, self.choices),
            "img2img": Img2ImgCard(self.model, self.choices),
            "upscale": UpscaleCard(self.model, self.choices),
            "adetailer": ADetailerCard(self.model, self.choices),
        }
        column = QWidget()
        cards = QVBoxLayout(column)
        cards.addWidget(self.input_panel)
        for card in self.cards.values():
            cards.addWidget(card)
        cards.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(column)
        editors = QSplitter(Qt.Orientation.Vertical)
        editors.addWidget(self.prompt_panel)
        editors.addWidget(scroll)
        editors.setStretchFactor(1, 3)
        left = QWidget()
        self._left_layout = QVBoxLayout(left)
        self._left_layout.setContentsMargins(0, 0, 0, 0)
        self._left_layout.addWidget(editors, 1)
        self.progress_panel = ProgressPanel(self.bridge)
        self.results_panel = ResultsPanel(self.bridge, self.settings.output_dir)
        self.results_panel.useSettingsRequested.connect(self._on_use_settings_requested)
        self.log_panel = LogPanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.progress_panel, "Progress")
        self.tabs.addTab(self.results_panel, "Results")
        self.tabs.addTab(self.log_panel, "Log")
        self.queue_panel: QueuePanel | None = None
        self.history_panel: HistoryPanel | None = None
        self.queue_worker: QueueWorker | None = None
        if self.queue is not None:
            self._build_queue(self.queue)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(1, 1)
        self.setCentralWidget(self.splitter)

    def _build_queue(self, queue: JobQueue) -> None:
        self.queue_panel = QueuePanel(queue, self.bridge)
        self.history_panel = HistoryPanel(queue)
        self.queue_worker = worker = QueueWorker(queue, self.engine)
        worker.runner.pause_on_failure = self.settings.pause_on_failure
        self.queue_panel.runRequested.connect(worker.request_run)
        self.queue_panel.runJobRequested.connect(worker.request_job)
        for panel in (self.queue_panel, self.history_panel):
            panel.loadRequested.connect(self.apply_config)
            panel.errorOccurred.connect(self._on_queue_error_occurred)
        self.history_panel.requeued.connect(self._on_history_requeued)
        worker.queueRejected.connect(self._on_queue_error_occurred)
        worker.interruptedFound.connect(self._on_interrupted_found)
        worker.jobFinished.connect(self._on_job_finished)
        self.tabs.addTab(self.queue_panel, "Queue")
        self.tabs.addTab(self.history_panel, "History")
        worker.request_recover()  # before the warm-up: quick, and the banner shows at once

    def _queue_menu(self, worker: QueueWorker) -> QMenu:
        menu = QMenu("&Queue", self)
        menu.setObjectName("menu.queue")
        self.auto_resume_action = menu.addAction("Resume interrupted jobs at start")
        self.auto_resume_action.setToolTip(
            "Jobs a crash or closing the app interrupted run again first when the app starts"
        )
        self.auto_resume_action.setCheckable(True)
        self.auto_resume_action.setChecked(self.settings.auto_resume)
        self.auto_resume_action.toggled.connect(self._on_auto_resume_action_toggled)
        self.pause_on_failure_action = menu.addAction("Pause the queue when a job fails")
        self.pause_on_failure_action.setToolTip("Otherwise the next job runs after a failed one")
        self.pause_on_failure_action.setCheckable(True)
        self.pause_on_failure_action.setChecked(worker.runner.pause_on_failure)
        self.pause_on_failure_action.toggled.connect(self._on_pause_on_failure_action_toggled)
        return menu

    def _on_auto_resume_action_toggled(self, on: bool) -> None:
        self.settings.auto_resume = on

    def _on_pause_on_failure_action_toggled(self, on: bool) -> None:
        self.settings.pause_on_failure = on
        if self.queue_worker is not None:
            self.queue_worker.runner.pause_on_failure = on  # read between jobs, on the engine thread

    def _build_controls(self) -> None:
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Run the enabled stages (Ctrl+Enter)")
        self.generate_button.clicked.connect(self._on_generate_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run after the current step (Esc)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        row = QHBoxLayout()
        row.addWidget(self.generate_button, 1)
        self.add_to_queue_button = QPushButton("Add to queue")
        self.add_to_queue_button.setToolTip("Append the current settings to the job queue")
        self.add_to_queue_button.setVisible(self.queue is not None)
        self.add_to_queue_button.clicked.connect(self._on_add_to_queue_clicked)
        row.addWidget(self.add_to_queue_button)
        row.addWidget(self.cancel_button)
        self._left_layout.addLayout(row)  # always visible under the editors
        for keys, slot in (
            ("Ctrl+Return", self._on_generate_clicked),
            ("Ctrl+Enter", self._on_generate_clicked),
            ("Esc", self._on_cancel_clicked),
        ):
            QShortcut(QKeySequence(keys), self).activated.connect(slot)
        self.lifecycle_label = QLabel(LifecycleState.IDLE.value)
        self.lifecycle_label.setObjectName("status.lifecycle")
        self.lifecycle_label.setToolTip("Run state")
        self.error_label = QLabel("")
        self.error_label.setObjectName("status.config_error")
        self.error_label.setProperty("role", "error")
        self.statusBar().addWidget(self.error_label, 1)
        if self.queue_panel is not None:
            self.statusBar().addPermanentWidget(self.queue_panel.count_label)
        self.device_label = QLabel("")
        self.device_label.setObjectName("status.device")
        self.device_label.setToolTip("Device, precision and GPU memory in use (after each run)")
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().addPermanentWidget(self.lifecycle_label)

    def show_status(self, text: str, timeout_ms: int) -> None:
        """A status bar message for ``timeout_ms``; dropped once the window is closing (queued
        signals from the engine thread can still arrive then)."""
        if not self._closed:
            self.statusBar().showMessage(text, timeout_ms)

    # -- run controls ----------------------------------------------------------------------
    def _update_buttons(self) -> None:
        # With a queue, Generate while a job runs puts the new job first in line.
        can_wait = self.queue_worker is not None
        self.generate_button.setEnabled(self.model.error is None and (can_wait or not self._busy))
        self.cancel_button.setEnabled(self._busy)
        self.add_to_queue_button.setEnabled(self.model.error is None)

    def _on_generate_clicked(self) -> None:
        if self.model.error is not None:
            return
        if self.queue is not None and self.queue_worker is not None:
            self._generate_through_queue(self.queue, self.queue_worker)
            return
        if self._busy:
            return
        self.recover_timer.stop()
        self._busy = True
        self._update_buttons()
        self.tabs.setCurrentWidget(self.progress_panel)
        self.engine.submit(self.model.config)

    def _generate_through_queue(self, queue: JobQueue, worker: QueueWorker) -> None:
        """Generate with a queue: the job goes first in line and runs as soon as the engine is
        free, even while the queue is paused, so it is in the history like every other job."""
        try:
            job = queue.add_front(self.model.config)[0]
        except QueueError as exc:
            self._on_queue_error_occurred(str(exc))
            return
        worker.request_job(job.id)
        if self._busy:
            self.show_status(f"Job #{job.id} runs next, after the running one", 5000)
            return
        self.recover_timer.stop()
        self.tabs.setCurrentWidget(self.progress_panel)

    def _run_again_after_trust(self, run_id: str) -> None:
        """The user trusted the detector a run failed on: run it again. A queued job (Run queue,
        or Generate) is retried, first in line, with the settings it was queued with; a direct
        run is generated again from the editor."""
        if self.queue is not None and self.queue_worker is not None and run_id:
            failed = [job for job in self.queue.list(status=JobStatus.FAILED) if job.run_id == run_id]
            if failed:
                try:
                    self.queue.retry(failed[0].id, front=True)
                except QueueError as exc:  # removed or retried meanwhile
                    self._on_queue_error_occurred(str(exc))
                    return
                self.queue_worker.request_job(failed[0].id)
                return
        self._on_generate_clicked()

    def _on_add_to_queue_clicked(self) -> None:
        if self.queue is None or self.model.error is not None:
            return
        try:
            job = self.queue.add(self.model.config)[0]
        except QueueError as exc:
            self._on_queue_error_occurred(str(exc))
            return
        self.show_status(f"Added to the queue as job #{job.id}", 3000)

    def report_queue_problem(self, message: str) -> QMessageBox:
        """Tell the user the queue file could not be opened (the window runs without a queue):
        a warning that does not block (the event loop and the engine go on)."""
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Job queue unavailable",
            f"The job queue could not be opened, so this session runs without it "
            f"(Generate still works; the Queue and History tabs are off).\n\n{message}",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setObjectName("dialog.queue_problem")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.show_status("Job queue unavailable: see the message", 30000)
        return box

    def _on_queue_error_occurred(self, message: str) -> None:
        self.show_status(f"Queue: {message}", 15000)

    def _on_history_requeued(self, job: Job) -> None:
        self.show_status(f"Queued again as job #{job.id} (Run queue starts it)", 5000)

    def _on_job_finished(self, job: Job) -> None:
        if job.status is JobStatus.FAILED and job.error:
            self.show_status(f"Job #{job.id} failed: {job.error}", 15000)

    def _on_interrupted_found(self, jobs: list[Job]) -> None:
        if not jobs or self.queue_panel is None or self._closed:
            return
        if self.settings.auto_resume:
            count = self.queue_panel.resume_interrupted([job.id for job in jobs])
            self.show_status(f"Resuming {count} interrupted job(s)", 10000)
            return
        self.queue_panel.offer_resume(jobs)
        self.show_status(f"{len(jobs)} job(s) were interrupted: see the Queue tab", 15000)

    def _on_cancel_clicked(self) -> None:
        if self._busy and self.engine.cancel():
            self.show_status("Cancelling…", 3000)

    def _on_submit_rejected(self, message: str) -> None:
        self._busy = False
        self._update_buttons()
        self._show_config_error(message)

    def _on_run_started(self, event: RunStarted) -> None:
        if event.seeds:
            self.prompt_panel.remember_seed(event.seeds[0])

    def _on_run_completed(self, event: RunCompleted) -> None:
        self.show_status(f"Saved {len(event.image_paths)} image(s) to {event.output_dir}", 10000)

    def _on_run_failed(self, event: RunFailed) -> None:
        self.show_status(f"Error: {event.message}", 15000)

    def _on_lifecycle_changed(self, event: LifecycleChanged) -> None:
        self.lifecycle_label.setText(event.new.value)
        if event.new is LifecycleState.RUNNING:
            self._busy = True
        elif event.new in TERMINAL_STATES:
            self._busy = False
            if not self._closed:
                self.recover_timer.start()
        self._update_buttons()

    def _on_device_described(self, text: str) -> None:
        self.device_label.setText(text)

    def _on_recover_timer_timeout(self) -> None:
        self.engine.recover()

    # -- validation --------------------------------------------------------------------------
    def _on_validity_changed(self, error: ConfigError | None) -> None:
        problems = error.problems if error else ()
        for name, card in self.cards.items():
            card.show_problems([p for p in problems if section_of(p) == name])
        self.prompt_panel.show_problems([str(p) for p in problems if section_of(p) == "prompt"])
        self.input_panel.show_problems([str(p) for p in problems if section_of(p) == "input"])
        self._show_config_error(str(error) if error else "")
        self._update_buttons()

    def _show_config_error(self, message: str) -> None:
        text = f"Config Error: {message.splitlines()[0]}" if message else ""
        self.error_label.setText(text)
        self.error_label.setToolTip(message)
        self.configErrorChanged.emit(text)

    # -- models and folders ----------------------------------------------------------------------
    @property
    def engine_busy(self) -> bool:
        """True while a run is submitted or running (engine settings must not change then)."""
        return self._busy

    def refresh_models(self) -> None:
        """List the models folder again and offer the names in every card."""
        self.choices = self.services.list_models(self.settings.models_dir)
        for card in self.cards.values():
            card.set_choices(self.choices)
        self.show_status(f"{len(self.choices.checkpoints)} checkpoint(s) found", 5000)

    def _replace_executor(self) -> None:
        executor = self.services.make_executor(self.settings.models_dir, self.settings.memory_mode)
        self.engine.set_executor(executor)

    def set_models_dir(self, folder: Path) -> None:
        self.settings.models_dir = folder
        self._replace_executor()
        self.refresh_models()

    def set_memory_mode(self, mode: str) -> None:
        self.settings.memory_mode = mode
        self._replace_executor()
        self.show_status(f"Memory mode: {mode} (from the next run)", 5000)

    def set_output_dir(self, folder: Path) -> None:
        self.settings.output_dir = folder
        self.engine.set_output(folder, self.settings.save_intermediates)
        self.results_panel.set_output_dir(folder)

    def set_save_intermediates(self, on: bool) -> None:
        """Keep each stage's images too, from the next run on (``intermediates/`` in its folder)."""
        self.settings.save_intermediates = on
        self.engine.set_output(self.settings.output_dir, on)

    # -- restoring settings --------------------------------------------------------------------
    def apply_config(self, config: RunConfig) -> None:
        """Show ``config`` in every widget (e.g. "use these settings")."""
        self.model.replace(config)

    def _on_use_settings_requested(self, path: Path) -> None:
        self.restore_from_image(path)

    def restore_from_image(self, path: Path) -> bool:
        """Restore the settings an image (ours or A1111's) was made with; False with a message if not."""
        try:
            self.apply_config(config_from_image(path))
        except ConfigError as exc:
            self.show_status(f"Cannot use {path.name}: {exc}", 15000)
            return False
        self.show_status(f"Settings restored from {path.name}", 5000)
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.restore_from_image(Path(url.toLocalFile()))
                event.acceptProposedAction()
                return

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        self.recover_timer.stop()
        self.settings.save_window(self)
        self.settings.save_config(self.model.config)
        if self.queue_worker is not None:
            self.queue_worker.interrupt_current()  # offered for resume at the next start
        for panel in (self.queue_panel, self.history_panel):
            if panel is not None:
                panel.detach()
        self.engine.shutdown()
        self.results_panel.shutdown()
        self.progress_panel.shutdown()
        self.statusBar().clearMessage()  # stops the message's timeout timer
        self.log_panel.detach()
        super().closeEvent(event)
