"""The window through its widgets, over the FakeExecutor: validation, lifecycle, cancel, close."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QPushButton
from pytestqt.qtbot import QtBot

from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.gui.testing import (
    RUN_TIMEOUT_MS,
    MakeMainWindow,
    choose,
    drop_files,
    generate_and_wait,
    set_spin,
    small_txt2img,
    widget,
)


def _wait_idle(qtbot: QtBot, window: object) -> None:
    qtbot.waitUntil(lambda: window.lifecycle_label.text() == "IDLE", timeout=RUN_TIMEOUT_MS)  # type: ignore[attr-defined]


def test_config_error_disables_generate_and_shows_inline_and_in_the_status_bar(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    assert window.generate_button.isEnabled()
    refiner = widget(window, "txt2img.refiner_enabled")
    assert isinstance(refiner, QCheckBox)
    refiner.setChecked(True)  # no refiner model chosen
    assert not window.generate_button.isEnabled()
    assert window.error_label.text().startswith("Config Error: Refiner model: choose")  # the label shown
    assert window.cards["txt2img"].error_label.isVisibleTo(window)
    assert "refiner" in window.cards["txt2img"].error_label.text()
    assert window.lifecycle_label.text() == "IDLE"
    refiner.setChecked(False)
    assert window.generate_button.isEnabled()
    assert window.error_label.text() == ""
    assert not window.cards["txt2img"].error_label.isVisibleTo(window)


def test_a_bad_size_typed_is_an_error_on_the_txt2img_card(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    set_spin(qtbot, window, "txt2img.width", 100)
    assert "multiple of 8" in window.cards["txt2img"].error_label.text()
    assert not window.generate_button.isEnabled()


def test_no_stage_enabled_is_shown_and_keeps_idle(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    window.cards["txt2img"].setChecked(False)
    assert (
        window.error_label.text() == "Config Error: no stage is enabled: enable txt2img, img2img or upscale"
    )
    assert not window.generate_button.isEnabled()
    window.generate_button.click()  # ignored while the error stands
    qtbot.wait(50)
    assert window.host.state is LifecycleState.IDLE and window.queue_panel.jobs == []


def test_error_mid_run_shows_error_then_recovers_and_a_second_run_works(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    fake = FakeExecutor().fail_at(StageName.TXT2IMG, "the scripted failure", step=2)
    window = make_main_window(fake)
    small_txt2img(qtbot, window)
    generate_and_wait(qtbot, window, "runFailed")
    assert window.lifecycle_label.text() == "FAILED"
    assert "the scripted failure" in window.progress_panel.label.text()
    _wait_idle(qtbot, window)
    fake._scripts.clear()
    generate_and_wait(qtbot, window)
    assert window.host.state is LifecycleState.COMPLETED


def test_cancel_mid_run_shows_cancelled_then_idle_and_the_window_stays_responsive(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    fake = FakeExecutor().block_at(StageName.TXT2IMG, step=2)
    window = make_main_window(fake)
    small_txt2img(qtbot, window)
    with qtbot.waitSignal(window.bridge.stepProgress, timeout=RUN_TIMEOUT_MS):
        window.generate_button.click()
    assert fake.blocked.wait(5)
    # The engine is blocked inside a step; the GUI thread still answers (and Generate would queue
    # the next job, first in line).
    assert window.cancel_button.isEnabled() and window.generate_button.isEnabled()
    set_spin(qtbot, window, "txt2img.steps", 4)
    with qtbot.waitSignals(
        [window.bridge.runCancelled, window.bridge.lifecycleChanged], order="strict", timeout=RUN_TIMEOUT_MS
    ):
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.lifecycle_label.text() == "CANCELLED"
    _wait_idle(qtbot, window)
    fake._scripts.clear()
    generate_and_wait(qtbot, window)
    assert window.host.state is LifecycleState.COMPLETED


def test_ctrl_enter_generates(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    fake = FakeExecutor()
    window = make_main_window(fake)
    small_txt2img(qtbot, window)
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert fake.stages_called == [StageName.TXT2IMG]


def test_closing_during_a_run_cancels_it_and_stops_the_threads(
    qtbot: QtBot, make_main_window: MakeMainWindow, caplog: object
) -> None:
    fake = FakeExecutor(block_timeout=20).block_at(StageName.TXT2IMG, step=1)
    window = make_main_window(fake)
    small_txt2img(qtbot, window)
    window.generate_button.click()
    assert fake.blocked.wait(5)
    queue_file = window.session.queue.path
    window.close()  # asks what to do with the running job
    assert window.isVisible() and window.close_question is not None
    window.close_question.findChild(QPushButton, "close.keep").click()  # "Quit now, resume it next time"
    assert not window.host.engine_thread.isRunning() and not window.host.queue.thread_.isRunning()
    assert window.host.state is LifecycleState.CANCELLED
    with JobQueue(queue_file) as queue:
        [job] = queue.list()
    assert job.status is JobStatus.INTERRUPTED, "offered for resume at the next start"


def test_hires_final_size_follows_the_knobs(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    set_spin(qtbot, window, "txt2img.width", 512)
    set_spin(qtbot, window, "txt2img.height", 768)
    hires = widget(window, "txt2img.hires_enabled")
    assert isinstance(hires, QCheckBox)
    hires.setChecked(True)
    set_spin(qtbot, window, "txt2img.hires_upscale_factor", 1.5)
    assert widget(window, "txt2img.final_size").text() == "Final size: 768 × 1152"  # type: ignore[attr-defined]
    window.cards["upscale"].setChecked(True)
    assert widget(window, "upscale.final_size").text() == "Final size: 1536 × 2304"  # type: ignore[attr-defined]


def test_last_config_and_log_records_reach_the_window(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    small_txt2img(qtbot, window, "remember me")
    window.close()
    reopened = make_main_window(config=window.model.config)
    assert reopened.prompt_panel.prompt.toPlainText() == "remember me"
    assert reopened.model.config.txt2img.steps == 3
    logging.getLogger("stablenew_qt.test").warning("hello from a test")
    qtbot.waitUntil(lambda: "hello from a test" in reopened.log_panel.text.toPlainText())
    reopened.log_panel.level.setCurrentText("ERROR")
    assert "hello from a test" not in reopened.log_panel.text.toPlainText()


def test_widgets_follow_the_model_both_ways(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    """Like napari: change one side and the other follows (code, restored PNGs, other widgets)."""
    window = make_main_window()
    window.model.set("txt2img.steps", 42)
    window.model.set("prompt", "a fox in the snow")
    window.model.set("txt2img.sampler", "Euler a")
    window.model.set("txt2img.hires_enabled", True)
    assert widget(window, "txt2img.steps").value() == 42  # type: ignore[attr-defined]
    assert widget(window, "prompt").toPlainText() == "a fox in the snow"  # type: ignore[attr-defined]
    assert widget(window, "txt2img.sampler").currentText() == "Euler a"  # type: ignore[attr-defined]
    set_spin(qtbot, window, "txt2img.cfg_scale", 5.5)
    assert window.model.get("txt2img.cfg_scale") == 5.5


def test_img2img_negative_override_reaches_the_config(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    window.model.set("img2img.enabled", True)
    edit = widget(window, "img2img.negative_prompt")
    edit.setPlainText("lowres, watermark")  # type: ignore[attr-defined]
    assert window.model.get("img2img.negative_prompt") == "lowres, watermark"
    edit.clear()  # type: ignore[attr-defined]
    assert window.model.get("img2img.negative_prompt") is None, "empty means: inherit the main negative"


def test_a_file_dropped_on_the_input_path_field_replaces_the_path(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    from PIL import Image

    window = make_main_window()
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    for path in (first, second):
        Image.new("RGB", (32, 24), (10, 20, 30)).save(path)
    window.model.set("txt2img.enabled", False)  # the input panel is for img2img/upscale-first runs
    window.input_panel.set_image(first)
    # The field refuses the drop as text (which would insert the URL at the cursor): the panel takes it.
    assert drop_files(window.input_panel.path, second) is window.input_panel
    assert window.input_panel.path.text() == str(second)
    assert window.model.get("input_image_path") == str(second)


def test_img2img_picks_its_own_model_in_its_card(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    box = widget(window, "img2img.model")
    assert isinstance(box, QComboBox) and box.itemText(0) == "Same as txt2img"
    assert window.model.config.img2img.model is None
    choose(window, "img2img.model", "demo-tiny-sdxl")
    assert window.model.config.img2img.model == "demo-tiny-sdxl"
    box.setCurrentIndex(0)
    assert window.model.config.img2img.model is None


def test_save_intermediate_images_keeps_each_stage_s_images(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    action = window.models_menu.intermediates_action
    assert not action.isChecked()
    action.trigger()
    assert window.prefs.save_intermediates
    small_txt2img(qtbot, window, "two stages")
    window.cards["upscale"].setChecked(True)
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS) as done:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    run_folder = done.args[0].output_dir
    kept = sorted(p.name for p in (run_folder / "intermediates").iterdir())
    assert kept == ["00000-1234-txt2img.png"]  # what upscale started from
    _wait_idle(qtbot, window)
    action.trigger()  # off again: the next run keeps only its final images
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS) as done:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert not (done.args[0].output_dir / "intermediates").exists()
