"""EventBridge: the one place core RunEvents become Qt signals.

The AppController calls :meth:`EventBridge.post` on the engine thread. ``post`` only appends to a
locked queue and, when the queue was empty, wakes the GUI thread through a queued connection; the
GUI thread then drains the queue in order and emits one typed signal per event. Consecutive
:class:`StepProgress` events are coalesced (latest wins), so a slow GUI never falls behind the
engine and previews stay throttled to what the event loop can show.
"""

from __future__ import annotations

import threading
from collections import deque

from PySide6.QtCore import QObject, Qt, Signal

from ..core.events import (
    LifecycleChanged,
    RunCancelled,
    RunCompleted,
    RunEvent,
    RunFailed,
    RunStarted,
    StageFinished,
    StageStarted,
    StepProgress,
)


class EventBridge(QObject):
    """Turns core events (posted from any thread) into signals emitted on the GUI thread, in order.

    Never touch widgets from :meth:`post`: it runs on the engine thread.
    """

    runStarted = Signal(object)  # RunStarted
    stageStarted = Signal(object)  # StageStarted
    stepProgress = Signal(object)  # StepProgress
    stageFinished = Signal(object)  # StageFinished
    runCompleted = Signal(object)  # RunCompleted
    runFailed = Signal(object)  # RunFailed
    runCancelled = Signal(object)  # RunCancelled
    lifecycleChanged = Signal(object)  # LifecycleChanged

    _wake = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending: deque[RunEvent] = deque()
        self._wake.connect(self._on_wake, Qt.ConnectionType.QueuedConnection)

    def post(self, event: RunEvent) -> None:
        """Queue ``event`` for the GUI thread. Safe from any thread; never blocks on the GUI."""
        with self._lock:
            if (
                isinstance(event, StepProgress)
                and self._pending
                and isinstance(self._pending[-1], StepProgress)
            ):
                self._pending[-1] = event  # latest wins
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
            self._dispatch(event)

    def _dispatch(self, event: RunEvent) -> None:
        match event:
            case RunStarted():
                self.runStarted.emit(event)
            case StageStarted():
                self.stageStarted.emit(event)
            case StepProgress():
                self.stepProgress.emit(event)
            case StageFinished():
                self.stageFinished.emit(event)
            case RunCompleted():
                self.runCompleted.emit(event)
            case RunFailed():
                self.runFailed.emit(event)
            case RunCancelled():
                self.runCancelled.emit(event)
            case LifecycleChanged():
                self.lifecycleChanged.emit(event)
