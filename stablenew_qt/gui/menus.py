"""The Models menu (refresh models, open or set the models folder, memory mode, output folder) and
the View menu (theme)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu

from .services import MEMORY_MODES
from .theme import THEME_LABELS, load_theme, save_theme, theme_manager

if TYPE_CHECKING:
    from .main_window import MainWindow


class ModelsMenu(QMenu):
    """Acts on the window's settings and engine; refuses engine changes during a run."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__("&Models", window)
        self.window_ = window
        self.refresh_action = self.addAction("Refresh models")
        self.refresh_action.setToolTip("Scan the models folder again")
        self.refresh_action.triggered.connect(self._on_refresh_triggered)
        self.addAction("Open models folder").triggered.connect(self._on_open_models_triggered)
        self.addAction("Set models folder…").triggered.connect(self._on_set_models_triggered)
        self.addSeparator()
        memory = self.addMenu("Memory mode")
        self.memory_group = QActionGroup(self)
        for mode, label in MEMORY_MODES:
            action = QAction(label, memory, checkable=True)
            action.setData(mode)
            action.setChecked(mode == window.settings.memory_mode)
            self.memory_group.addAction(action)
            memory.addAction(action)
        self.memory_group.triggered.connect(self._on_memory_group_triggered)
        self.addSeparator()
        self.addAction("Open output folder").triggered.connect(self._on_open_output_triggered)
        self.addAction("Set output folder…").triggered.connect(self._on_set_output_triggered)
        self.intermediates_action = self.addAction("Save intermediate images")
        self.intermediates_action.setToolTip(
            "Also keep the images each stage hands to the next (e.g. txt2img's before ADetailer "
            "repaints them), in the run folder's intermediates/"
        )
        self.intermediates_action.setCheckable(True)
        self.intermediates_action.setChecked(window.settings.save_intermediates)
        self.intermediates_action.toggled.connect(self._on_intermediates_action_toggled)

    def _idle(self) -> bool:
        if self.window_.engine_busy:
            self.window_.show_status("Wait for the run to finish (or cancel it) first", 5000)
            return False
        return True

    def _on_refresh_triggered(self) -> None:
        self.window_.refresh_models()

    def _on_open_models_triggered(self) -> None:
        folder = self.window_.settings.models_dir
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _on_set_models_triggered(self) -> None:
        if not self._idle():
            return
        folder = QFileDialog.getExistingDirectory(
            self.window_,
            "Models folder (an A1111 'models' folder works)",
            str(self.window_.settings.models_dir),
        )
        if folder:
            self.window_.set_models_dir(Path(folder))

    def _on_memory_group_triggered(self, action: QAction) -> None:
        if not self._idle():
            for other in self.memory_group.actions():
                other.setChecked(other.data() == self.window_.settings.memory_mode)
            return
        self.window_.set_memory_mode(str(action.data()))

    def _on_open_output_triggered(self) -> None:
        folder = self.window_.settings.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _on_intermediates_action_toggled(self, on: bool) -> None:
        self.window_.set_save_intermediates(on)

    def _on_set_output_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self.window_, "Output folder", str(self.window_.settings.output_dir)
        )
        if folder:
            self.window_.set_output_dir(Path(folder))


class ViewMenu(QMenu):
    """The Theme submenu: System, Light or Dark, saved in the window's settings and applied at once."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__("&View", window)
        self.window_ = window
        themes = self.addMenu("Theme")
        self.theme_group = QActionGroup(self)
        current = load_theme(window.settings.qsettings)
        for theme, label in THEME_LABELS:
            action = QAction(label, themes, checkable=True)
            action.setObjectName(f"view.theme.{theme}")
            action.setData(theme)
            action.setChecked(theme == current)
            self.theme_group.addAction(action)
            themes.addAction(action)
        self.theme_group.triggered.connect(self._on_theme_group_triggered)

    def _on_theme_group_triggered(self, action: QAction) -> None:
        theme = str(action.data())
        save_theme(self.window_.settings.qsettings, theme)
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        theme_manager(app).set_theme(theme)
