"""Preferences: one typed model over QSettings whose changes the menus and the window follow (the
menus know only the preferences; the window tells the engine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from pytestqt.qtbot import QtBot

from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.hooks import default_learning_log_path
from stablenew_qt.core.options import MemoryMode
from stablenew_qt.gui.preferences import Preferences
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow, generate_and_wait, small_txt2img


def _prefs(tmp_path: Path) -> Preferences:
    settings = QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat)
    return Preferences(settings, models_dir=tmp_path / "models", output_dir=tmp_path / "runs")


def test_values_are_typed_with_defaults_and_changes_are_announced_once(qtbot: QtBot, tmp_path: Path) -> None:
    prefs = _prefs(tmp_path)
    assert (prefs.models_dir, prefs.output_dir) == (tmp_path / "models", tmp_path / "runs")
    assert prefs.memory_mode is MemoryMode.GPU and prefs.save_intermediates is False
    assert prefs.theme == "system" and prefs.learning_log_file is None
    heard: list[Any] = []
    prefs.memoryModeChanged.connect(heard.append)
    prefs.outputDirChanged.connect(heard.append)
    prefs.memory_mode = MemoryMode.MODEL_OFFLOAD
    prefs.memory_mode = MemoryMode.MODEL_OFFLOAD  # no change, no signal
    prefs.output_dir = tmp_path / "elsewhere"
    assert heard == [MemoryMode.MODEL_OFFLOAD, tmp_path / "elsewhere"]
    prefs.learning_log = True
    assert prefs.learning_log_file == default_learning_log_path()
    again = _prefs(tmp_path)  # what the next start reads
    assert (again.memory_mode, again.output_dir, again.learning_log) == (
        MemoryMode.MODEL_OFFLOAD,
        tmp_path / "elsewhere",
        True,
    )


def test_values_a_newer_or_broken_settings_file_holds_read_as_defaults(tmp_path: Path) -> None:
    prefs = _prefs(tmp_path)
    for key, value in (("engine/memory_mode", "turbo"), ("appearance/theme", "solarized")):
        prefs.qsettings.setValue(key, value)
    prefs.qsettings.setValue("paths/save_intermediates", "true")  # how an INI file stores it
    assert prefs.memory_mode is MemoryMode.GPU and prefs.theme == "system"
    assert prefs.save_intermediates is True


def test_the_menus_follow_the_preferences(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    prefs = window.prefs
    prefs.save_intermediates = True
    prefs.pause_on_failure = True
    prefs.theme = "dark"
    prefs.memory_mode = MemoryMode.SEQUENTIAL_OFFLOAD
    assert window.models_menu.intermediates_action.isChecked()
    assert window.queue_menu.pause_on_failure_action.isChecked()
    checked = [a.data() for a in window.models_menu.memory_group.actions() if a.isChecked()]
    assert checked == ["sequential_offload"]
    prefs.theme = "system"


def test_the_window_gives_the_engine_what_the_preferences_say(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    built: list[tuple[Path, MemoryMode]] = []
    engines = [FakeExecutor(), FakeExecutor()]

    def make_engine(models_dir: Path, mode: MemoryMode) -> FakeExecutor:
        built.append((models_dir, mode))
        return engines[min(len(built) - 1, 1)]

    window = make_main_window(make_engine=make_engine)
    window.prefs.memory_mode = MemoryMode.MODEL_OFFLOAD  # as the Models menu sets it
    assert built[-1] == (tmp_path / "models", MemoryMode.MODEL_OFFLOAD)
    window.prefs.output_dir = tmp_path / "chosen"
    window.models_menu.learning_log_action.trigger()  # the learning log's switch
    small_txt2img(qtbot, window)
    generate_and_wait(qtbot, window)
    qtbot.waitUntil(lambda: bool(window.results_panel.image_paths()), timeout=RUN_TIMEOUT_MS)
    assert window.results_panel.image_paths()[0].is_relative_to(tmp_path / "chosen")
    assert len(engines[1].calls) == 1 and engines[0].calls == [], "the new engine ran the job"
    [line] = default_learning_log_path().read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["status"] == "COMPLETED"
    default_learning_log_path().unlink()
