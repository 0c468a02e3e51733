"""Workers in the window (issue 16): the Workers panel, the Workers dialog, and the window opening its
session with the job runner the saved setting asks for."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from local_workers import ListPool, LocalWorker
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QDialog, QDialogButtonBox, QLabel
from pytestqt.qtbot import QtBot

from stablenew_qt.app import STYLE_SHEET
from stablenew_qt.core import events as ev
from stablenew_qt.core import user_settings
from stablenew_qt.core.controller import AppController
from stablenew_qt.core.dispatch import dispatching
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.events import WorkerInfo, WorkerState
from stablenew_qt.core.job_runner import JobRunner, JobRunnerFactory, SingleNodeJobRunner
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.user_settings import save_workers, saved_workers
from stablenew_qt.core.workers import WorkersMode, WorkersSetting
from stablenew_qt.gui.bridge import EventBridge
from stablenew_qt.gui.testing import (
    RUN_TIMEOUT_MS,
    Heartbeat,
    MakeMainWindow,
    SlowRead,
    generate_and_wait,
    small_txt2img,
)
from stablenew_qt.gui.theme import ThemeManager, apply_stylesheet, is_dark, theme_manager
from stablenew_qt.gui.workers_dialog import WorkersDialog
from stablenew_qt.gui.workers_panel import (
    COL_JOB,
    COL_STATE,
    OFF_NOTICE,
    PROBLEM_COLOR,
    THIS_GPU_ID,
    WorkersPanel,
)

Role = QPalette.ColorRole
CONTRAST = 100  # as tests/gui/test_live_theme.py asks of text on its background

BUSY = WorkerInfo(
    "w0",
    node="node-a",
    device="cuda:0 NVIDIA H200",
    vram_total_mb=143_771,
    vram_used_mb=10_240,
    resident=("sd_xl_base_1.0.safetensors",),
    state=WorkerState.BUSY,
    job_id=7,
    fraction=0.25,
)
IDLE = WorkerInfo(
    "w1", node="node-b", device="cuda:1 NVIDIA H200", vram_total_mb=143_771, state=WorkerState.IDLE
)


def _cells(panel: WorkersPanel, worker_id: str) -> list[str]:
    return [item.text() for item in panel.rows[worker_id].items]


def _post(qtbot: QtBot, bridge: EventBridge, event: ev.WorkersChanged) -> None:
    with qtbot.waitSignal(bridge.workersChanged, timeout=2000):
        bridge.post(event)


def test_the_panel_shows_each_worker_and_reuses_its_row(qtbot: QtBot) -> None:
    bridge = EventBridge()
    panel = WorkersPanel(bridge, WorkersSetting.parse("2"))
    qtbot.addWidget(panel)
    assert panel.table.rowCount() == 0 and panel.notice.text() == "Workers: 2"
    _post(qtbot, bridge, ev.WorkersChanged((BUSY, IDLE)))
    assert panel.table.rowCount() == 2
    assert _cells(panel, "w0") == [
        "w0",
        "node-a",
        "cuda:0 NVIDIA H200",
        "10.0 / 140.4 GB",
        "sd_xl_base_1.0.safetensors",
        "busy",
        "#7",
    ]
    assert panel.rows["w0"].bar.value() == 250 and panel.rows["w0"].bar.format() == "25 %"
    assert _cells(panel, "w1")[5:] == ["idle", ""] and panel.rows["w1"].bar.value() == 0
    items, bar = list(panel.rows["w0"].items), panel.rows["w0"].bar
    failed = WorkerInfo("w1", node="node-b", state=WorkerState.FAILED, message="no CUDA device on node-b")
    _post(qtbot, bridge, ev.WorkersChanged((replace(BUSY, fraction=0.75), failed)))
    assert panel.table.rowCount() == 2, "no row added or rebuilt"
    assert panel.rows["w0"].items == items and panel.rows["w0"].bar is bar
    assert panel.table.item(0, COL_STATE) is items[COL_STATE], "the table still shows the same cells"
    assert bar.value() == 750
    state = panel.rows["w1"].items[COL_STATE]
    assert state.text() == "failed: no CUDA device on node-b"
    assert state.toolTip() == "no CUDA device on node-b"
    assert state.foreground().color() == QColor(PROBLEM_COLOR)
    lost = WorkerInfo("w0", node="node-a", state=WorkerState.LOST, message="node-a went away")
    _post(qtbot, bridge, ev.WorkersChanged((lost,)))
    assert _cells(panel, "w0")[COL_STATE:] == ["lost: node-a went away", ""] and bar.value() == 0


def test_with_workers_off_one_row_follows_this_engine(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    panel = window.workers_panel
    assert window.tabs.indexOf(panel) >= 0 and window.tabs.tabText(window.tabs.indexOf(panel)) == "Workers"
    assert panel.notice.text() == OFF_NOTICE and list(panel.rows) == [THIS_GPU_ID]
    window.bridge.post(ev.EngineReported("CPU (float32)"))
    qtbot.waitUntil(lambda: _cells(panel, THIS_GPU_ID)[2] == "CPU (float32)", timeout=2000)
    busy: list[list[str]] = []
    window.bridge.jobStarted.connect(lambda _e: busy.append(_cells(panel, THIS_GPU_ID)))
    small_txt2img(qtbot, window)
    generate_and_wait(qtbot, window)
    assert busy and busy[0][COL_STATE:] == ["busy", "#1"]
    qtbot.waitUntil(lambda: _cells(panel, THIS_GPU_ID)[COL_STATE] == "idle", timeout=RUN_TIMEOUT_MS)
    assert _cells(panel, THIS_GPU_ID)[COL_JOB] == "" and panel.table.rowCount() == 1


@pytest.fixture
def styled(qapp: Any) -> Iterator[ThemeManager]:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    sheet = app.styleSheet()
    assert apply_stylesheet(app, STYLE_SHEET)
    yield theme_manager(app)
    theme_manager(app).set_theme("system")
    app.setStyleSheet(sheet)


def test_the_panel_stays_readable_when_the_theme_switches(qtbot: QtBot, styled: ThemeManager) -> None:
    bridge = EventBridge()
    panel = WorkersPanel(bridge, WorkersSetting.parse("local"))
    qtbot.addWidget(panel)
    panel.show()
    failed = WorkerInfo("w1", state=WorkerState.FAILED, message="no models folder")
    _post(qtbot, bridge, ev.WorkersChanged((BUSY, failed)))
    table = panel.table
    for theme, dark in (("dark", True), ("light", False)):
        styled.set_theme(theme)
        qtbot.waitUntil(lambda d=dark: is_dark(table.palette()) is d, timeout=2000)
        base = table.palette().color(Role.Base).lightness()
        assert abs(base - table.palette().color(Role.Text).lightness()) >= CONTRAST, theme
        assert abs(base - QColor(PROBLEM_COLOR).lightness()) >= CONTRAST - 10, theme
        assert (
            abs(
                panel.notice.palette().color(Role.Window).lightness()
                - panel.notice.palette().color(Role.WindowText).lightness()
            )
            >= CONTRAST
        )


def test_the_dialog_validates_and_saves_only_a_valid_setting(qtbot: QtBot, tmp_path: Path) -> None:
    file = tmp_path / "settings.json"
    dialog = WorkersDialog(WorkersSetting(), lambda s: save_workers(s, file))
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert ok.isEnabled() and not dialog.value.isEnabled()
    dialog.mode.setCurrentIndex(dialog.mode.findData("count"))
    qtbot.keyClicks(dialog.value, "0")
    assert not ok.isEnabled() and "from 1 to 64" in dialog.error.text()
    dialog.accept()
    assert not file.exists(), "nothing saved while the field is invalid"
    dialog.mode.setCurrentIndex(dialog.mode.findData("address"))
    dialog.value.setText("ray://head")
    assert not ok.isEnabled() and dialog.error.text().startswith("Ray cluster address:")
    dialog.value.setText("ray://head:10001")
    qtbot.keyClicks(dialog.models, "/srv/models")
    assert ok.isEnabled() and dialog.error.text() == ""
    ok.click()
    qtbot.waitUntil(lambda: dialog.saved is not None, timeout=5000)  # written off the GUI thread
    assert dialog.saved == WorkersSetting(
        WorkersMode.ADDRESS, address="ray://head:10001", models_dir=Path("/srv/models")
    )
    assert saved_workers(file) == dialog.saved
    again = WorkersDialog(saved_workers(file), lambda _s: None)
    qtbot.addWidget(again)
    assert (again.mode.currentData(), again.value.text(), again.models.text()) == (
        "address",
        "ray://head:10001",
        "/srv/models",
    )


def test_the_dialog_saves_off_the_gui_thread_and_waits_for_the_disk_meanwhile(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    file = tmp_path / "settings.json"
    dialog = WorkersDialog(WorkersSetting(), lambda s: save_workers(s, file))
    qtbot.addWidget(dialog)
    dialog.show()
    slow = SlowRead(monkeypatch, user_settings, "atomic_replace_bytes", lambda *_a: True)
    dialog.mode.setCurrentIndex(dialog.mode.findData("local"))
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
        assert slow.reading.wait(5)
        heartbeat = Heartbeat(dialog)
        qtbot.waitUntil(lambda: heartbeat.ticks >= 5, timeout=5000)  # the GUI thread is free meanwhile
        heartbeat.stop()
        assert dialog.error.text() == "Saving…" and not dialog.buttons.isEnabled()
        assert not dialog.mode.isEnabled(), "nothing can change while it is written"
        dialog.reject()  # Esc while the file is written: it waits for the write
        assert dialog.isVisible() and dialog.saved is None
        slow.release()
    assert slow.off_the_gui_thread and dialog.result() == QDialog.DialogCode.Accepted
    assert saved_workers(file) == dialog.saved == WorkersSetting(WorkersMode.LOCAL)


def test_a_save_that_fails_shows_in_the_dialog_which_stays_editable(qtbot: QtBot, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dialog = WorkersDialog(WorkersSetting(), lambda s: save_workers(s, blocker / "settings.json"))
    qtbot.addWidget(dialog)
    dialog.mode.setCurrentIndex(dialog.mode.findData("count"))
    dialog.value.setText("3")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: dialog.error.text().startswith("The setting could not be saved:"), timeout=5000)
    assert dialog.saved is None and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.mode.isEnabled() and dialog.value.isEnabled() and dialog.buttons.isEnabled()
    assert dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled(), "the user can try again"
    assert blocker.read_text() == "not a folder"


def _recording_factory(asked: list[WorkersSetting], built: list[JobRunner]):  # type: ignore[no-untyped-def]
    def job_runner_for(setting: WorkersSetting, models_dir: Path, _memory: object) -> JobRunnerFactory:
        assert models_dir.is_absolute()
        asked.append(setting)

        def make(queue: JobQueue, controller: AppController) -> JobRunner:
            runner = SingleNodeJobRunner(queue, controller)
            built.append(runner)
            return runner

        return make

    return job_runner_for


def test_the_window_opens_its_session_with_the_workers_runner_only_when_on(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    asked: list[WorkersSetting] = []
    built: list[JobRunner] = []
    file = tmp_path / "settings.json"
    off = make_main_window(job_runner_for=_recording_factory(asked, built), settings_file=file)
    assert asked == [] and built == [] and off.workers_setting == WorkersSetting()
    save_workers(WorkersSetting.parse("local"), file)
    on = make_main_window(job_runner_for=_recording_factory(asked, built), settings_file=file)
    assert asked == [WorkersSetting(WorkersMode.LOCAL)]
    assert built == [on.session.job_runner], "the session runs its jobs with the given runner"
    assert on.workers_panel.notice.text() == "Workers: local" and on.workers_panel.rows == {}
    small_txt2img(qtbot, on)
    generate_and_wait(qtbot, on)  # the runner is the one that runs the queue


def test_a_workers_runner_that_cannot_start_leaves_the_jobs_on_this_gpu(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    file = tmp_path / "settings.json"
    save_workers(WorkersSetting.parse("4"), file)

    def no_ray(_setting: WorkersSetting, _models: Path, _memory: object) -> JobRunnerFactory:
        raise ConfigError("Ray is not installed: pip install 'stablenew-qt[cluster]'", "workers")

    window = make_main_window(job_runner_for=no_ray, settings_file=file)
    assert window.workers_setting == WorkersSetting()
    assert "cannot start, so jobs run on this GPU" in window.workers_panel.notice.text()
    assert list(window.workers_panel.rows) == [THIS_GPU_ID]


def test_queue_menu_workers_opens_the_dialog_and_ok_saves_for_the_next_start(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    file = tmp_path / "settings.json"
    window = make_main_window(settings_file=file)
    [action] = [a for a in window.queue_menu.actions() if a.text() == "Workers…"]
    action.trigger()
    [dialog] = [d for d in window.findChildren(WorkersDialog) if d.isVisible()]
    assert dialog.isVisible() and "next starts" in dialog.findChildren(QLabel)[-1].text()
    dialog.mode.setCurrentIndex(dialog.mode.findData("local"))
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert saved_workers(file) == WorkersSetting(WorkersMode.LOCAL)
    assert "from the next start" in window.statusBar().currentMessage()
    assert window.workers_setting == WorkersSetting(), "the running window keeps its setting until restarted"
    file.unlink()  # the dialog opens on what was saved, without reading the disk on the GUI thread
    action.trigger()
    [again] = [d for d in window.findChildren(WorkersDialog) if d.isVisible()]
    assert again is not dialog and again.mode.currentData() == "local"
    again.reject()


def test_with_two_workers_the_window_runs_its_jobs_on_them_and_the_tab_shows_both(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    """The dispatcher over two in-process workers (the worker side on the FakeExecutor): Generate
    runs on a worker, its image is published in the window's output folder and shown, and the
    Workers tab has a row per worker with what it did."""
    file = tmp_path / "settings.json"
    save_workers(WorkersSetting.parse("2"), file)
    workers = [LocalWorker("w0"), LocalWorker("w1")]

    def two_workers(_setting: WorkersSetting, _models: Path, _memory: object) -> JobRunnerFactory:
        return dispatching(ListPool(list(workers)))

    window = make_main_window(job_runner_for=two_workers, settings_file=file)
    small_txt2img(qtbot, window)
    with qtbot.waitSignal(window.bridge.jobFinished, timeout=RUN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    job = finished.args[0].job
    assert job.status.value == "completed" and job.outputs[0].is_file()
    assert job.outputs[0].is_relative_to(window.prefs.output_dir)
    assert workers[0].jobs + workers[1].jobs == [job.id]
    panel = window.workers_panel
    qtbot.waitUntil(lambda: set(panel.rows) == {"w0", "w1"}, timeout=RUN_TIMEOUT_MS)

    def states() -> dict[str, str]:
        return {wid: row.items[COL_STATE].text().lower() for wid, row in panel.rows.items()}

    qtbot.waitUntil(lambda: all("idle" in text for text in states().values()), timeout=RUN_TIMEOUT_MS)
    assert set(states()) == {"w0", "w1"}
    window.session.close()
    assert all(worker.closed for worker in workers), "closing the session stops the workers"
