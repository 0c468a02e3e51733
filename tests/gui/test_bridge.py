"""EventBridge: events posted on another thread arrive on the GUI thread, in order, progress coalesced."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QThread
from pytestqt.qtbot import QtBot

from stablenew_qt.core import events as ev
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.sequencer import StageExecutionPlan, StageName
from stablenew_qt.gui.bridge import EventBridge


def _progress(step: int) -> ev.StepProgress:
    return ev.StepProgress("r", StageName.TXT2IMG, 0, 1, step, 10, step / 10)


def test_events_from_a_worker_thread_arrive_on_the_gui_thread_in_order(qtbot: QtBot) -> None:
    bridge = EventBridge()
    gui_thread = QThread.currentThread()
    threads: list[bool] = []
    bridge.stepProgress.connect(lambda _e: threads.append(QThread.currentThread() is gui_thread))
    events: list[ev.RunEvent] = [
        ev.LifecycleChanged(LifecycleState.IDLE, LifecycleState.RUNNING),
        ev.RunStarted("r", StageExecutionPlan((), None), (1,)),
        ev.StageStarted("r", StageName.TXT2IMG, 0, 1),
        _progress(1),
        _progress(2),
        _progress(3),
        ev.StageFinished("r", StageName.TXT2IMG, 0, 0.1, 1),
        ev.RunCompleted("r", Path("out"), (), Path("out/manifest.json"), 0.2),
        ev.LifecycleChanged(LifecycleState.RUNNING, LifecycleState.COMPLETED),
    ]
    worker = threading.Thread(target=lambda: [bridge.post(e) for e in events])
    with qtbot.waitSignals(
        [
            bridge.lifecycleChanged,
            bridge.runStarted,
            bridge.stageStarted,
            bridge.stepProgress,
            bridge.stageFinished,
            bridge.runCompleted,
            bridge.lifecycleChanged,
        ],
        order="strict",
        timeout=5000,
    ):
        worker.start()
        worker.join()
    assert threads and all(threads)


def test_consecutive_progress_is_coalesced_latest_wins(qtbot: QtBot) -> None:
    bridge = EventBridge()
    seen: list[int] = []
    bridge.stepProgress.connect(lambda e: seen.append(e.step))
    for step in range(1, 6):
        bridge.post(_progress(step))
    with qtbot.waitSignal(bridge.stageFinished, timeout=2000):
        bridge.post(ev.StageFinished("r", StageName.TXT2IMG, 0, 0.1, 1))
    assert seen == [5]


def test_every_event_kind_has_its_signal_and_queue_changes_merge(qtbot: QtBot) -> None:
    bridge = EventBridge()
    heard: list[object] = []
    bridge.queueChanged.connect(heard.append)
    bridge.engineReported.connect(heard.append)
    bridge.sessionRefused.connect(heard.append)
    for event in (ev.QueueChanged((1,)), ev.QueueChanged((2, 1)), ev.QueueChanged(())):
        bridge.post(event)
    bridge.post(ev.EngineReported("CPU (float32)"))
    with qtbot.waitSignal(bridge.sessionRefused, timeout=2000):
        bridge.post(ev.SessionRefused("another process runs this queue"))
    assert heard == [
        ev.QueueChanged((1, 2)),  # one refresh for a burst of changes
        ev.EngineReported("CPU (float32)"),
        ev.SessionRefused("another process runs this queue"),
    ]
    kinds = set(ev.RunEvent.__args__) | set(ev.JobEvent.__args__) | set(ev.SessionNotice.__args__)  # type: ignore[attr-defined]
    assert kinds == set(bridge._signals), "a signal for every event the session announces"


def test_workers_changed_reaches_its_signal_latest_wins(qtbot: QtBot) -> None:
    bridge = EventBridge()
    heard: list[ev.WorkersChanged] = []
    bridge.workersChanged.connect(heard.append)
    first = ev.WorkersChanged((ev.WorkerInfo("w0", state=ev.WorkerState.STARTING),))
    latest = ev.WorkersChanged((ev.WorkerInfo("w0", state=ev.WorkerState.IDLE),))
    bridge.post(first)
    bridge.post(latest)
    with qtbot.waitSignal(bridge.sessionRefused, timeout=2000):
        bridge.post(ev.SessionRefused("x"))
    assert heard == [latest]
