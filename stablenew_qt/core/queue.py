"""JobQueue: the durable list of runs waiting, running and done, in one SQLite file.

A job is an immutable RunConfig (stored as JSON) plus its status::

    queued -> running -> completed | failed | cancelled
                      -> interrupted   (the process died while it ran; found on the next start)
    queued | interrupted -> cancelled
    failed | cancelled | interrupted -> queued   (retry)

Jobs run in order of ``priority`` (higher first), then ``position`` (lower first); "Generate"
puts a job at the front, "Add to queue" at the end, and the move operations reorder. Every
operation is one SQLite transaction, safe from any thread and from other processes, and works
while a job runs. Only the one JobQueue that runs jobs (the first to call :meth:`JobQueue.next_job`
or :meth:`JobQueue.recover_interrupted`) holds the file's runner lock; a queue opened only to add,
list or cancel jobs never touches the running job. See ``docs/queue.md``.
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType

from . import queue_sql as sql
from .config import RunConfig
from .errors import FailureCause, FailureKind
from .events import QueueChanged
from .job import (
    FINISHED_STATUSES,
    RETRYABLE_STATUSES,
    Job,
    JobStatus,
    filter_jobs,
    job_from_row,
    stepped_copies,
    with_new_seed,
)
from .job_group import GridState, GroupKind, JobGroup
from .listeners import Listeners, Unsubscribe
from .outputs import app_data_dir
from .queue_db import QueueError, QueueLocked, QueueMissing, open_queue_database
from .queue_groups import GroupOperations
from .queue_lock import RunnerLock

__all__ = [
    "FINISHED_STATUSES",
    "RETRYABLE_STATUSES",
    "GridState",
    "GroupKind",
    "Job",
    "JobGroup",
    "JobQueue",
    "JobStatus",
    "QueueChanged",
    "QueueError",
    "QueueLocked",
    "QueueMissing",
    "default_queue_path",
    "filter_jobs",
    "stepped_copies",
    "with_new_seed",
]

log = logging.getLogger(__name__)

QUEUE_FILE_NAME = "queue.sqlite3"


def default_queue_path() -> Path:
    """The queue file unless the user names another: ``<user data dir>/queue.sqlite3``."""
    return app_data_dir() / QUEUE_FILE_NAME


QueueListener = Callable[[QueueChanged], None]


class JobQueue(GroupOperations):
    """The durable queue in ``path`` (default :func:`default_queue_path`). Thread-safe.

    Raises QueueError when the file is damaged, from a newer version or not a queue (a backup
    copy is made first for the first two; the file itself is never changed). Close it (or use
    ``with``) to release the file and the runner lock.
    """

    def __init__(self, path: Path | None = None, *, create: bool = True) -> None:
        self.path = Path(path) if path is not None else default_queue_path()
        self._conn = open_queue_database(self.path, create=create)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._runner_lock = RunnerLock(self.path)
        self._found_interrupted: builtins.list[int] = []
        self._listeners: Listeners[QueueChanged] = Listeners("queue")

    def close(self) -> None:
        with self._lock:
            self._runner_lock.release()
            self._conn.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def subscribe(self, listener: QueueListener) -> Unsubscribe:
        """Call ``listener`` after every change committed through this JobQueue, on the thread
        that made it. Returns a function that unsubscribes it."""
        return self._listeners.subscribe(listener)

    # -- adding and running ----------------------------------------------------------------
    def add(self, config: RunConfig, count: int = 1, *, priority: int = 0) -> builtins.list[Job]:
        """Append ``count`` copies of ``config`` (seeds stepping, see :func:`stepped_copies`)."""
        copies = stepped_copies(config, count)
        with self._write() as db:
            ids = sql.insert_jobs(db, copies, front=False, priority=priority)
        return self._changed(ids)

    def add_front(self, config: RunConfig, count: int = 1) -> builtins.list[Job]:
        """Put ``count`` copies of ``config`` before every queued job ("Generate": run now)."""
        copies = stepped_copies(config, count)
        with self._write() as db:
            ids = sql.insert_jobs(db, copies, front=True, priority=0)
        return self._changed(ids)

    def next_job(self) -> Job | None:
        """Claim the first queued job: it becomes running, with ``attempts`` + 1.

        None when the queue is paused, empty, or a job is already running (one job at a time).
        The first call makes this JobQueue the runner (see :meth:`recover_interrupted`); raises
        QueueLocked if another process is running this queue.
        """
        with self._lock:
            self._become_runner()
            with self._write() as db:
                job_id = None if sql.read_setting(db, "paused") == "1" else sql.claim_next(db)
            return None if job_id is None else self._changed([job_id])[0]

    def claim(self, job_id: int, *, concurrent: bool = False) -> Job | None:
        """Claim the queued job ``job_id`` out of turn ("Generate": run this one now), even while
        the queue is paused. None if it is not queued any more or a job is running already (a
        dispatcher running jobs on several workers passes ``concurrent``). Like
        :meth:`next_job`, makes this JobQueue the runner."""
        with self._lock:
            self._become_runner()
            with self._write() as db:
                claimed = sql.claim(db, job_id, concurrent=concurrent)
            return None if claimed is None else self._changed([claimed])[0]

    def claim_chosen(
        self, choose: Callable[[builtins.list[Job]], Job | None], *, lookahead: int = 64
    ) -> Job | None:
        """Claim the job ``choose`` picks from the first ``lookahead`` runnable jobs (run order,
        paused groups skipped), while other jobs may be running: how a dispatcher places jobs on
        several workers (see core/dispatch.py). One transaction, so nothing else claims or cancels
        the job between the choice and the claim; ``choose`` must be quick and touch no queue.
        None when the queue is paused, nothing is runnable, or ``choose`` returns None."""
        with self._lock:
            self._become_runner()
            with self._write() as db:
                if sql.read_setting(db, "paused") == "1":
                    return None
                chosen = choose(sql.runnable_jobs(db, lookahead))
                claimed = None if chosen is None else sql.claim(db, chosen.id, concurrent=True)
            return None if claimed is None else self._changed([claimed])[0]

    def recover_interrupted(self, auto_resume: bool = False) -> builtins.list[Job]:
        """Jobs left ``running`` by a process that died, now ``interrupted``.

        Becoming the runner (this call or the first :meth:`next_job`) takes the runner lock;
        since its previous holder is gone, every job still marked running was interrupted and
        is marked so. This returns those jobs, once; with ``auto_resume`` they are queued again at
        the front, keeping ``attempts`` (so the re-run is attempt 2). Their ``run_id`` and
        ``output_root`` still name the interrupted run's folder until they are claimed again.
        """
        with self._lock:
            self._become_runner()
            ids, self._found_interrupted = self._found_interrupted, []
            with self._write() as db:
                jobs = [job for job in sql.select_jobs(db, ids) if job.status is JobStatus.INTERRUPTED]
                if auto_resume:
                    sql.requeue(db, [job.id for job in jobs], front=True)
            return self._changed([job.id for job in jobs])

    def release(self, job_id: int) -> Job:
        """Put a claimed job back as queued, as if never started (its run could not begin)."""
        with self._write() as db:
            sql.require(db, job_id, {JobStatus.RUNNING}, "release")
            db.execute(
                "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0), started = NULL "
                "WHERE id = ?",
                (job_id,),
            )
        return self._changed([job_id])[0]

    def record_run(self, job_id: int, run_id: str, output_root: Path) -> None:
        """Note the run folder the running job writes to (``<output_root>/<date>/<run_id>``)."""
        with self._write() as db:
            sql.require(db, job_id)
            db.execute(
                "UPDATE jobs SET run_id = ?, output_root = ? WHERE id = ?", (run_id, str(output_root), job_id)
            )

    def mark_completed(self, job_id: int, run_id: str, outputs: Iterable[Path]) -> Job:
        """The job's run finished; ``outputs`` are its final images, already on disk. The record
        is committed with a full sync before this returns."""
        return self._finish(job_id, JobStatus.COMPLETED, None, None, run_id, outputs)

    def mark_failed(self, job_id: int, cause: FailureCause | str, run_id: str | None = None) -> Job:
        """The job's run failed (or could not start) because of ``cause``; its message becomes
        the job's ``error``. A bare message is recorded as a STAGE failure."""
        if isinstance(cause, str):
            cause = FailureCause(FailureKind.STAGE, cause)
        return self._finish(job_id, JobStatus.FAILED, cause.message, cause, run_id, None)

    def mark_cancelled(self, job_id: int, run_id: str | None = None) -> Job:
        """The job's run was cancelled; nothing of it was kept."""
        cause = FailureCause(FailureKind.CANCELLED, "cancelled by the user")
        return self._finish(job_id, JobStatus.CANCELLED, None, cause, run_id, None)

    def mark_interrupted(self, job_id: int, run_id: str | None = None, message: str | None = None) -> Job:
        """The app was closed while the job ran (or ``message`` says what else stopped it: a
        worker that died): it becomes interrupted, offered for resume on the next start like a
        job a crash interrupted (the run's partial work was discarded)."""
        text = message or sql.CLOSED_MESSAGE
        cause = FailureCause(FailureKind.INTERRUPTED, text)
        return self._finish(job_id, JobStatus.INTERRUPTED, text, cause, run_id, None)

    # -- changing the queue ----------------------------------------------------------------
    def cancel(self, job_id: int) -> bool:
        """Cancel a job. A queued or interrupted job becomes cancelled at once (returns False);
        for the running job the request is recorded and True is returned: the runner must stop
        it (a runner in another process notices the request at its next step). A job that has
        ended already is left alone (False)."""
        with self._write() as db:
            before = sql.cancel(db, job_id)
        self._changed([job_id])
        return before is JobStatus.RUNNING

    def cancel_requested(self, job_id: int) -> bool:
        """True once :meth:`cancel` was called for the running job ``job_id``."""
        with self._lock:
            row = self._conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def remove(self, job_id: int) -> None:
        """Delete a job that is not running, and its record (its images stay on disk)."""
        with self._write() as db:
            sql.require(db, job_id, set(JobStatus) - {JobStatus.RUNNING}, "remove")
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        self._notify((job_id,))

    def move_up(self, job_id: int) -> bool:
        """Swap a queued job with the one before it. False if it is first already."""
        return self._move(job_id, lambda index: index - 1)

    def move_down(self, job_id: int) -> bool:
        """Swap a queued job with the one after it. False if it is last already."""
        return self._move(job_id, lambda index: index + 1)

    def move_to_top(self, job_id: int) -> bool:
        """Make a queued job the next to run. False if it is next already."""
        return self._move(job_id, lambda _index: 0)

    def move_to(self, job_id: int, index: int) -> bool:
        """Move a queued job to ``index`` among the queued jobs (clamped), e.g. after a drag."""
        return self._move(job_id, lambda _index: index)

    def retry(self, job_id: int, *, front: bool = False) -> Job:
        """Queue a failed, cancelled or interrupted job again, at the end (or the front).
        QueueError for other jobs (add a completed job's config again to re-run it)."""
        with self._write() as db:
            sql.require(db, job_id, RETRYABLE_STATUSES, "retry")
            sql.requeue(db, [job_id], front=front)
        return self._changed([job_id])[0]

    def requeue(self, job_id: int, *, new_seed: bool = False, front: bool = False) -> Job:
        """Queue a new job with the config of job ``job_id`` (any status; its record stays in the
        history), at the end or the front. ``new_seed`` draws a fresh random seed (recorded in the
        new job, so its images can be made again); otherwise the config is queued as it was."""
        config = self.get(job_id).config
        if new_seed:
            config = with_new_seed(config)
        return (self.add_front(config) if front else self.add(config))[0]

    def rate(self, job_id: int, rating: int | None) -> Job:
        """Store the user's 1-5 rating of the job's images (None clears it); any status."""
        if rating is not None and not (isinstance(rating, int) and 1 <= rating <= 5):
            raise QueueError(f"a rating is a whole number from 1 to 5, got {rating!r}")
        with self._write() as db:
            sql.require(db, job_id)
            db.execute("UPDATE jobs SET rating = ? WHERE id = ?", (rating, job_id))
        return self._changed([job_id])[0]

    def pause(self) -> None:
        """Start no further job (the running one finishes). Persists across restarts."""
        self._set_paused(True)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        self._set_paused(False)

    @property
    def paused(self) -> bool:
        with self._lock:
            return sql.read_setting(self._conn, "paused") == "1"

    def clear_finished(self) -> int:
        """Delete completed, failed and cancelled jobs (never queued, running or interrupted
        ones), and the groups left without jobs. Returns how many jobs were deleted; their images
        stay on disk."""
        marks = ", ".join("?" * len(sql.FINISHED_VALUES))
        with self._write() as db:
            ids = [
                r[0]
                for r in db.execute(f"SELECT id FROM jobs WHERE status IN ({marks})", sql.FINISHED_VALUES)
            ]
            db.execute(f"DELETE FROM jobs WHERE status IN ({marks})", sql.FINISHED_VALUES)
            # A group left without jobs goes too (its grid file, like the images, stays on disk).
            db.execute(
                "DELETE FROM groups WHERE id NOT IN "
                "(SELECT DISTINCT group_id FROM jobs WHERE group_id IS NOT NULL)"
            )
        self._notify(tuple(ids))
        return len(ids)

    # -- reading ---------------------------------------------------------------------------
    def get(self, job_id: int) -> Job:
        """The job ``job_id``; QueueError if there is none."""
        with self._lock:
            jobs = sql.select_jobs(self._conn, [job_id])
        if not jobs:
            raise QueueError(f"there is no job {job_id} in the queue")
        return jobs[0]

    def list(
        self,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        text: str | None = None,
        *,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        group: int | None = None,
    ) -> builtins.list[Job]:
        """Jobs in display order: running, then queued in run order, then the rest by id.
        ``status`` keeps only those statuses; ``text`` searches prompts, models and errors;
        ``model`` keeps jobs whose first stage uses that model; ``since``/``until`` keep jobs that
        finished (or, not finished yet, were created) in ``[since, until)`` (timezone-aware);
        ``group`` keeps the jobs of that group."""
        wanted = None if status is None else _statuses(status)
        with self._lock:
            rows = sql.select_rows(self._conn, wanted)
        # Parsed without the lock: a long history takes a while, and the runner must not wait.
        jobs = [job_from_row(row) for row in rows if group is None or row["group_id"] == group]
        return filter_jobs(jobs, None, text, model=model, since=since, until=until)

    def counts(self) -> dict[JobStatus, int]:
        """How many jobs have each status (every status present, zeros included)."""
        with self._lock:
            rows = self._conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(status): n for status, n in rows})
        return counts

    # -- internals -------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes SQLite's write lock up front, so a
        read-then-write cannot race another process."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _become_runner(self) -> None:
        if self._runner_lock.held:
            return
        self._runner_lock.acquire()
        with self._write() as db:
            ids = sql.mark_running_interrupted(db)
        self._found_interrupted = ids
        if ids:
            log.warning("jobs %s were interrupted: the process running them ended", ids)
            self._notify(tuple(ids))

    def _finish(
        self,
        job_id: int,
        status: JobStatus,
        error: str | None,
        cause: FailureCause | None,
        run_id: str | None,
        outputs: Iterable[Path] | None,
    ) -> Job:
        with self._write() as db:
            sql.finish(db, job_id, status, error, cause, run_id, outputs)
        return self._changed([job_id])[0]

    def _move(self, job_id: int, target: Callable[[int], int]) -> bool:
        with self._write() as db:
            order = sql.move(db, job_id, target)
        if order is None:
            return False
        self._notify(tuple(order))
        return True

    def _set_paused(self, paused: bool) -> None:
        with self._write() as db:
            sql.write_setting(db, "paused", "1" if paused else "0")
        self._notify(())

    def _changed(self, ids: builtins.list[int]) -> builtins.list[Job]:
        """Notify listeners about ``ids`` and return those jobs as they are now."""
        if ids:
            self._notify(tuple(ids))
        with self._lock:
            return sql.select_jobs(self._conn, ids) if ids else []

    def _notify(self, ids: tuple[int, ...]) -> None:
        self._listeners.emit(QueueChanged(ids))


def _statuses(status: JobStatus | str | Iterable[JobStatus | str]) -> frozenset[JobStatus]:
    items = [status] if isinstance(status, str) else builtins.list(status)
    try:
        return frozenset(JobStatus(s) for s in items)
    except ValueError:
        valid = ", ".join(s.value for s in JobStatus)
        raise QueueError(f"unknown job status in {items!r}; valid statuses: {valid}") from None
