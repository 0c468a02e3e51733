"""What the window says about the models it found (issue 17, item 12): per kind in the status bar,
the device label kept, and a first start on the demo models that offers a real models folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from stablenew_qt.core.events import EngineReported
from stablenew_qt.core.user_settings import saved_models_dir
from stablenew_qt.gui.demo_notice import CHOOSE
from stablenew_qt.gui.services import ModelChoices
from stablenew_qt.gui.testing import DEMO_CHOICES, MakeMainWindow

DEMO_ONLY = ModelChoices(
    checkpoints=("demo-tiny-sd", "demo-tiny-sdxl"), demo_checkpoints=("demo-tiny-sd", "demo-tiny-sdxl")
)


def test_refresh_lists_what_was_found_per_kind(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    with qtbot.waitSignal(window.modelsListed, timeout=5000):
        window.refresh_models()  # listed off the GUI thread
    message = window.statusBar().currentMessage()
    assert message.endswith(": 3 checkpoints, 1 VAE, 1 upscaler, 2 detectors"), message
    assert DEMO_ONLY.summary() == "0 checkpoints (+2 demo), 0 VAEs, 0 upscalers, 0 detectors"


def test_the_device_label_stays_while_a_new_engine_has_not_run(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    window.status._on_engine_reported(EngineReported("cuda:0 fp16, 1.2 GiB"))
    window.status._on_engine_reported(EngineReported(""))  # the engine after a folder change
    assert window.device_label.text() == "cuda:0 fp16, 1.2 GiB"


def test_no_models_of_ones_own_offers_a_models_folder_once(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_main_window(choices=DEMO_ONLY)
    box = window.demo_notice.box
    assert isinstance(box, QMessageBox) and box.objectName() == "dialog.demo_models"
    assert "demo models" in box.text() and "noise by design" in box.text()
    assert window.demo_notice.offer(DEMO_ONLY, tmp_path) is None, "asked once"
    chosen = tmp_path / "a1111-models"
    chosen.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_args, **_kw: str(chosen))
    [choose] = [b for b in box.findChildren(QPushButton) if b.text() == CHOOSE]
    choose.click()
    assert window.prefs.models_dir == chosen
    assert window.models_lister.wait(5000)  # settings.json is written off the GUI thread
    assert saved_models_dir() == chosen, "the CLI uses it too"
    assert str(chosen) in window.statusBar().currentMessage()


def test_own_models_mean_no_notice(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window(choices=DEMO_CHOICES)
    assert window.demo_notice.box is None
