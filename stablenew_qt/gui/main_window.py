"""MainWindow: prompt, stage cards, run controls, progress, results, queue, history, log, status bar.

The window owns one ConfigModel (what the widgets edit), one Preferences (what it keeps between
sessions), the EngineSession it opens with core's one factory, one EventBridge (every core event as
a signal) and one EngineHost (the threads that serve the session). Generate and Add to queue both
make queue jobs; the window never waits on the engine or the disk, except when closing, after
interrupting the running job.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QRect, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.config import RunConfig
from ..core.errors import ConfigError, ConfigProblem
from ..core.events import InterruptedJobsFound, LifecycleChanged, RunStarted
from ..core.executor import Engine
from ..core.field_labels import all_in_user_words, in_user_words
from ..core.job_runner import JobRunnerFactory
from ..core.lifecycle import TERMINAL_STATES, LifecycleState
from ..core.outputs import OutputSettings, app_data_dir
from ..core.queue import Job, JobQueue
from ..core.session import SessionOptions, open_session
from ..core.user_settings import save_models_dir, save_workers, saved_workers
from ..core.workers import WorkersSetting
from .adetailer_card import ADetailerCard
from .background import Background
from .bridge import EventBridge
from .card_jumps import CardJumps
from .close_guard import CloseChoice, ask_close
from .config_model import ConfigModel, section_of
from .demo_notice import DemoNotice
from .dynamic_prompts import DynamicPrompts
from .engine_host import EngineHost
from .extra_networks_tab import ExtraNetworksTab
from .family_check import FamilyCheck
from .history_panel import HistoryPanel
from .image_actions import sent_to
from .image_drop import FileDropFilter
from .installed import missing_models
from .log_panel import LogPanel
from .menus import ModelsMenu, QueueMenu, ViewMenu
from .preferences import Preferences, WindowLayout
from .progress_panel import ProgressPanel
from .prompt_panel import InputImagePanel, PromptPanel
from .queue_panel import QueuePanel
from .restore import SettingsRestorer
from .results_panel import ResultsPanel
from .sampler_settings_dialog import SamplerSettingsEntry
from .services import AppServices, ModelChoices
from .stage_cards import Img2ImgCard, StageCard, Txt2ImgCard, UpscaleCard
from .stage_state import FAMILY_SIZES, FIRST_STEPS, family_of
from .status_bar import SessionStatus
from .styles_picker import STYLES_FILE, StylesPicker
from .sweep_panel import SweepPanel
from .theme import theme_manager
from .trust_dialog import TrustOffer
from .window_layout import LEFT_MIN_WIDTH, RIGHT_MIN_WIDTH, first_geometry, left_width
from .workers_dialog import WorkersDialog
from .workers_panel import WorkersPanel

log = logging.getLogger(__name__)

#: How long a finished run's state (COMPLETED, FAILED, CANCELLED) shows before returning to IDLE.
IDLE_DELAY_MS = 1500


class MainWindow(QMainWindow):
    """The StableNew Qt main window. ``services`` supplies the engine; ``settings`` persists the
    preferences. Jobs live in ``queue`` (the caller's, kept open) or in the file ``queue_path``
    (None: a temporary queue)."""

    #: The status bar's config-error text changed ("" when the config is valid).
    configErrorChanged = Signal(str)
    #: A models listing (Models > Refresh, a new models folder) arrived and was applied: the ModelChoices.
    modelsListed = Signal(object)

    def __init__(
        self,
        services: AppServices,
        settings: QSettings,
        parent: QWidget | None = None,
        *,
        queue: JobQueue | None = None,
        queue_path: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("StableNew Qt")
        self.setAcceptDrops(True)
        self.services = services
        self.prefs = Preferences(
            settings, models_dir=services.models_dir, output_dir=services.output_dir, parent=self
        )
        self.model = ConfigModel(self.prefs.last_config(), self)
        self.workers_setting = saved_workers(services.settings_file)
        self._saved_workers = self.workers_setting  # what settings.json holds (the dialog edits it)
        self.workers_problem = ""
        self.session = open_session(
            self._make_engine(), self._session_options(queue_path), queue=queue, job_runner=self._job_runner()
        )
        self.bridge = EventBridge(self)
        self.host = EngineHost(self.session, self.bridge, self)
        # At start-up the cards need their choices before the window shows (measured: 0.3 ms on the
        # demo folder, 48 ms on 500 files); later listings run on models_lister (issue 17).
        self.choices = services.list_models(self.prefs.models_dir)
        self.models_lister = Background(self)
        self._listing = 0  # the number of the models listing whose answer counts
        if not self.model.get("txt2img.model") and self.choices.checkpoints:
            first = self.choices.first_checkpoint()  # the user's own model, not a demo one
            self.model.set("txt2img.model", first)
            width, height = FAMILY_SIZES[family_of(first)]  # SD 1.5 starts at 512 x 512 (issue 17)
            self.model.set("txt2img.width", width)
            self.model.set("txt2img.height", height)
            self.model.set("txt2img.steps", FIRST_STEPS)
            if self.choices.detectors and self.model.get("adetailer.units.0.adetailer_model") not in (
                self.choices.detectors
            ):  # the default detector only when it is installed
                self.model.set("adetailer.units.0.adetailer_model", self.choices.detectors[0])
        self.family_check = FamilyCheck(services.check_families, self)
        self.styles_file = services.styles_file or app_data_dir() / STYLES_FILE
        self._busy = False
        self._closed = False
        #: Closing during a run asks what to do with the job (tests that close at teardown turn it off).
        self.ask_before_closing = True
        self.close_question: QMessageBox | None = None
        self._close_chosen = self._quit_when_idle = False
        self._build_widgets()
        self._build_controls()
        self._build_menus()
        self.idle_timer = QTimer(self)
        self.idle_timer.setSingleShot(True)
        self.idle_timer.setInterval(IDLE_DELAY_MS)
        self.idle_timer.timeout.connect(self.host.return_to_idle)
        self._connect_session()
        self._follow_preferences()
        self.trust_offer = TrustOffer(services, self.bridge, self, self.host.retry_now)
        self._on_validity_changed(self.model.error)
        self._check_families()
        self._restore_layout(self.prefs.window_layout())
        self.host.take_over_queue()  # before the warm-up: quick, and the banner shows at once
        self.demo_notice = DemoNotice(self, settings, self.models_menu.choose_models_folder)
        self.demo_notice.offer(self.choices, self.prefs.models_dir)

    def _job_runner(self) -> JobRunnerFactory | None:
        """The job runner the saved workers setting asks for (None: this process's engine). Only
        called when the setting is on, so Ray is never imported otherwise."""
        setting, make = self.workers_setting, self.services.job_runner_for
        if not setting.enabled:
            return None
        if make is None:  # a build without the cluster binding (tests): say so, never pretend
            self.workers_problem = f"Workers {setting}: not in this build; jobs run on this GPU"
            self.workers_setting = WorkersSetting(models_dir=setting.models_dir)
            return None
        try:
            return make(setting, self.prefs.models_dir, self.prefs.memory_mode)
        except ConfigError as exc:  # e.g. Ray is not installed: run here and say so
            log.warning("workers %s cannot start: %s", setting, exc)
            self.workers_problem = f"Workers {setting} cannot start, so jobs run on this GPU: {exc}"
            self.workers_setting = WorkersSetting(models_dir=setting.models_dir)
            return None

    def open_workers_dialog(self) -> WorkersDialog:
        """The Workers dialog (Queue > Workers…), shown without blocking; OK saves for the next start."""

        file = self.services.settings_file
        # Opens on what was saved (read at start, not from the disk now); saves on its own thread.
        dialog = WorkersDialog(self._saved_workers, lambda setting: save_workers(setting, file), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # a new one for every opening
        dialog.accepted.connect(lambda: self._on_workers_saved(dialog.saved))
        dialog.open()
        return dialog

    def _on_workers_saved(self, setting: WorkersSetting | None) -> None:
        if setting is not None:
            self._saved_workers = setting
            self.show_status(f"Workers: {setting} from the next start", 10000)

    def _make_engine(self) -> Engine:
        return self.services.make_engine(self.prefs.models_dir, self.prefs.memory_mode)

    def _output(self) -> OutputSettings:
        return OutputSettings(self.prefs.output_dir, self.prefs.save_intermediates)

    def _session_options(self, queue_path: Path | None) -> SessionOptions:
        return SessionOptions(
            self._output(),
            queue_path=queue_path,
            pause_on_failure=self.prefs.pause_on_failure,
            learning_log=self.prefs.learning_log_file,
        )

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
        scroll.setObjectName("cards.scroll")
        scroll.setWidgetResizable(True)
        scroll.setWidget(column)
        self.cards_scroll = scroll
        self.card_jumps = CardJumps(scroll, {"input": self.input_panel, **self.cards})
        self.model.replaced.connect(lambda _config: self.card_jumps.refresh())  # after the cards' own slots
        cards_box = QWidget()
        cards_box_layout = QVBoxLayout(cards_box)
        cards_box_layout.setContentsMargins(0, 0, 0, 0)
        cards_box_layout.addWidget(self.card_jumps)
        cards_box_layout.addWidget(scroll, 1)
        editors = QSplitter(Qt.Orientation.Vertical)
        editors.addWidget(self.prompt_panel)
        editors.addWidget(cards_box)
        editors.setStretchFactor(1, 3)
        left = QWidget()
        self._left_layout = QVBoxLayout(left)
        self._left_layout.setContentsMargins(0, 0, 0, 0)
        self._left_layout.addWidget(editors, 1)
        self.progress_panel = ProgressPanel(self.bridge)
        self.results_panel = ResultsPanel(self.bridge, self.prefs.output_dir)
        self.results_panel.useSettingsRequested.connect(self._on_use_settings_requested)
        self.results_panel.actions_.sendToRequested.connect(self.send_to)
        self.results_panel.actions_.errorOccurred.connect(lambda text: self.show_status(text, 10000))
        self.restorer = SettingsRestorer(
            self, self.model, lambda: self.choices, self.input_panel.set_image, self.show_status
        )
        self.restorer.restored.connect(self._on_settings_restored)
        self.styles_picker = StylesPicker(self.model, lambda: self.prefs.models_dir, lambda: self.styles_file)
        self.prompt_panel.add_styles(self.styles_picker)
        self.prompt_drop = FileDropFilter(self)  # a PNG dropped on a prompt box restores it
        for edit in (self.prompt_panel.prompt, self.prompt_panel.negative):
            self.prompt_drop.watch(edit)
        self.prompt_drop.filesDropped.connect(lambda files: self.restore_from_image(files[0]))
        self.log_panel = LogPanel()
        self.queue_panel = QueuePanel(self.host.queue, self.bridge)
        self.history_panel = HistoryPanel(self.host.queue, self.bridge)
        self.workers_panel = WorkersPanel(self.bridge, self.workers_setting)
        self.workers_panel.settings_button.clicked.connect(self.open_workers_dialog)
        if self.workers_problem:
            self.workers_panel.notice.setText(self.workers_problem)
        self.results_panel.client = self.host.queue  # ratings are stored with the queue's jobs
        # A delete in one gallery shows in the other at once.
        self.history_panel.actions_.deleted.connect(self.results_panel.forget_image)
        self.results_panel.actions_.deleted.connect(lambda _path: self.history_panel.refresh())
        self.results_panel.errorOccurred.connect(lambda text: self.show_status(text, 10000))
        self.tabs = QTabWidget()
        for panel, title in (
            (self.progress_panel, "Progress"),
            (self.results_panel, "Results"),
            (self.log_panel, "Log"),
            (self.queue_panel, "Queue"),
            (self.history_panel, "History"),
        ):
            self.tabs.addTab(panel, title)
        prompts = self.prompt_panel
        self.extra_networks = ExtraNetworksTab(
            self.tabs, prompts.prompt, prompts.negative, self.prefs.models_dir, self.model, prompts
        )
        self.tabs.addTab(self.workers_panel, "Workers")  # last: saved tab indexes keep their meaning
        self.sweep_panel = SweepPanel(self.model, self.bridge, self.host.queue, lambda: self.choices)
        self.sweep_panel.queued.connect(
            lambda group: self.show_status(f"Sweep queued as group #{group.id}: {group.label}", 10000)
        )
        self.tabs.addTab(self.sweep_panel, "Sweep")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("window.splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        left.setMinimumWidth(LEFT_MIN_WIDTH)  # below their hints: a narrow screen still fits
        self.tabs.setMinimumWidth(RIGHT_MIN_WIDTH)
        self.setCentralWidget(self.splitter)

    def _build_controls(self) -> None:
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Run the enabled stages (Ctrl+Enter)")
        self.generate_button.clicked.connect(self._on_generate_clicked)
        self.add_to_queue_button = QPushButton("Add to queue")
        self.add_to_queue_button.setToolTip("Append the current settings to the job queue")
        self.add_to_queue_button.clicked.connect(self._on_add_to_queue_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run after the current step (Esc)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        row = QHBoxLayout()
        row.addWidget(self.generate_button, 1)
        row.addWidget(self.add_to_queue_button)
        row.addWidget(self.cancel_button)
        self.dynamic_prompts = DynamicPrompts(self.model, self.prefs, self.host)
        self.dynamic_prompts.queued.connect(
            lambda group: self.show_status(f"Queued as group #{group.id}: {group.label}", 10000)
        )
        self.dynamic_prompts.refused.connect(lambda text: self.show_status(text, 15000))
        self._left_layout.addWidget(self.dynamic_prompts)
        self._left_layout.addLayout(row)  # always visible under the editors
        for keys, slot in (
            ("Ctrl+Return", self._on_generate_clicked),
            ("Ctrl+Enter", self._on_generate_clicked),
            ("Esc", self._on_cancel_clicked),
        ):
            QShortcut(QKeySequence(keys), self).activated.connect(slot)
        self.status = SessionStatus(self.statusBar(), self.bridge, (self.queue_panel.count_label,))
        self.lifecycle_label = self.status.lifecycle_label
        self.error_label = self.status.error_label
        self.device_label = self.status.device_label

    def _build_menus(self) -> None:
        self.models_menu = ModelsMenu(self.prefs, self)
        self.models_menu.refreshRequested.connect(self.refresh_models)
        self.models_menu.statusRequested.connect(self.status.show)
        self.queue_menu = QueueMenu(self.prefs, self)
        self.sampler_settings = SamplerSettingsEntry(self.model, self.prefs, self)
        self.sampler_settings.add_to(self.models_menu)
        self.queue_menu.addSeparator()
        workers = self.queue_menu.addAction("Workers…")
        workers.setToolTip("Run the queue's jobs on this GPU, all local GPUs, N workers or a Ray cluster")
        workers.triggered.connect(self.open_workers_dialog)
        for menu in (self.models_menu, ViewMenu(self.prefs, self), self.queue_menu):
            self.menuBar().addMenu(menu)

    def _connect_session(self) -> None:
        bridge = self.bridge
        self.model.validityChanged.connect(self._on_validity_changed)
        self.model.changed.connect(self._show_card_problems)
        self.model.replaced.connect(self._show_card_problems)
        self.model.changed.connect(self._check_families)
        self.model.replaced.connect(self._check_families)
        self.family_check.problemsChanged.connect(self._show_card_problems)
        bridge.lifecycleChanged.connect(self._on_lifecycle_changed)
        bridge.runStarted.connect(self._on_run_started)
        bridge.interruptedJobsFound.connect(self._on_interrupted_jobs_found)
        self.host.queue.errorOccurred.connect(self.status.show_queue_error)
        self.queue_panel.runRequested.connect(self.host.run_queue)
        self.queue_panel.runJobRequested.connect(self.host.run_job)
        for panel in (self.queue_panel, self.history_panel):
            panel.loadRequested.connect(self.apply_config)
            panel.errorOccurred.connect(self.status.show_queue_error)
        self.history_panel.requeued.connect(self.status.show_requeued)
        self.history_panel.sendToRequested.connect(self.send_to)

    def _follow_preferences(self) -> None:
        prefs = self.prefs
        prefs.modelsDirChanged.connect(self._on_prefs_models_dir_changed)
        prefs.memoryModeChanged.connect(self._on_prefs_memory_mode_changed)
        prefs.outputDirChanged.connect(self._on_prefs_output_dir_changed)
        prefs.saveIntermediatesChanged.connect(lambda _on: self.host.set_output(self._output()))
        prefs.pauseOnFailureChanged.connect(self.host.set_pause_on_failure)
        prefs.learningLogChanged.connect(lambda _on: self.host.set_learning_log(prefs.learning_log_file))
        prefs.themeChanged.connect(_apply_theme)

    def show_status(self, text: str, timeout_ms: int) -> None:
        """A status bar message for ``timeout_ms`` (none once the window is closing)."""
        self.status.show(text, timeout_ms)

    # -- run controls ----------------------------------------------------------------------
    def _update_buttons(self) -> None:
        # Generate while a job runs puts the new job first in line, so it stays enabled.
        valid = self.model.error is None
        self.generate_button.setEnabled(valid)
        self.add_to_queue_button.setEnabled(valid)
        self.cancel_button.setEnabled(self._busy)

    def _on_generate_clicked(self) -> None:
        if self.model.error is not None:
            return
        busy = self._busy
        if not busy:
            self.idle_timer.stop()
            self.tabs.setCurrentWidget(self.progress_panel)

        def queued(job: Job) -> None:
            if busy:
                self.show_status(f"Job #{job.id} runs next, after the running one", 5000)

        config = self.model.config

        def generate() -> None:
            self.host.generate(config, queued, self._show_config_error)

        if self.dynamic_prompts.applies(config):  # {a|b} or __name__: a group
            self.dynamic_prompts.queue_config(config, front=True, plain=generate)
        else:
            generate()

    def _on_add_to_queue_clicked(self) -> None:
        if self.model.error is not None:
            return
        config = self.model.config

        def enqueue() -> None:
            self.host.enqueue(
                config,
                lambda job: self.show_status(f"Added to the queue as job #{job.id}", 3000),
                self.status.show_queue_error,
            )

        if self.dynamic_prompts.applies(config):
            self.dynamic_prompts.queue_config(config, front=False, plain=enqueue)
        else:
            enqueue()

    def _on_cancel_clicked(self) -> None:
        if self._busy and self.host.cancel():
            self.show_status("Cancelling…", 3000)

    def report_queue_problem(self, message: str) -> QMessageBox:
        """Tell the user the queue file could not be opened (this session runs on a temporary
        queue): a warning that does not block (the event loop and the engine go on)."""
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Job queue unavailable",
            "The job queue could not be opened, so this session uses a temporary queue: Generate and "
            "the Queue and History tabs work, but their jobs are gone when you close the app."
            f"\n\n{message}",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setObjectName("dialog.queue_problem")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.show_status("Job queue unavailable: see the message", 30000)
        return box

    # -- what the session reports ------------------------------------------------------------
    def _on_interrupted_jobs_found(self, event: InterruptedJobsFound) -> None:
        jobs = list(event.jobs)
        if not jobs or self._closed:
            return
        if self.prefs.auto_resume:
            self.queue_panel.resume_interrupted(
                [job.id for job in jobs],
                lambda count: self.show_status(f"Resuming {count} interrupted job(s)", 10000),
            )
            return
        self.queue_panel.offer_resume(jobs)
        self.show_status(f"{len(jobs)} job(s) were interrupted: see the Queue tab", 15000)

    def _on_run_started(self, event: RunStarted) -> None:
        if event.seeds:
            self.prompt_panel.remember_seed(event.seeds[0])
        if event.subseeds:
            self.prompt_panel.seed_extras.remember_subseed(event.subseeds[0])

    def _on_lifecycle_changed(self, event: LifecycleChanged) -> None:
        if event.new is LifecycleState.RUNNING:
            self._busy = True
        elif event.new in TERMINAL_STATES:
            self._busy = False
            if self._quit_when_idle and not self._closed:
                self._close_chosen = True
                QTimer.singleShot(0, self.close)
            elif not self._closed:
                self.idle_timer.start()
        self.models_menu.set_engine_busy(self._busy)
        self._update_buttons()

    # -- validation --------------------------------------------------------------------------
    def _on_validity_changed(self, error: ConfigError | None) -> None:
        problems = error.problems if error else ()
        self._show_card_problems()
        # In the window's words: "Input image: …", not "input_image_path: …" (issue 17, item 9).
        self.prompt_panel.show_problems([in_user_words(p) for p in problems if section_of(p) == "prompt"])
        self.input_panel.show_problems([in_user_words(p) for p in problems if section_of(p) == "input"])
        self._show_config_error((all_in_user_words(problems) or str(error)) if error else "")
        self._update_buttons()

    def _show_card_problems(self, _change: object = None) -> None:
        # Config errors, and models the config names that are not installed (checked as the user
        # types, issue 17 item 4: a warning on the card; the engine has the last word at run time).
        error = self.model.error
        problems = [*(error.problems if error else ()), *self.missing_models(), *self.family_check.problems]
        for name, card in self.cards.items():
            card.show_problems([p for p in problems if section_of(p) == name])

    def _check_families(self, _change: object = None) -> None:
        # The refiner/hires checkpoint family, from the headers, off the GUI thread (issue 17).
        self.family_check.request(self.prefs.models_dir, self.model.config)

    def missing_models(self) -> list[ConfigProblem]:
        """The models the current settings name that are not installed, as card problems."""
        return [m.as_problem() for m in missing_models(self.model.config, self.choices)]

    def _show_config_error(self, message: str) -> None:
        self.configErrorChanged.emit(self.status.show_config_error(message))

    # -- preferences -------------------------------------------------------------------------
    @property
    def engine_busy(self) -> bool:
        """True while a job runs (engine settings must not change then)."""
        return self._busy

    def refresh_models(self) -> None:
        """List the models folder again off the GUI thread, then offer the names in every card
        (:attr:`modelsListed`). Returns at once; a later refresh supersedes one still listing."""
        folder = self.prefs.models_dir
        self._listing += 1
        number = self._listing
        self.show_status(f"Listing models in {folder}…", 0)
        self.models_lister.run(  # a listing already superseded when its turn comes is skipped
            lambda: self.services.list_models(folder) if number == self._listing else None,
            lambda choices: self._on_models_listed(number, folder, choices),
            lambda message: self._on_models_listing_failed(number, folder, message),
        )

    def _on_models_listed(self, number: int, folder: Path, choices: ModelChoices | None) -> None:
        if number != self._listing or choices is None:
            return  # a later refresh is on its way
        self.choices = choices
        for card in self.cards.values():
            card.set_choices(choices)
        self._show_card_problems()
        self.show_status(f"Models in {folder}: {choices.summary()}", 10000)
        self.modelsListed.emit(choices)

    def _on_models_listing_failed(self, number: int, folder: Path, message: str) -> None:
        if number == self._listing:
            log.warning("cannot list the models in %s: %s", folder, message)
            self.show_status(f"Cannot list the models in {folder}: {message}", 15000)

    def _on_prefs_models_dir_changed(self, folder: Path) -> None:
        # The CLI uses the folder chosen here (issue 17, item 12); written off the GUI thread,
        # before the listing that refresh_models queues behind it.
        self.models_lister.run(
            lambda: save_models_dir(folder),
            lambda _none: None,
            lambda message: log.warning("cannot save the models folder for the CLI: %s", message),
        )
        self.host.replace_engine(self._make_engine())
        self.refresh_models()
        self.extra_networks.set_models_dir(self.prefs.models_dir)
        self.styles_picker.reload()  # an A1111 install's styles.csv is beside the models folder
        self._check_families()

    def _on_prefs_memory_mode_changed(self, mode: object) -> None:
        self.host.replace_engine(self._make_engine())
        self.show_status(f"Memory mode: {mode} (from the next run)", 5000)

    def _on_prefs_output_dir_changed(self, folder: Path) -> None:
        self.host.set_output(self._output())
        self.results_panel.set_output_dir(folder)

    # -- restoring settings --------------------------------------------------------------------
    def apply_config(self, config: RunConfig) -> None:
        """Show ``config`` in every widget (e.g. "use these settings")."""
        self.model.replace(config)

    def send_to(self, path: Path, stage: str) -> None:
        """Start ``stage`` ("img2img", "inpaint" or "upscale") from the image ``path`` (A1111's
        Send to); for inpaint the mask editor opens on the image."""
        self.apply_config(sent_to(self.model.config, path, stage))
        self.show_status(f"{path.name} sent to {stage}", 5000)
        card = self.cards["img2img"]
        if stage == "inpaint" and isinstance(card, Img2ImgCard):
            card.inpaint.paint_button.click()

    def _on_use_settings_requested(self, path: Path) -> None:
        self.restore_from_image(path)

    def restore_from_image(self, path: Path) -> None:
        """Restore the settings any common generator's image was made with. The image is read off
        the GUI thread; the outcome arrives as the restorer's ``restored``, ``refused`` (with a
        message) or ``offeredAsInput`` (an image without settings) signal."""
        self.restorer.restore(path)

    def _on_settings_restored(self, path: Path, _settings: object) -> None:
        self.extra_networks.restore_names(path)  # LoRA/embedding names by hash, off the GUI thread

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.restore_from_image(Path(url.toLocalFile()))
                event.acceptProposedAction()
                return

    def _restore_layout(self, layout: WindowLayout) -> None:
        if layout.geometry is None:
            self.first_layout()
        for value, restore in (
            (layout.geometry, self.restoreGeometry),
            (layout.state, self.restoreState),
            (layout.splitter, self.splitter.restoreState),
        ):
            if value is not None:
                restore(value)
        if layout.tab is not None:
            self.tabs.setCurrentIndex(layout.tab)

    def first_layout(self, available: QRect | None = None) -> None:
        """The first start's size (85 % of ``available``, the screen's free area by default) and a
        left panel wide enough for the cards."""
        screen = self.screen() or QApplication.primaryScreen()
        if available is None and screen is not None:
            available = screen.availableGeometry()
        if available is not None:
            self.setGeometry(first_geometry(available))
        column = self.cards_scroll.widget()
        cards = column.sizeHint().width() if column is not None else 0
        scrollbar = self.cards_scroll.verticalScrollBar().sizeHint().width()
        total = self.width()
        left = left_width(total, cards, scrollbar)
        self.splitter.setSizes([left, max(total - left, RIGHT_MIN_WIDTH)])

    def _on_close_answered(self, choice: CloseChoice) -> None:
        self.close_question = None
        if choice is CloseChoice.STAY:
            return
        if choice is CloseChoice.KEEP:
            self._close_chosen = True
            self.close()
            return
        self._quit_when_idle = True  # closed by _on_lifecycle_changed when the job ends
        if choice is CloseChoice.CANCEL:
            self._on_cancel_clicked()
        self.show_status("Closing when the job ends…", 0)

    def closeEvent(self, event: QCloseEvent) -> None:
        running = self._busy or self.host.state is LifecycleState.RUNNING  # the event may be on its way
        if running and self.ask_before_closing and not self._close_chosen:
            event.ignore()
            if self.close_question is None:
                self.close_question = ask_close(self, self._on_close_answered)
            return
        self._closed = True
        self.idle_timer.stop()
        self.prefs.save_window_layout(
            WindowLayout(
                self.saveGeometry(), self.saveState(), self.splitter.saveState(), self.tabs.currentIndex()
            )
        )
        self.prefs.save_config(self.model.config)
        for panel in (self.queue_panel, self.history_panel):
            panel.detach()
        self.host.shutdown()  # the running job is interrupted: offered for resume at the next start
        self.session.close()
        self.results_panel.shutdown()
        self.family_check.shutdown()
        self.sweep_panel.shutdown()
        self.dynamic_prompts.shutdown()
        self.styles_picker.shutdown()
        self.restorer.shutdown()
        self.input_panel.shutdown()
        self.models_lister.shutdown()
        self.extra_networks.shutdown()
        self.progress_panel.shutdown()
        for card in self.cards.values():
            card.shutdown()  # the mask editor's pending writes
        self.status.close()
        self.log_panel.detach()
        super().closeEvent(event)


def _apply_theme(theme: str) -> None:
    app = QApplication.instance()
    if isinstance(app, QApplication):
        theme_manager(app).set_theme(theme)
