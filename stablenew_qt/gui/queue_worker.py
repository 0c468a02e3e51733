"""QueueWorker: runs the JobQueue's jobs on the engine thread, one at a time.

It lives on the :class:`~stablenew_qt.gui.engine_thread.EngineThread`'s QThread, beside the
EngineWorker, and drives a :class:`~stablenew_qt.core.job_runner.SingleNodeJobRunner` with the
engine's AppController, so every job runs where every other run runs. The GUI asks it to work
through the queue with a queued signal (:meth:`QueueWorker.request_run`) and hears back through its
signals, which arrive on the GUI thread. Never touch a widget from its slots.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal, Slot

from ..core.controller import RunInProgress
from ..core.job_runner import JobEvent, JobFinished, JobStarted, SingleNodeJobRunner
from ..core.queue import JobQueue
from .engine_thread import EngineThread

log = logging.getLogger(__name__)


class QueueWorker(QObject):
    """Works through ``queue`` on ``engine``'s thread until it is empty, paused or the window closes.

    A failing job never stops it (see SingleNodeJobRunner). Construct it on the GUI thread; it
    moves itself to the engine thread and is deleted when that thread finishes.
    """

    #: A job was claimed and its run is starting (the Job, status running).
    jobStarted = Signal(object)
    #: A job ended (the Job as recorded: completed, failed or cancelled).
    jobFinished = Signal(object)
    #: The run through the queue stopped (how many jobs it ran).
    queueFinished = Signal(int)
    #: The queue could not start (message for the user).
    queueRejected = Signal(str)

    _runRequested = Signal()

    def __init__(self, queue: JobQueue, engine: EngineThread) -> None:
        super().__init__()
        self.queue = queue
        self._closing = engine.worker.closing
        self.runner = SingleNodeJobRunner(queue, engine.controller)
        self.runner.subscribe(self._on_job_event)
        self.moveToThread(engine.qthread)
        engine.qthread.finished.connect(self.deleteLater)
        # Emitted on the GUI thread, received on the engine thread: a queued call.
        self._runRequested.connect(self._on_run_requested)

    def request_run(self) -> None:
        """Work through the queued jobs on the engine thread (returns at once)."""
        self._runRequested.emit()

    def cancel_current(self) -> bool:
        """Stop the running job at its next step (it becomes cancelled); safe from any thread."""
        return self.runner.cancel_current()

    @Slot()
    def _on_run_requested(self) -> None:
        ran = 0
        try:
            while not self._closing.is_set():
                if self.runner.run_next() is None:
                    break
                ran += 1
        except RunInProgress as exc:
            self.queueRejected.emit(str(exc))
        except Exception:
            log.exception("the queue stopped on an unexpected error")
            self.queueRejected.emit("the queue stopped on an unexpected error (details in the log)")
        self.queueFinished.emit(ran)

    def _on_job_event(self, event: JobEvent) -> None:
        if isinstance(event, JobStarted):
            self.jobStarted.emit(event.job)
        elif isinstance(event, JobFinished):
            self.jobFinished.emit(event.job)
