"""The menus: Models (refresh, models folder, memory mode, output folder, intermediates, learning
log), View (theme) and Queue (auto-resume, pause on failure).

Each menu takes the :class:`~.preferences.Preferences` it edits, writes the user's choices there and
follows the preferences' change signals, so a change made anywhere shows in every menu. None of them
knows the window: it follows the same preferences and tells the engine.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from ..core.options import MemoryMode
from .preferences import Preferences
from .theme import THEME_LABELS


def _check(action: QAction, on: bool) -> None:
    action.blockSignals(True)
    action.setChecked(on)
    action.blockSignals(False)


def _toggle(menu: QMenu, text: str, tooltip: str, on: bool) -> QAction:
    action = menu.addAction(text)
    action.setToolTip(tooltip)
    action.setCheckable(True)
    action.setChecked(on)
    return action


class ModelsMenu(QMenu):
    """Folders and engine choices. Refuses engine changes while a job runs (:meth:`set_engine_busy`)."""

    #: "Refresh models" was chosen.
    refreshRequested = Signal()
    #: A message for the status bar (text, milliseconds).
    statusRequested = Signal(str, int)

    def __init__(self, prefs: Preferences, parent: QWidget) -> None:
        super().__init__("&Models", parent)
        self.prefs = prefs
        self._busy = False
        self.refresh_action = self.addAction("Refresh models")
        self.refresh_action.setToolTip("Scan the models folder again")
        self.refresh_action.triggered.connect(self.refreshRequested)
        self.addAction("Open models folder").triggered.connect(self._on_open_models_triggered)
        self.addAction("Set models folder…").triggered.connect(self._on_set_models_triggered)
        self.addSeparator()
        memory = self.addMenu("Memory mode")
        self.memory_group = QActionGroup(self)
        for mode in MemoryMode:
            action = QAction(mode.label, memory, checkable=True)
            action.setData(mode.value)
            action.setChecked(mode is prefs.memory_mode)
            self.memory_group.addAction(action)
            memory.addAction(action)
        self.memory_group.triggered.connect(self._on_memory_group_triggered)
        self.addSeparator()
        self.addAction("Open output folder").triggered.connect(self._on_open_output_triggered)
        self.addAction("Set output folder…").triggered.connect(self._on_set_output_triggered)
        self.intermediates_action = _toggle(
            self,
            "Save intermediate images",
            "Also keep the images each stage hands to the next (e.g. txt2img's before ADetailer "
            "repaints them), in the run folder's intermediates/",
            prefs.save_intermediates,
        )
        self.intermediates_action.toggled.connect(self._on_intermediates_action_toggled)
        self.learning_log_action = _toggle(
            self,
            "Keep a learning log",
            "Append one JSON line per run (config, seeds, plan, timings, outputs) to "
            "learning/runs.jsonl in the app's data folder",
            prefs.learning_log,
        )
        self.learning_log_action.toggled.connect(self._on_learning_log_action_toggled)
        prefs.memoryModeChanged.connect(self._on_prefs_memory_mode_changed)
        prefs.saveIntermediatesChanged.connect(lambda on: _check(self.intermediates_action, on))
        prefs.learningLogChanged.connect(lambda on: _check(self.learning_log_action, on))

    def set_engine_busy(self, busy: bool) -> None:
        """While busy, choosing another models folder or memory mode is refused with a message."""
        self._busy = busy

    def _idle(self) -> bool:
        if self._busy:
            self.statusRequested.emit("Wait for the run to finish (or cancel it) first", 5000)
        return not self._busy

    def _on_open_models_triggered(self) -> None:
        _open_folder(self.prefs.models_dir)

    def _on_set_models_triggered(self) -> None:
        self.choose_models_folder()

    def choose_models_folder(self) -> None:
        """Ask for a models folder (an A1111/Forge ``models`` folder works) and use it."""
        if not self._idle():
            return
        folder = QFileDialog.getExistingDirectory(
            self.parentWidget(), "Models folder (an A1111 'models' folder works)", str(self.prefs.models_dir)
        )
        if folder:
            self.prefs.models_dir = Path(folder)

    def _on_memory_group_triggered(self, action: QAction) -> None:
        if not self._idle():
            self._on_prefs_memory_mode_changed(self.prefs.memory_mode)
            return
        self.prefs.memory_mode = MemoryMode(action.data())

    def _on_prefs_memory_mode_changed(self, mode: MemoryMode) -> None:
        for action in self.memory_group.actions():
            action.setChecked(action.data() == mode.value)

    def _on_open_output_triggered(self) -> None:
        _open_folder(self.prefs.output_dir)

    def _on_set_output_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self.parentWidget(), "Output folder", str(self.prefs.output_dir)
        )
        if folder:
            self.prefs.output_dir = Path(folder)

    def _on_intermediates_action_toggled(self, on: bool) -> None:
        self.prefs.save_intermediates = on

    def _on_learning_log_action_toggled(self, on: bool) -> None:
        self.prefs.learning_log = on


class ViewMenu(QMenu):
    """The Theme submenu: System, Light or Dark (the window applies the preference)."""

    def __init__(self, prefs: Preferences, parent: QWidget) -> None:
        super().__init__("&View", parent)
        self.prefs = prefs
        themes = self.addMenu("Theme")
        self.theme_group = QActionGroup(self)
        for theme, label in THEME_LABELS:
            action = QAction(label, themes, checkable=True)
            action.setObjectName(f"view.theme.{theme}")
            action.setData(theme)
            action.setChecked(theme == prefs.theme)
            self.theme_group.addAction(action)
            themes.addAction(action)
        self.theme_group.triggered.connect(self._on_theme_group_triggered)
        prefs.themeChanged.connect(self._on_prefs_theme_changed)

    def _on_theme_group_triggered(self, action: QAction) -> None:
        self.prefs.theme = str(action.data())

    def _on_prefs_theme_changed(self, theme: str) -> None:
        for action in self.theme_group.actions():
            action.setChecked(action.data() == theme)


class QueueMenu(QMenu):
    """The queue's two preferences."""

    def __init__(self, prefs: Preferences, parent: QWidget) -> None:
        super().__init__("&Queue", parent)
        self.setObjectName("menu.queue")
        self.prefs = prefs
        self.auto_resume_action = _toggle(
            self,
            "Resume interrupted jobs at start",
            "Jobs a crash or closing the app interrupted run again first when the app starts",
            prefs.auto_resume,
        )
        self.auto_resume_action.toggled.connect(self._on_auto_resume_action_toggled)
        self.pause_on_failure_action = _toggle(
            self,
            "Pause the queue when a job fails",
            "Otherwise the next job runs after a failed one",
            prefs.pause_on_failure,
        )
        self.pause_on_failure_action.toggled.connect(self._on_pause_on_failure_action_toggled)
        prefs.autoResumeChanged.connect(lambda on: _check(self.auto_resume_action, on))
        prefs.pauseOnFailureChanged.connect(lambda on: _check(self.pause_on_failure_action, on))

    def _on_auto_resume_action_toggled(self, on: bool) -> None:
        self.prefs.auto_resume = on

    def _on_pause_on_failure_action_toggled(self, on: bool) -> None:
        self.prefs.pause_on_failure = on


def _open_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)  # the file manager cannot show a folder that is not there
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
