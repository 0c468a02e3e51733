"""EventBridge: the one place core events become Qt signals.

The EngineSession calls :meth:`EventBridge.post` with every event (runs, jobs, queue changes, engine
reports) on whichever thread caused it: the engine thread, the queue thread. ``post`` only appends to
a locked queue and, when the queue was empty, wakes the GUI thread through a queued connection; the
GUI thread then drains the queue in order and emits one typed signal per event. Consecutive
:class:`StepProgress` events are coalesced (latest wins), so a slow GUI never falls behind the
engine and previews stay throttled to what the event loop can show; consecutive
:class:`QueueChanged` events are merged the same way (one refresh for a burst of changes), and consecutive
:class:`WorkersChanged` keep only the latest (each one is the whole pool's state).
"""

from __future__ import annotations

import threading
from collections import deque

from PySide6.QtCore import QObject, Qt, Signal, SignalInstance

from ..core import events as ev


class EventBridge(QObject):
    """Turns core events (posted from any thread) into signals emitted on the GUI thread, in order.

    Never touch widgets from :meth:`post`: it runs on the engine's threads.
    """

    # a run
    runStarted = Signal(object)  # RunStarted
    stageStarted = Signal(object)  # StageStarted
    stepProgress = Signal(object)  # StepProgress
    stageFinished = Signal(object)  # StageFinished
    runCompleted = Signal(object)  # RunCompleted
    runFailed = Signal(object)  # RunFailed
    runCancelled = Signal(object)  # RunCancelled
    lifecycleChanged = Signal(object)  # LifecycleChanged
    # a job
    jobStarted = Signal(object)  # JobStarted
    jobFinished = Signal(object)  # JobFinished
    jobInterrupted = Signal(object)  # JobInterrupted
    queuePaused = Signal(object)  # QueuePaused
    groupFinished = Signal(object)  # GroupFinished
    # the queue and the session
    queueChanged = Signal(object)  # QueueChanged
    interruptedJobsFound = Signal(object)  # InterruptedJobsFound
    queueRunFinished = Signal(object)  # QueueRunFinished
    engineReported = Signal(object)  # EngineReported
    sessionRefused = Signal(object)  # SessionRefused
    workersChanged = Signal(object)  # WorkersChanged

    _wake = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending: deque[ev.SessionEvent] = deque()
        self._signals: dict[type, SignalInstance] = {
            ev.RunStarted: self.runStarted,
            ev.StageStarted: self.stageStarted,
            ev.StepProgress: self.stepProgress,
            ev.StageFinished: self.stageFinished,
            ev.RunCompleted: self.runCompleted,
            ev.RunFailed: self.runFailed,
            ev.RunCancelled: self.runCancelled,
            ev.LifecycleChanged: self.lifecycleChanged,
            ev.JobStarted: self.jobStarted,
            ev.JobFinished: self.jobFinished,
            ev.JobInterrupted: self.jobInterrupted,
            ev.QueuePaused: self.queuePaused,
            ev.GroupFinished: self.groupFinished,
            ev.QueueChanged: self.queueChanged,
            ev.InterruptedJobsFound: self.interruptedJobsFound,
            ev.QueueRunFinished: self.queueRunFinished,
            ev.EngineReported: self.engineReported,
            ev.SessionRefused: self.sessionRefused,
            ev.WorkersChanged: self.workersChanged,
        }
        self._wake.connect(self._on_wake, Qt.ConnectionType.QueuedConnection)

    def post(self, event: ev.SessionEvent) -> None:
        """Queue ``event`` for the GUI thread. Safe from any thread; never blocks on the GUI."""
        with self._lock:
            last = self._pending[-1] if self._pending else None
            if isinstance(event, ev.StepProgress) and isinstance(last, ev.StepProgress):
                self._pending[-1] = event  # latest wins
                return
            if isinstance(event, ev.QueueChanged) and isinstance(last, ev.QueueChanged):
                merged = tuple(dict.fromkeys((*last.job_ids, *event.job_ids)))
                self._pending[-1] = ev.QueueChanged(merged)
                return
            if isinstance(event, ev.WorkersChanged) and isinstance(last, ev.WorkersChanged):
                self._pending[-1] = event  # the workers as they are now: latest wins
                return
            was_empty = not self._pending
            self._pending.append(event)
        if was_empty:
            self._wake.emit()

    def _on_wake(self) -> None:
        with self._lock:
            events = list(self._pending)
            self._pending.clear()
        for event in events:
            self._signals[type(event)].emit(event)
