"""Dead ends and loose ends of daily use (issue 17, items 5, 7, 8): refiner/hires with txt2img off,
the final size after a restore, Resume starts the queue, the empty queue, closing during a run."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow, small_txt2img, widget


def test_unticking_txt2img_parks_hires_and_the_refiner_instead_of_a_dead_end(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    window.model.set("txt2img.hires_enabled", True)
    window.model.set("img2img.enabled", True)
    window.cards["txt2img"].setChecked(False)  # img2img first now, on an input image
    assert window.model.get("txt2img.hires_enabled") is False
    assert "hires" not in window.error_label.text()
    window.cards["txt2img"].setChecked(True)
    assert window.model.get("txt2img.hires_enabled") is True, "back as it was"
    assert widget(window, "txt2img.hires_enabled").isChecked()  # type: ignore[attr-defined]


def test_the_final_size_follows_a_restore(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    config = RunConfig.model_validate(
        {"txt2img": {"width": 640, "height": 448, "hires_enabled": True, "hires_upscale_factor": 1.5}}
    )
    window.apply_config(config)
    assert widget(window, "txt2img.final_size").text() == "Final size: 960 × 672"  # type: ignore[attr-defined]


def test_resume_starts_the_queue_and_the_empty_queue_says_so(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    panel = window.queue_panel
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.empty_label.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert "The queue is empty" in panel.empty_label.text()
    qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.paused, timeout=RUN_TIMEOUT_MS)
    small_txt2img(qtbot, window)
    window.add_to_queue_button.click()
    qtbot.waitUntil(lambda: len(panel.jobs) == 1, timeout=RUN_TIMEOUT_MS)
    assert not panel.empty_label.isVisible()
    assert panel.pause_button.text() == "Resume"
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)  # no "Run queue" click


def _close_and_answer(qtbot: QtBot, window: MainWindow, button: str) -> None:
    window.close()
    box = window.close_question
    assert isinstance(box, QMessageBox) and window.isVisible(), "closing during a run asks"
    found = box.findChild(QPushButton, f"close.{button}")
    assert isinstance(found, QPushButton)
    found.click()


def _running(qtbot: QtBot, window: MainWindow) -> None:
    small_txt2img(qtbot, window)
    with qtbot.waitSignal(window.bridge.stepProgress, timeout=RUN_TIMEOUT_MS):
        window.generate_button.click()


def _only_job(window: MainWindow) -> JobStatus:
    with JobQueue(window.session.queue.path) as queue:
        [job] = queue.list()
    return job.status


def test_closing_during_a_run_can_stay_or_finish_the_job_first(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window(FakeExecutor(step_delay=0.3))
    _running(qtbot, window)
    _close_and_answer(qtbot, window, "stay")
    assert window.isVisible() and window.host.engine_thread.isRunning()
    _close_and_answer(qtbot, window, "finish")
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert _only_job(window) is JobStatus.COMPLETED


def test_closing_during_a_run_can_cancel_it(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    fake = FakeExecutor(block_timeout=20).block_at(StageName.TXT2IMG, step=1)
    window = make_main_window(fake)
    small_txt2img(qtbot, window)
    window.generate_button.click()
    assert fake.blocked.wait(5)
    qtbot.waitUntil(lambda: window.engine_busy, timeout=RUN_TIMEOUT_MS)
    _close_and_answer(qtbot, window, "cancel")
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert _only_job(window) is JobStatus.CANCELLED
