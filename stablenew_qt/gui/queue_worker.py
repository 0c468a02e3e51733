"""QueueWorker: runs the JobQueue's jobs on the engine thread, one at a time.

It lives on the :class:`~stablenew_qt.gui.engine_thread.EngineThread`'s QThread, beside the
EngineWorker, and drives a :class:`~stablenew_qt.core.job_runner.SingleNodeJobRunner` with the
engine's AppController, so every job runs where every other run runs. The GUI asks it to work
through the queue with a queued signal (:meth:`QueueWorker.request_run`) and hears back through its
signals, which arrive on the GUI thread. Never touch a widget from its slots.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import QObject, Signal, Slot

from ..core.controller import RunInProgress
from ..core.job_runner import JobEvent, JobFinished, JobStarted, SingleNodeJobRunner
from ..core.queue import JobQueue, JobStatus, QueueError
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
    #: After :meth:`request_recover`: the jobs that are interrupted now (a crash, or the app was
    #: closed while they ran), oldest first; empty when there are none.
    interruptedFound = Signal(list)

    _runRequested = Signal()
    _jobRequested = Signal(int)
    _recoverRequested = Signal()

    def __init__(self, queue: JobQueue, engine: EngineThread) -> None:
        super().__init__()
        self.queue = queue
        self._closing = engine.worker.closing
        self.runner = SingleNodeJobRunner(queue, engine.controller)
        self.runner.subscribe(self._on_job_event)
        self.moveToThread(engine.qthread)
        engine.qthread.finished.connect(self.deleteLater)
        # Emitted on the GUI thread, received on the engine thread: queued calls.
        self._runRequested.connect(self._on_run_requested)
        self._jobRequested.connect(self._on_job_requested)
        self._recoverRequested.connect(self._on_recover_requested)

    def request_run(self) -> None:
        """Work through the queued jobs on the engine thread (returns at once)."""
        self._runRequested.emit()

    def request_job(self, job_id: int) -> None:
        """Run the queued job ``job_id`` as soon as the engine is free, out of turn and even while
        the queue is paused ("Generate"). If the queue is being worked through, it runs next."""
        self._jobRequested.emit(job_id)

    def request_recover(self) -> None:
        """Take over the queue on the engine thread (jobs a crash left running become
        interrupted, their half-written files are removed), then emit :attr:`interruptedFound`."""
        self._recoverRequested.emit()

    def cancel_current(self) -> bool:
        """Stop the running job at its next step (it becomes cancelled); safe from any thread."""
        return self.runner.cancel_current()

    def interrupt_current(self) -> bool:
        """The app is closing: stop the running job so it is offered for resume at the next start."""
        return self.runner.interrupt_current()

    @Slot()
    def _on_run_requested(self) -> None:
        ran = 0
        with self._reporting_errors():
            while not self._closing.is_set():
                if self.runner.run_next() is None:
                    break
                ran += 1
        self.queueFinished.emit(ran)

    @Slot(int)
    def _on_job_requested(self, job_id: int) -> None:
        if self._closing.is_set():
            return
        with self._reporting_errors():
            self.runner.run_job(job_id)

    @Slot()
    def _on_recover_requested(self) -> None:
        if self._closing.is_set():
            return
        with self._reporting_errors():
            self.runner.recover()
            self.interruptedFound.emit(self.queue.list(status=JobStatus.INTERRUPTED))

    @contextmanager
    def _reporting_errors(self) -> Iterator[None]:
        try:
            yield
        except (RunInProgress, QueueError) as exc:  # QueueLocked: another process runs this queue
            self.queueRejected.emit(str(exc))
        except Exception:
            log.exception("the queue stopped on an unexpected error")
            self.queueRejected.emit("the queue stopped on an unexpected error (details in the log)")

    def _on_job_event(self, event: JobEvent) -> None:
        if isinstance(event, JobStarted):
            self.jobStarted.emit(event.job)
        elif isinstance(event, JobFinished):
            self.jobFinished.emit(event.job)
