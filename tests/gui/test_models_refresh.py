"""Models > Refresh and a new models folder list the folder off the GUI thread (issue 17: the GUI
thread never waits on the disk): "Listing models in …" until the answer arrives, then the cards
offer the names found; a second refresh supersedes the first, and a failure says so in one line."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QWidget
from pytestqt.qtbot import QtBot

from stablenew_qt.core.user_settings import saved_models_dir
from stablenew_qt.gui import main_window as main_window_module
from stablenew_qt.gui.services import ModelChoices
from stablenew_qt.gui.testing import DEMO_CHOICES, MakeMainWindow, widget


class SlowFolder:
    """``list_models`` for the window: answers at once at start-up; once ``armed``, the first
    listing after blocks until ``release`` and answers ``first``, the next ones answer ``second``."""

    def __init__(self) -> None:
        self.armed = False
        self.release, self.blocking = threading.Event(), threading.Event()
        self.threads: list[str] = []
        self.first = ModelChoices(checkpoints=("tiny-sd", "first-found"))
        self.second = ModelChoices(checkpoints=("tiny-sd", "second-found"), upscalers=("4x-New",))

    def __call__(self, _folder: Path) -> ModelChoices:
        if not self.armed:
            return DEMO_CHOICES
        self.threads.append(threading.current_thread().name)
        if not self.blocking.is_set():
            self.blocking.set()
            assert self.release.wait(10), "the test never released the slow listing"
            return self.first
        return self.second


def _names(box: QWidget) -> list[str]:
    assert isinstance(box, QComboBox)
    return [box.itemText(i) for i in range(box.count())]


def test_a_slow_refresh_never_holds_the_window_and_the_latest_wins(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    folder = SlowFolder()
    window = make_main_window(list_models=folder)
    folder.armed = True
    ticks: list[int] = []
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    listed: list[ModelChoices] = []
    window.modelsListed.connect(listed.append)
    window.refresh_models()  # returns at once
    assert window.statusBar().currentMessage() == f"Listing models in {window.prefs.models_dir}…"
    qtbot.waitUntil(folder.blocking.is_set, timeout=5000)
    window.refresh_models()  # a second Refresh while the first still lists
    qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=5000)  # the GUI thread is free meanwhile
    assert listed == [] and window.choices == DEMO_CHOICES
    folder.release.set()
    qtbot.waitUntil(lambda: listed == [folder.second], timeout=5000)
    assert window.models_lister.wait(5000)
    qtbot.wait(50)  # any late answer would have arrived by now
    assert listed == [folder.second], "the first listing's answer was dropped"
    assert window.choices == folder.second
    assert "second-found" in _names(widget(window, "txt2img.model"))
    assert "first-found" not in _names(widget(window, "txt2img.model"))
    assert "4x-New" in _names(widget(window, "upscale.upscale_model"))
    assert window.statusBar().currentMessage().endswith(": 2 checkpoints, 0 VAEs, 1 upscaler, 0 detectors")
    assert len(folder.threads) == 2 and threading.main_thread().name not in folder.threads
    timer.stop()


def test_a_new_models_folder_is_saved_and_listed_off_the_gui_thread(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Path, str]] = []
    saved: list[tuple[Path, str]] = []
    real_save = main_window_module.save_models_dir

    def save(folder: Path) -> None:
        saved.append((folder, threading.current_thread().name))
        real_save(folder)

    monkeypatch.setattr(main_window_module, "save_models_dir", save)

    def list_models(folder: Path) -> ModelChoices:
        seen.append((folder, threading.current_thread().name))
        return DEMO_CHOICES if folder != chosen else ModelChoices(checkpoints=("from-the-new-folder",))

    chosen = tmp_path / "a1111" / "models"
    chosen.mkdir(parents=True)
    window = make_main_window(list_models=list_models)
    assert seen[-1][1] == threading.main_thread().name  # start-up lists before the window shows
    with qtbot.waitSignal(window.modelsListed, timeout=5000) as listed:
        window.prefs.models_dir = chosen
        assert window.choices == DEMO_CHOICES  # not yet: the folder is being listed
    assert listed.args == [ModelChoices(checkpoints=("from-the-new-folder",))]
    assert seen[-1] == (chosen, seen[-1][1]) and seen[-1][1] != threading.main_thread().name
    assert "from-the-new-folder" in _names(widget(window, "txt2img.model"))
    assert str(chosen) in window.statusBar().currentMessage()
    assert [folder for folder, _thread in saved] == [chosen]
    assert saved[0][1] != threading.main_thread().name, "settings.json written off the GUI thread"
    assert saved_models_dir() == chosen


def test_a_folder_that_cannot_be_listed_says_so_and_keeps_the_choices(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    broken = {"on": False}

    def list_models(_folder: Path) -> ModelChoices:
        if broken["on"]:
            raise PermissionError(13, "Permission denied", "/mnt/share/models")
        return DEMO_CHOICES

    window = make_main_window(list_models=list_models)
    broken["on"] = True
    window.refresh_models()
    expected = f"Cannot list the models in {window.prefs.models_dir}: Permission denied: /mnt/share/models"
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == expected, timeout=5000)
    assert window.choices == DEMO_CHOICES
