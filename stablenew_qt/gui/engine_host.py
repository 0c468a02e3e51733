"""EngineHost: the window's one handle on its EngineSession, and the threads that serve it.

Two threads, so the GUI thread never waits on the engine or the disk:

- ``engine`` (a QThread) owns all engine work, so every torch import and every run happens there:
  running jobs, taking over the queue at start, the warm-up, engine and output changes;
- ``queue`` (the :class:`~.queue_client.QueueClient`'s thread) does every queue read and write.

The session's events (runs, jobs, queue changes, engine reports) reach the GUI through the one
:class:`~.bridge.EventBridge`; so do the host's own refusals (``SessionRefused``).
Generate is a queue write (the job goes first in line) followed by running that job on the engine
thread; Add to queue is the write alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.config import RunConfig
from ..core.controller import RunInProgress
from ..core.errors import ConfigError
from ..core.events import SessionRefused
from ..core.executor import Engine
from ..core.lifecycle import LifecycleState
from ..core.outputs import OutputSettings
from ..core.queue import Job, QueueError
from ..core.session import EngineSession
from .bridge import EventBridge
from .queue_client import QueueClient

log = logging.getLogger(__name__)

#: How long closing the window waits for a cancelled run to stop before giving up (ms).
SHUTDOWN_WAIT_MS = 30_000


class _EngineWorker(QObject):
    """Lives on the engine thread; its slots run there. Never touches a widget."""

    def __init__(self, session: EngineSession, bridge: EventBridge, closing: threading.Event) -> None:
        super().__init__()
        self.session = session
        self.bridge = bridge
        self.closing = closing

    @Slot()
    def _on_warm_up_requested(self) -> None:
        if self.closing.is_set():
            return
        try:
            self.session.warm_up()
        except Exception:
            # Not fatal: the first run prepares the engine itself and reports any real problem.
            log.exception("engine warm-up failed")

    @Slot(int)
    def _on_job_requested(self, job_id: int) -> None:
        if not self.closing.is_set():
            with self._refusals_reported():
                self.session.run_job(job_id)

    @Slot()
    def _on_queue_run_requested(self) -> None:
        if not self.closing.is_set():
            with self._refusals_reported():
                self.session.run_queue(stop=self.closing)

    @Slot()
    def _on_take_over_requested(self) -> None:
        if not self.closing.is_set():
            with self._refusals_reported():
                self.session.take_over_queue()

    @Slot(object)
    def _on_change_requested(self, change: Callable[[EngineSession], None]) -> None:
        with self._refusals_reported():
            change(self.session)

    @contextmanager
    def _refusals_reported(self) -> Iterator[None]:
        try:
            yield
        except (RunInProgress, QueueError) as exc:  # QueueLocked: another process runs this queue
            self.bridge.post(SessionRefused(str(exc)))
        except ConfigError as exc:  # the workers could not start (no Ray, cluster unreachable)
            self.bridge.post(SessionRefused(str(exc)))
        except Exception:
            log.exception("the engine stopped on an unexpected error")
            self.bridge.post(SessionRefused("the engine stopped on an unexpected error (details in the log)"))


class EngineHost(QObject):
    """Hosts ``session`` for the window: its engine thread, its queue client, its bridge."""

    _warmUpRequested = Signal()
    _jobRequested = Signal(int)
    _queueRunRequested = Signal()
    _takeOverRequested = Signal()
    _changeRequested = Signal(object)

    def __init__(self, session: EngineSession, bridge: EventBridge, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.bridge = bridge
        self._unsubscribe = session.subscribe(bridge.post)
        self.closing = threading.Event()
        self.queue = QueueClient(session, self)
        self.engine_thread = QThread(self)
        self.engine_thread.setObjectName("engine")
        self._worker = _EngineWorker(session, bridge, self.closing)
        self._worker.moveToThread(self.engine_thread)
        self.engine_thread.finished.connect(self._worker.deleteLater)
        # Emitted on the GUI thread, received on the engine thread: queued calls, run in order.
        self._warmUpRequested.connect(self._worker._on_warm_up_requested)
        self._jobRequested.connect(self._worker._on_job_requested)
        self._queueRunRequested.connect(self._worker._on_queue_run_requested)
        self._takeOverRequested.connect(self._worker._on_take_over_requested)
        self._changeRequested.connect(self._worker._on_change_requested)
        self.engine_thread.start()

    @property
    def state(self) -> LifecycleState:
        return self.session.state

    # -- jobs --------------------------------------------------------------------------------
    def generate(
        self,
        config: RunConfig,
        on_queued: Callable[[Job], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """Put ``config`` first in the queue, then run it as soon as the engine is free (even while
        the queue is paused). ``on_queued`` gets the new job on the GUI thread; ``on_refused`` the
        message when it cannot be queued (a config error, a queue that fails)."""

        def queue_then_run() -> Job:  # on the queue thread: the engine hears at once, not via the GUI
            job = self.session.enqueue(config, front=True)[0]
            self.run_job(job.id)
            return job

        self.queue.call(queue_then_run, on_queued, on_refused)

    def enqueue(
        self,
        config: RunConfig,
        on_queued: Callable[[Job], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """Append ``config`` to the queue ("Add to queue")."""
        self.queue.add(config, on_done=on_queued, on_error=on_refused)

    def run_job(self, job_id: int) -> None:
        """Run the queued job ``job_id`` on the engine thread, out of turn (runs next if busy).
        Safe from any thread (a queued signal)."""
        self._jobRequested.emit(job_id)

    def run_queue(self) -> None:
        """Work through the queued jobs on the engine thread (returns at once)."""
        self._queueRunRequested.emit()

    def retry_now(self, job_id: int) -> None:
        """Queue the failed job ``job_id`` again, first, and run it (after trusting its detector)."""

        def retry_then_run() -> Job:
            job = self.session.queue.retry(job_id, front=True)
            self.run_job(job.id)
            return job

        self.queue.call(retry_then_run)

    def take_over_queue(self) -> None:
        """On the engine thread: jobs a crash left running become interrupted; then every
        interrupted job is announced (``bridge.interruptedJobsFound``)."""
        self._takeOverRequested.emit()

    def cancel(self) -> bool:
        """Stop the running job at its next step (it becomes cancelled). Takes no lock and waits for
        nothing (the engine thread is busy inside the run, so this cannot be a queued call)."""
        return self.session.cancel()

    # -- the engine --------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Prepare the engine on its thread (a later job waits for it); reports the device."""
        self._warmUpRequested.emit()

    def return_to_idle(self) -> None:
        """Show IDLE again after a run's end state, on the engine thread."""
        self._changeRequested.emit(EngineSession.return_to_idle)

    def replace_engine(self, engine: Engine) -> None:
        """Run the next jobs on ``engine`` (another models folder or memory mode)."""
        self._changeRequested.emit(lambda session: session.replace_engine(engine))

    def set_output(self, output: OutputSettings) -> None:
        """Write the next jobs as ``output`` says."""
        self._changeRequested.emit(lambda session: session.set_output(output))

    def set_learning_log(self, path: Path | None) -> None:
        """Keep the learning log in ``path`` from the next run on (None: off)."""
        self._changeRequested.emit(lambda session: session.set_learning_log(path))

    def set_pause_on_failure(self, on: bool) -> None:
        """Pause the queue after a failed job (read between jobs; no need to wait for the engine)."""
        self.session.set_pause_on_failure(on)

    def shutdown(self) -> None:
        """Stop the running job (it is offered for resume at the next start), then the threads.
        Waits at most one step of the engine. Safe to call twice."""
        if self.closing.is_set():
            return
        self.closing.set()
        self.session.interrupt()
        self.engine_thread.quit()
        deadline = time.monotonic() + SHUTDOWN_WAIT_MS / 1000
        # Interrupt again on every turn: a job that was just starting may not have had a run yet.
        while not self.engine_thread.wait(20):
            self.session.interrupt()
            if time.monotonic() > deadline:
                log.error("the engine thread did not stop within %d s", SHUTDOWN_WAIT_MS // 1000)
                break
        self.queue.shutdown()
        self._unsubscribe()
