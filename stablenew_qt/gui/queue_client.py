"""QueueClient: the window's hands on the JobQueue, off the GUI thread.

Every read and write of the queue file (add, cancel, reorder, list, the history) runs on the
client's own thread, one at a time, in the order asked (like Anki's single database worker): a
write waits for SQLite's full sync, and a read may wait for the engine thread's write, and the GUI
thread must wait for neither. Each call takes an ``on_done`` callback, called on the GUI thread
with the result; a refused operation (a QueueError or ConfigError) calls ``on_error`` with its
message, or emits :attr:`QueueClient.errorOccurred` when there is no ``on_error``.

Callbacks run on the GUI thread but after the call returned: never assume the widget that asked is
still interested (check its state first). After :meth:`shutdown` no callback runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.job_group import GroupKind, JobGroup
from ..core.queue import Job, JobQueue, JobStatus, QueueError
from ..core.session import EngineSession

log = logging.getLogger(__name__)

#: How long closing the window waits for the queue thread's last operation (ms).
SHUTDOWN_WAIT_MS = 30_000


@dataclass(frozen=True)
class _Call:
    work: Callable[[], Any]
    on_done: Callable[[Any], None] | None
    on_error: Callable[[str], None] | None


class _QueueWorker(QObject):
    """Lives on the queue thread; runs each call and hands the outcome back."""

    finished = Signal(object, object, object)  # _Call, result, error message (or None)

    @Slot(object)
    def _on_call_requested(self, call: _Call) -> None:
        try:
            result, error = call.work(), None
        except (QueueError, ConfigError) as exc:
            result, error = None, str(exc)
        except Exception as exc:
            log.exception("a queue operation failed")
            result, error = (
                None,
                f"the queue operation failed: {type(exc).__name__}: {exc} (details in the log)",
            )
        self.finished.emit(call, result, error)


class QueueClient(QObject):
    """Runs ``session``'s queue operations on the ``queue`` thread; results arrive on the GUI thread."""

    #: An operation without ``on_error`` was refused (message for the user).
    errorOccurred = Signal(str)

    _callRequested = Signal(object)

    def __init__(self, session: EngineSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._closed = False
        self.thread_ = QThread(self)
        self.thread_.setObjectName("queue")
        self._worker = _QueueWorker()
        self._worker.moveToThread(self.thread_)
        self.thread_.finished.connect(self._worker.deleteLater)
        self._callRequested.connect(self._worker._on_call_requested)
        self._worker.finished.connect(self._on_worker_finished)
        self.thread_.start()

    @property
    def queue(self) -> JobQueue:
        """The queue itself: for the worker's calls only (``call(lambda: client.queue...)``)."""
        return self.session.queue

    def call(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Run ``work()`` on the queue thread; then ``on_done(result)`` or ``on_error(message)`` on
        the GUI thread. Returns at once."""
        if not self._closed:
            self._callRequested.emit(_Call(work, on_done, on_error))

    def shutdown(self) -> None:
        """Finish the operation running now, drop the rest and stop the thread. Safe to call twice."""
        self._closed = True
        if self.thread_.isRunning():
            self.thread_.quit()
            if not self.thread_.wait(SHUTDOWN_WAIT_MS):
                log.error("the queue thread did not stop within %d s", SHUTDOWN_WAIT_MS // 1000)

    @Slot(object, object, object)
    def _on_worker_finished(self, call: _Call, result: Any, error: str | None) -> None:
        if self._closed:
            return
        if error is not None:
            (call.on_error or self.errorOccurred.emit)(error)
        elif call.on_done is not None:
            call.on_done(result)

    # -- the operations the window and the panels use ---------------------------------------------
    def add(
        self,
        config: RunConfig,
        *,
        front: bool = False,
        on_done: Callable[[Job], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Queue ``config`` (first in line with ``front``); ``on_done`` gets the new Job."""
        self.call(lambda: self.session.enqueue(config, front=front)[0], on_done, on_error)

    def add_group(
        self,
        configs: Sequence[RunConfig],
        kind: GroupKind,
        meta: Mapping[str, Any],
        *,
        indices: Sequence[int] | None = None,
        on_done: Callable[[JobGroup], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Queue ``configs`` as one group (a sweep's cells in run order); ``on_done`` gets the JobGroup."""
        self.call(lambda: self.queue.add_group(configs, kind, meta, indices=indices), on_done, on_error)

    def list(self, statuses: Iterable[JobStatus], on_done: Callable[[list[Job]], None]) -> None:
        wanted = tuple(statuses)
        self.call(lambda: self.queue.list(status=wanted), on_done)

    def get(self, job_id: int, on_done: Callable[[Job], None]) -> None:
        self.call(lambda: self.queue.get(job_id), on_done)

    def config_of(
        self, job_id: int, on_done: Callable[[RunConfig], None], on_error: Callable[[str], None]
    ) -> None:
        """Job ``job_id``'s RunConfig; ``on_error`` when the job is gone or its config no longer
        validates."""
        self.call(lambda: self.queue.get(job_id).config, on_done, on_error)

    def cancel(self, job_id: int) -> None:
        """A queued or interrupted job is cancelled at once; the running one stops at its next step."""
        self.call(lambda: self.session.cancel(job_id))

    def remove(self, job_id: int) -> None:
        self.call(lambda: self.queue.remove(job_id))

    def retry(
        self, job_id: int, *, front: bool = False, on_done: Callable[[Job], None] | None = None
    ) -> None:
        self.call(lambda: self.queue.retry(job_id, front=front), on_done)

    def requeue(
        self,
        job_id: int,
        *,
        new_seed: bool,
        on_done: Callable[[Job], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.call(lambda: self.queue.requeue(job_id, new_seed=new_seed), on_done, on_error)

    def move_up(self, job_id: int) -> None:
        self.call(lambda: self.queue.move_up(job_id))

    def move_down(self, job_id: int) -> None:
        self.call(lambda: self.queue.move_down(job_id))

    def move_to_top(self, job_id: int) -> None:
        self.call(lambda: self.queue.move_to_top(job_id))

    def move_to(self, job_id: int, index: int, on_done: Callable[[bool], None] | None = None) -> None:
        self.call(lambda: self.queue.move_to(job_id, index), on_done)

    def set_paused(self, paused: bool) -> None:
        self.call(self.queue.pause if paused else self.queue.resume)

    def clear_finished(self) -> None:
        self.call(self.queue.clear_finished)
