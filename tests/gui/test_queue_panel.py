"""QueuePanel and HistoryPanel over a real JobQueue (a file in tmp_path) and the window's engine with
a FakeExecutor: adding, reordering, cancelling, retrying, pausing and running jobs. Every panel
operation runs on the queue thread, so the tests wait for the queue to show it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.gui.history_panel import HistoryPanel
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.queue_panel import ACTIVE_STATUSES, QueuePanel
from stablenew_qt.gui.testing import DEMO_CHOICES, RUN_TIMEOUT_MS, MakeMainWindow, small_txt2img

MakeWindow = Callable[..., MainWindow]


def small_config(prompt: str = "a lighthouse", steps: int = 2) -> RunConfig:
    config = RunConfig.model_validate({"prompt": prompt, "seed": 1234})
    t2i = config.txt2img.model_copy(
        update={"model": DEMO_CHOICES.checkpoints[0], "width": 64, "height": 64, "steps": steps}
    )
    return config.model_copy(update={"txt2img": t2i})


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


@pytest.fixture
def make_window(make_main_window: MakeMainWindow, queue: JobQueue) -> MakeWindow:
    """``make_main_window`` with the window given ``queue``."""
    return lambda executor=None: make_main_window(executor, queue=queue, idle_delay_ms=50)


def panel_of(window: MainWindow) -> QueuePanel:
    assert window.queue_panel is not None
    return window.queue_panel


def history_of(window: MainWindow) -> HistoryPanel:
    assert window.history_panel is not None
    return window.history_panel


def shown_ids(panel: QueuePanel) -> list[int]:
    return [panel.list.item(row).data(Qt.ItemDataRole.UserRole) for row in range(panel.list.count())]


def wait_listed(qtbot: Any, panel: QueuePanel, queue: JobQueue, ids: list[int] | None = None) -> None:
    """Wait until the panel shows the queue's active jobs as they are now (the panel's operations
    and refreshes run on the queue thread), and, with ``ids``, until those are the jobs shown."""

    def shown() -> bool:
        current = panel.jobs == queue.list(status=ACTIVE_STATUSES)
        return current and (ids is None or shown_ids(panel) == ids)

    qtbot.waitUntil(shown, timeout=RUN_TIMEOUT_MS)


def test_add_to_queue_button_lists_the_job_and_counts_it(
    qtbot: Any, make_window: MakeWindow, queue: JobQueue
) -> None:
    window = make_window()
    small_txt2img(qtbot, window, "a red barn")
    qtbot.mouseClick(window.add_to_queue_button, Qt.MouseButton.LeftButton)
    panel = panel_of(window)
    qtbot.waitUntil(lambda: len(queue.list()) == 1, timeout=RUN_TIMEOUT_MS)
    [job] = queue.list()
    wait_listed(qtbot, panel, queue, [job.id])
    assert job.status is JobStatus.QUEUED and job.config.prompt == "a red barn"
    assert shown_ids(panel) == [job.id]
    assert "a red barn" in panel.list.item(0).text()
    assert panel.count_label.text() == "Queued: 1"
    assert window.tabs.indexOf(panel) >= 0


def test_reorder_through_the_queue_is_reflected(qtbot: Any, make_window: MakeWindow, queue: JobQueue) -> None:
    panel = panel_of(make_window())
    a, b, c = (queue.add(small_config(p))[0] for p in ("a", "b", "c"))
    queue.move_to(c.id, 0)
    wait_listed(qtbot, panel, queue, [c.id, a.id, b.id])
    panel.move_down(c.id)
    panel.move_to_top(b.id)
    wait_listed(qtbot, panel, queue, [b.id, a.id, c.id])


def test_dragging_a_row_moves_the_job(qtbot: Any, make_window: MakeWindow, queue: JobQueue) -> None:
    panel = panel_of(make_window())
    a, b, c = (queue.add(small_config(p))[0] for p in ("a", "b", "c"))
    wait_listed(qtbot, panel, queue, [a.id, b.id, c.id])
    # What an internal drag does to the list's model: move row 0 below row 2.
    panel.list.model().moveRow(panel.list.rootIndex(), 0, panel.list.rootIndex(), 3)
    qtbot.waitUntil(lambda: [job.id for job in queue.list()] == [b.id, c.id, a.id], timeout=RUN_TIMEOUT_MS)
    wait_listed(qtbot, panel, queue, [b.id, c.id, a.id])


def wait_status(qtbot: Any, queue: JobQueue, job_id: int, status: JobStatus) -> None:
    qtbot.waitUntil(lambda: queue.get(job_id).status is status, timeout=RUN_TIMEOUT_MS)


def test_cancel_remove_retry_and_load(qtbot: Any, make_window: MakeWindow, queue: JobQueue) -> None:
    window = make_window()
    panel = panel_of(window)
    a, b = (queue.add(small_config(p))[0] for p in ("first", "second"))
    panel.cancel(a.id)
    wait_status(qtbot, queue, a.id, JobStatus.CANCELLED)
    panel.retry(a.id)
    wait_status(qtbot, queue, a.id, JobStatus.QUEUED)
    panel.remove(b.id)
    wait_listed(qtbot, panel, queue, [a.id])
    with qtbot.waitSignal(panel.errorOccurred):
        panel.retry(a.id)  # a queued job cannot be retried: a message, not an exception
    with qtbot.waitSignal(panel.loadRequested):
        panel.load(a.id)
    assert window.model.config.prompt == "first"
    menu = panel.context_menu(queue.get(a.id))
    enabled = {action.text() for action in menu.actions() if action.isEnabled()}
    assert enabled == {
        "Run now",
        "Cancel",
        "Remove",
        "Move up",
        "Move down",
        "Move to top",
        "Load into the editor",
    }
    menu.deleteLater()


def test_run_queue_completes_jobs_in_order(qtbot: Any, make_window: MakeWindow, queue: JobQueue) -> None:
    executor = FakeExecutor().fail_at("txt2img", "scripted failure")
    window = make_window(executor)
    panel = panel_of(window)
    bridge = window.bridge
    ids = [queue.add(small_config(p))[0].id for p in ("one", "two")]
    started: list[int] = []
    bridge.jobStarted.connect(lambda event: started.append(event.job.id))
    with qtbot.waitSignal(bridge.queueRunFinished, timeout=RUN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert finished.args[0].jobs_run == 2
    assert started == ids
    # The failing first job did not stop the second (FakeExecutor fails every txt2img here).
    assert [queue.get(i).status for i in ids] == [JobStatus.FAILED, JobStatus.FAILED]

    executor2 = FakeExecutor()
    window.host.replace_engine(executor2)
    for job_id in ids:
        panel.retry(job_id)
    for job_id in ids:
        wait_status(qtbot, queue, job_id, JobStatus.QUEUED)
    with qtbot.waitSignal(bridge.queueRunFinished, timeout=RUN_TIMEOUT_MS):
        window.host.run_queue()
    assert [queue.get(i).status for i in ids] == [JobStatus.COMPLETED, JobStatus.COMPLETED]
    wait_listed(qtbot, panel, queue, [])
    qtbot.waitUntil(lambda: panel.count_label.text() == "Queued: 0", timeout=RUN_TIMEOUT_MS)
    assert panel.jobs == [], "finished jobs move to the history"
    history = history_of(window)
    qtbot.waitUntil(lambda: [job.id for job in history.jobs] == ids[::-1], timeout=RUN_TIMEOUT_MS)
    assert "completed" in history.list.item(0).text()


class HeldFake(FakeExecutor):
    """Holds each stage until :attr:`release` is set, so a job is surely running meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def generate_images(self, stage, payload, progress, cancel_token):  # type: ignore[no-untyped-def, override]
        self.release.wait(RUN_TIMEOUT_MS / 1000)
        return super().generate_images(stage, payload, progress, cancel_token)


def test_pause_stops_after_the_current_job(qtbot: Any, make_window: MakeWindow, queue: JobQueue) -> None:
    engine = HeldFake()
    window = make_window(engine)
    panel = panel_of(window)
    bridge = window.bridge
    ids = [queue.add(small_config(p))[0].id for p in ("one", "two", "three")]
    with qtbot.waitSignal(bridge.queueRunFinished, timeout=RUN_TIMEOUT_MS) as finished:
        with qtbot.waitSignal(bridge.jobStarted, timeout=RUN_TIMEOUT_MS):
            window.host.run_queue()
        qtbot.waitUntil(lambda: panel.running_job() is not None, timeout=RUN_TIMEOUT_MS)
        assert panel.jobs[0].status is JobStatus.RUNNING
        assert panel.list.item(0).font().bold()  # the running job is highlighted
        qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: queue.paused, timeout=RUN_TIMEOUT_MS)
        engine.release.set()  # the running job finishes; no other starts
    assert finished.args[0].jobs_run == 1
    assert [queue.get(i).status for i in ids] == [JobStatus.COMPLETED, JobStatus.QUEUED, JobStatus.QUEUED]
    wait_listed(qtbot, panel, queue, ids[1:])
    qtbot.waitUntil(lambda: panel.count_label.text() == "Queued: 2 (paused)", timeout=RUN_TIMEOUT_MS)
    assert panel.pause_button.text() == "Resume"
    with qtbot.waitSignal(bridge.queueRunFinished, timeout=RUN_TIMEOUT_MS) as resumed:
        qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)  # Resume runs the queue too
    assert not queue.paused and resumed.args[0].jobs_run == 2
    assert [queue.get(i).status for i in ids] == [JobStatus.COMPLETED] * 3


def test_clear_finished_and_cancel_the_running_job(
    qtbot: Any, make_window: MakeWindow, queue: JobQueue
) -> None:
    window = make_window(FakeExecutor(step_delay=0.2))
    panel = panel_of(window)
    bridge = window.bridge
    first = queue.add(small_config("long"))[0]
    with qtbot.waitSignal(bridge.jobStarted, timeout=RUN_TIMEOUT_MS):
        window.host.run_queue()
    with qtbot.waitSignal(bridge.queueRunFinished, timeout=RUN_TIMEOUT_MS):
        panel.cancel(first.id)
    assert queue.get(first.id).status is JobStatus.CANCELLED
    history = history_of(window)
    qtbot.waitUntil(lambda: [job.id for job in history.jobs] == [first.id], timeout=RUN_TIMEOUT_MS)
    qtbot.mouseClick(history.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: history.jobs == [], timeout=RUN_TIMEOUT_MS)
    assert queue.list() == []


def test_every_window_has_the_queue_the_app_ships(qtbot: Any, make_main_window: Any) -> None:
    """No second road: a window always runs its jobs through a queue (a file, or a temporary one)."""
    window = make_main_window()
    assert window.session.queue.path.name == "queue-0.sqlite3" and not window.session.temporary_queue
    assert window.tabs.indexOf(window.queue_panel) >= 0 and window.tabs.indexOf(window.history_panel) >= 0
    assert window.add_to_queue_button.isVisible()


def test_a_group_moves_pauses_and_cancels_as_one_from_the_context_menu(
    qtbot: Any, make_window: MakeWindow, queue: JobQueue
) -> None:
    panel = panel_of(make_window())
    group = queue.add_group(
        [small_config(f"cell {i}") for i in range(3)], "pack", {"label": "pack cells.txt"}
    )
    [single] = queue.add(small_config("alone"))
    members = [job.id for job in queue.group_jobs(group.id)]
    wait_listed(qtbot, panel, queue, [*members, single.id])
    assert f"[group {group.id}: pack cells.txt]" in panel.list.item(0).text()
    assert "[group" not in panel.list.item(3).text()

    def entry(text: str) -> QAction:
        menu = panel.context_menu(queue.get(members[1]))
        [found] = [a for a in menu.actions() if a.text() == text]
        return found

    assert f"Group {group.id}: pack cells.txt" in [
        a.text() for a in panel.context_menu(queue.get(members[1])).actions()
    ]
    entry("Move the group to the bottom").trigger()
    wait_listed(qtbot, panel, queue, [single.id, *members])
    entry("Move the group to the top").trigger()
    wait_listed(qtbot, panel, queue, [*members, single.id])
    entry("Pause the group").trigger()
    qtbot.waitUntil(lambda: queue.group(group.id).paused, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: "pack cells.txt, paused]" in panel.list.item(0).text(), timeout=RUN_TIMEOUT_MS)
    assert queue.next_job() is not None and queue.get(single.id).status is JobStatus.RUNNING, (
        "others still run"
    )
    queue.mark_completed(single.id, "run-alone", [])
    entry("Resume the group").trigger()
    qtbot.waitUntil(lambda: not queue.group(group.id).paused, timeout=RUN_TIMEOUT_MS)
    wait_listed(qtbot, panel, queue, members)
    entry("Cancel the group (3 job(s) still to run)").trigger()
    qtbot.waitUntil(
        lambda: [queue.get(i).status for i in members] == [JobStatus.CANCELLED] * 3, timeout=RUN_TIMEOUT_MS
    )
    wait_listed(qtbot, panel, queue, [])
