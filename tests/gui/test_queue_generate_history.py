"""The window with a queue: Generate runs through the queue (first in line, even when paused), the
running job shows its progress in the Queue tab, closing the window mid-job leaves the job
interrupted and the next window offers to resume it (or resumes it, with the setting), and the
History tab filters finished jobs and re-uses them. Real JobQueue file, FakeExecutor engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from stablenew_qt.core.errors import FailureCause, FailureKind
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.gui import history_panel
from stablenew_qt.gui.history_panel import HistoryPanel, job_folder, period_start
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.queue_panel import QueuePanel
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow, small_txt2img

S = JobStatus


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


def panels(window: MainWindow) -> tuple[QueuePanel, HistoryPanel]:
    return window.queue_panel, window.history_panel


def history_ids(history: HistoryPanel) -> list[int]:
    return [job.id for job in history.jobs]


def wait_shown(qtbot: Any, history: HistoryPanel, ids: list[int]) -> None:
    """Wait until the history lists ``ids`` (it is read and filtered on the loader's thread)."""
    qtbot.waitUntil(lambda: history_ids(history) == ids, timeout=RUN_TIMEOUT_MS)


def click(qtbot: Any, button: Any) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


# -- Generate goes through the queue --------------------------------------------------------------
def test_generate_runs_the_job_first_and_records_it_in_the_history(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue, idle_delay_ms=50)
    waiting = queue.add(queue_config(window, "queued earlier"))[0]
    queue.pause()  # Generate runs now even while the queue is paused
    small_txt2img(qtbot, window, "a lighthouse")
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS) as completed:
        click(qtbot, window.generate_button)
    job = next(job for job in queue.list() if job.id != waiting.id)
    qtbot.waitUntil(lambda: queue.get(job.id).status is S.COMPLETED, timeout=RUN_TIMEOUT_MS)
    done = queue.get(job.id)
    assert done.config.prompt == "a lighthouse" and done.outputs == completed.args[0].image_paths
    assert queue.get(waiting.id).status is S.QUEUED, "only the generated job ran"
    _queue_panel, history = panels(window)
    qtbot.waitUntil(lambda: history_ids(history) == [job.id], timeout=RUN_TIMEOUT_MS)
    assert window.results_panel.image_paths()[: len(done.outputs)] == list(reversed(done.outputs))


def test_generate_while_a_job_runs_puts_the_new_job_next(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(FakeExecutor(step_delay=0.05), queue=queue, idle_delay_ms=50)
    first = queue.add(queue_config(window, "first", steps=10))[0]
    later = queue.add(queue_config(window, "later"))[0]
    queue.pause()
    with qtbot.waitSignal(window.bridge.runStarted, timeout=RUN_TIMEOUT_MS):
        window.host.run_job(first.id)
    qtbot.waitUntil(lambda: window.engine_busy, timeout=RUN_TIMEOUT_MS)
    assert window.generate_button.isEnabled(), "Generate while busy queues the job first"
    small_txt2img(qtbot, window, "right after")
    click(qtbot, window.generate_button)
    qtbot.waitUntil(lambda: "runs next" in window.statusBar().currentMessage(), timeout=RUN_TIMEOUT_MS)
    generated = max(job.id for job in queue.list())
    qtbot.waitUntil(lambda: queue.get(generated).status is S.COMPLETED, timeout=RUN_TIMEOUT_MS)
    assert queue.get(first.id).status is S.COMPLETED
    assert queue.get(first.id).finished <= queue.get(generated).started  # type: ignore[operator]
    assert queue.get(later.id).status is S.QUEUED


def test_the_running_job_shows_its_progress_in_the_queue_tab(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(FakeExecutor(step_delay=0.1), queue=queue, idle_delay_ms=50)
    panel, _history = panels(window)
    job = queue.add(queue_config(window, "slow", steps=8))[0]
    assert not panel.progress.isVisible()
    window.tabs.setCurrentWidget(panel)
    panel.runRequested.emit()
    qtbot.waitUntil(lambda: panel.progress.isVisible() and panel.progress.value() > 0, timeout=RUN_TIMEOUT_MS)
    assert panel.progress.format().startswith(f"#{job.id}: stage 1/1 txt2img: step ")
    assert panel.running_job() is not None and panel.running_job().id == job.id  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: queue.get(job.id).status is S.COMPLETED, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not panel.progress.isVisible(), timeout=RUN_TIMEOUT_MS)


# -- closing mid-job, and resuming -----------------------------------------------------------------
def close_mid_job(qtbot: Any, window: MainWindow, queue: JobQueue) -> int:
    job = queue.add(queue_config(window, "interrupted by closing", steps=50))[0]
    with qtbot.waitSignal(window.bridge.stepProgress, timeout=RUN_TIMEOUT_MS):
        window.host.run_queue()
    window.close()  # asks what to do with the running job: "Quit now, resume it next time"
    assert window.close_question is not None
    keep = window.close_question.findChild(QPushButton, "close.keep")
    assert isinstance(keep, QPushButton)
    keep.click()
    assert not window.host.engine_thread.isRunning()
    return job.id


def test_closing_the_window_mid_job_leaves_it_interrupted_and_offered_for_resume(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    first = make_main_window(FakeExecutor(step_delay=0.05), queue=queue)
    job_id = close_mid_job(qtbot, first, queue)
    job = queue.get(job_id)
    assert (job.status, job.error, job.outputs) == (
        S.INTERRUPTED,
        "the app was closed while this job was running",
        (),
    )
    assert job.cause is not None and job.cause.kind is FailureKind.INTERRUPTED

    window = make_main_window(queue=queue, idle_delay_ms=50)
    panel, _history = panels(window)
    qtbot.waitUntil(lambda: not panel.banner.isHidden(), timeout=RUN_TIMEOUT_MS)
    assert f"#{job_id}" in panel.banner_label.text()
    assert queue.get(job_id).status is S.INTERRUPTED, "nothing resumes without the user's say"
    qtbot.waitUntil(lambda: "interrupted" in window.statusBar().currentMessage(), timeout=RUN_TIMEOUT_MS)
    click(qtbot, panel.resume_button)
    qtbot.waitUntil(lambda: queue.get(job_id).status is S.COMPLETED, timeout=RUN_TIMEOUT_MS)
    assert queue.get(job_id).attempts == 2 and panel.banner.isHidden()


def test_with_auto_resume_the_interrupted_job_runs_at_start(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    first = make_main_window(FakeExecutor(step_delay=0.05), queue=queue)
    job_id = close_mid_job(qtbot, first, queue)
    # The next window's settings file (make_main_window numbers them) has auto-resume on.
    (tmp_path / "settings-1.ini").write_text("[queue]\nauto_resume=true\n", encoding="utf-8")
    window = make_main_window(queue=queue, idle_delay_ms=50)
    assert window.queue_menu.auto_resume_action.isChecked()
    qtbot.waitUntil(lambda: queue.get(job_id).status is S.COMPLETED, timeout=RUN_TIMEOUT_MS)
    panel, _history = panels(window)
    assert panel.banner.isHidden()


def test_the_queue_menu_settings_persist_and_reach_the_runner(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(FakeExecutor().fail_at("txt2img", "scripted failure"), queue=queue)
    window.queue_menu.pause_on_failure_action.trigger()
    window.queue_menu.auto_resume_action.trigger()
    assert window.prefs.pause_on_failure and window.prefs.auto_resume
    failing, waiting = queue.add(queue_config(window, "fails"), 2)
    with qtbot.waitSignal(window.bridge.queueRunFinished, timeout=RUN_TIMEOUT_MS):
        window.host.run_queue()
    assert queue.get(failing.id).status is S.FAILED and queue.paused
    assert queue.get(waiting.id).status is S.QUEUED
    qtbot.waitUntil(
        lambda: "failed: txt2img: scripted failure" in window.statusBar().currentMessage(),
        timeout=RUN_TIMEOUT_MS,
    )


# -- history ------------------------------------------------------------------------------------------
def finish_jobs(queue: JobQueue, window: MainWindow, *specs: tuple[str, str, JobStatus]) -> list[int]:
    """Queue one job per (prompt, model, status) and record it as ended that way, by hand."""
    ids = []
    for prompt, model, status in specs:
        config = queue_config(window, prompt)
        config = config.model_copy(update={"txt2img": config.txt2img.model_copy(update={"model": model})})
        job = queue.add(config)[0]
        claimed = queue.claim(job.id)
        assert claimed is not None
        if status is S.COMPLETED:
            queue.mark_completed(job.id, f"run{job.id}", [])
        elif status is S.FAILED:
            queue.mark_failed(job.id, FailureCause(FailureKind.OUT_OF_MEMORY, "out of memory"))
        else:
            queue.mark_cancelled(job.id)
        ids.append(job.id)
    return ids


def test_history_filters_by_status_text_model_and_period(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    _panel, history = panels(window)
    a, b, c = finish_jobs(
        queue,
        window,
        ("a red barn", "alpha.safetensors", S.COMPLETED),
        ("a blue lake", "beta.safetensors", S.FAILED),
        ("a red fox", "beta.safetensors", S.CANCELLED),
    )
    queue.add(queue_config(window, "still queued"))  # never in the history
    qtbot.waitUntil(lambda: history_ids(history) == [c, b, a], timeout=RUN_TIMEOUT_MS)
    assert [history.model_filter.itemText(i) for i in range(history.model_filter.count())] == [
        "All models",
        "alpha.safetensors",
        "beta.safetensors",
    ]
    history.status_filter.setCurrentIndex(history.status_filter.findData("failed"))
    wait_shown(qtbot, history, [b])
    history.status_filter.setCurrentIndex(0)
    history.model_filter.setCurrentIndex(history.model_filter.findData("beta.safetensors"))
    wait_shown(qtbot, history, [c, b])
    qtbot.keyClicks(history.search, "RED")
    wait_shown(qtbot, history, [c])
    history.search.clear()
    history.model_filter.setCurrentIndex(0)
    history.period_filter.setCurrentText("Today")
    qtbot.waitUntil(lambda: history_ids(history) == [c, b, a], timeout=RUN_TIMEOUT_MS)
    assert history.summary.text() == "3 finished job(s)"


def test_period_start_is_local_midnight_n_days_back() -> None:
    now = datetime(2026, 11, 25, 15, 30).astimezone()
    assert period_start("Any time", now) is None
    assert period_start("Today", now) == now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert period_start("Last 7 days", now) == now.replace(hour=0, minute=0) - timedelta(days=6)


def test_history_requeues_loads_opens_and_removes(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_main_window(queue=queue, idle_delay_ms=50)
    _panel, history = panels(window)
    small_txt2img(qtbot, window, "a quiet harbour")
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS):
        click(qtbot, window.generate_button)
    [done] = queue.list()
    qtbot.waitUntil(lambda: queue.get(done.id).status is S.COMPLETED, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: history_ids(history) == [done.id], timeout=RUN_TIMEOUT_MS)
    done = queue.get(done.id)
    # The first image's thumbnail arrives from the loader's thread.
    qtbot.waitUntil(lambda: history.thumbnails.decodes >= 1, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: history.list.item(0).icon().availableSizes() != [], timeout=RUN_TIMEOUT_MS)
    history.list.setCurrentRow(0)
    assert all(b.isEnabled() for b in (history.open_button, history.requeue_button, history.load_button))

    opened: list[str] = []
    monkeypatch.setattr(
        history_panel.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile())
    )
    click(qtbot, history.open_button)
    assert opened == [str(done.outputs[0].parent)] == [str(job_folder(done))]

    menu = history.context_menu(done)
    assert [(a.text(), a.isEnabled()) for a in menu.actions()] == [
        ("Open image", True),
        ("Full view", True),
        ("Copy image", True),
        ("Copy parameters", True),
        ("Re-queue", True),
        ("Re-queue with a new seed", True),
        ("Load into the editor", True),
        ("Send to img2img", True),
        ("Send to inpaint", True),
        ("Send to upscale", True),
        ("Open folder", True),
        ("Delete images… (to trash)", True),
        ("Remove", True),
    ]
    next(a for a in menu.actions() if a.text() == "Send to upscale").trigger()
    assert window.model.get("input_image_path") == str(done.outputs[0])
    assert window.cards["upscale"].isChecked() and not window.cards["txt2img"].isChecked()
    menu.deleteLater()
    window.apply_config(done.config)
    click(qtbot, history.requeue_button)
    click(qtbot, history.new_seed_button)
    qtbot.waitUntil(lambda: len(queue.list(status=S.QUEUED)) == 2, timeout=RUN_TIMEOUT_MS)
    same, fresh = (job for job in queue.list(status=S.QUEUED))
    assert same.config == done.config
    assert fresh.config.seed != done.config.seed and fresh.config.prompt == "a quiet harbour"
    qtbot.waitUntil(lambda: "Queued again" in window.statusBar().currentMessage(), timeout=RUN_TIMEOUT_MS)

    small_txt2img(qtbot, window, "something else")
    with qtbot.waitSignal(history.loadRequested, timeout=RUN_TIMEOUT_MS):
        click(qtbot, history.load_button)
    assert window.model.config == done.config

    click(qtbot, history.remove_button)
    qtbot.waitUntil(lambda: history.jobs == [], timeout=RUN_TIMEOUT_MS)
    assert all(path.is_file() for path in done.outputs), "removing a job keeps its images"


def queue_config(window: MainWindow, prompt: str, steps: int = 2) -> Any:
    """The window's current (valid) config with ``prompt`` and ``steps``: small and fast."""
    config = window.model.config
    t2i = config.txt2img.model_copy(update={"width": 64, "height": 64, "steps": steps})
    return config.model_copy(update={"prompt": prompt, "txt2img": t2i})


def test_window_state_returns_to_idle_after_a_queued_generate(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue, idle_delay_ms=50)
    small_txt2img(qtbot, window, "twice")
    for _ in range(2):
        with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS):
            click(qtbot, window.generate_button)
        qtbot.waitUntil(lambda: window.host.state is LifecycleState.IDLE, timeout=RUN_TIMEOUT_MS)
        qtbot.waitUntil(lambda: window.lifecycle_label.text() == "IDLE", timeout=RUN_TIMEOUT_MS)
    assert [job.status for job in queue.list()] == [S.COMPLETED, S.COMPLETED]


def test_a_queue_file_that_cannot_be_used_gives_a_temporary_queue_and_a_warning(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    (tmp_path / "queue-0.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)  # the window's file
    window = make_main_window()
    problem = window.session.queue_problem
    assert window.session.temporary_queue and problem is not None and "backup" in problem
    box = window.report_queue_problem(problem)  # what app.main does when the window shows
    qtbot.waitUntil(box.isVisible, timeout=RUN_TIMEOUT_MS)
    assert "uses a temporary queue" in box.text() and "A copy was saved as" in box.text()
    small_txt2img(qtbot, window, "still works")
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS):
        click(qtbot, window.generate_button)  # the event loop ran on while the warning was open
    qtbot.waitUntil(
        lambda: [job.status for job in window.history_panel.jobs] == [S.COMPLETED], timeout=RUN_TIMEOUT_MS
    )
    box.accept()


def test_reading_a_history_that_cannot_be_read_reports_instead_of_raising(tmp_path: Path) -> None:
    from stablenew_qt.core.queue import QueueError
    from stablenew_qt.gui.history_panel import HistoryFilters, read_history

    queue = JobQueue(tmp_path / "closed.sqlite3")
    queue.close()
    result = read_history(queue, HistoryFilters())
    assert isinstance(result, QueueError) and "cannot read the history" in str(result)
