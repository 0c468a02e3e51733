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
