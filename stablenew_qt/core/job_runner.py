"""JobRunner: what takes jobs from the JobQueue and runs them. SingleNodeJobRunner is the one that
runs them one at a time, in this process, through the AppController.

:class:`JobRunner` is the seam an EngineSession runs jobs through: a dispatcher that hands jobs to
workers on several GPUs (each with its own engine, streaming typed events back) can replace the
single-node runner without the window or the CLI noticing.

One GPU, one job: :meth:`SingleNodeJobRunner.run_next` claims the next queued job, runs it on the
caller's thread (the GUI's engine thread, the CLI's main thread) and records how it ended:

    RunResult COMPLETED -> job completed, with its run id and image paths (already on disk)
    RunResult FAILED    -> job failed, with the run's message and typed cause
    RunResult CANCELLED -> job cancelled (interrupted when the app is closing, see interrupt_current)
    ConfigError         -> job failed with the config problem (e.g. its input image is gone)

A failing job never stops the runner; with ``pause_on_failure`` the queue pauses instead. The
runner emits plain typed events (:class:`~.events.JobStarted`, :class:`~.events.JobFinished`, ...)
to listeners on its own thread. It never touches Qt, and it only reads the queue while a run is in
progress, so the queue stays usable from every other thread.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .controller import AppController, RunInProgress
from .errors import ConfigError, FailureCause, FailureKind
from .events import (
    GroupFinished,
    JobEvent,
    JobFinished,
    JobInterrupted,
    JobListener,
    JobStarted,
    QueuePaused,
    RunEvent,
    RunStarted,
    SessionListener,
    StageStarted,
    StepProgress,
)
from .group_grid import write_group_grid
from .job import Job, JobStatus
from .job_group import JobGroup
from .lifecycle import LifecycleState
from .listeners import Listeners, Unsubscribe
from .outputs import discard_partial_runs, published_run_images
from .queue import JobQueue
from .runner import RunResult

log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"[0-9A-Za-z_-]+")


class JobRunner(Protocol):
    """Runs the queue's jobs and records how each ended. The blocking calls run on the caller's
    thread; ``cancel_current``/``interrupt_current`` are safe from any thread (and from a signal
    handler). Job events go to :meth:`subscribe`'s listeners."""

    pause_on_failure: bool

    @property
    def current(self) -> Job | None: ...

    @property
    def state(self) -> LifecycleState:
        """RUNNING while a job runs, then how the last one ended until :meth:`return_to_idle`."""
        ...

    def return_to_idle(self) -> None: ...

    def subscribe(self, listener: SessionListener) -> Unsubscribe:
        """Job events (and, from a dispatcher, its workers' run and WorkersChanged events)."""
        ...

    def take_over_queue(self) -> list[Job]: ...

    def run_next(self) -> Job | None: ...

    def run_job(self, job_id: int) -> Job | None: ...

    def run_until_empty(self, stop: threading.Event | None = None) -> list[Job]: ...

    def cancel_current(self) -> bool: ...

    def interrupt_current(self) -> bool: ...

    def close(self) -> None:
        """Release what the runner holds (a dispatcher stops its workers)."""
        ...


#: Builds the JobRunner of a session from its queue and controller (the default:
#: :class:`SingleNodeJobRunner`).
JobRunnerFactory = Callable[[JobQueue, AppController], JobRunner]


class SingleNodeJobRunner:
    """Takes jobs from ``queue`` one at a time and runs them with ``controller``.

    ``pause_on_failure`` pauses the queue after a failed job (the default runs the next one);
    ``auto_resume`` queues interrupted jobs again, at the front, when the runner starts.
    """

    def __init__(
        self,
        queue: JobQueue,
        controller: AppController,
        *,
        pause_on_failure: bool = False,
        auto_resume: bool = False,
    ) -> None:
        self.queue = queue
        self.controller = controller
        self.pause_on_failure = pause_on_failure
        self.auto_resume = auto_resume
        self._listeners: Listeners[JobEvent] = Listeners("job runner")
        # Plain attributes, no lock: cancel_current() must be safe inside a signal handler.
        self._current: Job | None = None
        self._cancel_current = False
        self._interrupt_current = False
        self._took_over = False

    @property
    def current(self) -> Job | None:
        """The job running now, as it was claimed (None between jobs)."""
        return self._current

    @property
    def state(self) -> LifecycleState:
        """The controller's lifecycle (this runner runs its jobs through it)."""
        return self.controller.state

    def return_to_idle(self) -> None:
        self.controller.return_to_idle()

    def subscribe(self, listener: JobListener) -> Unsubscribe:
        """Call ``listener`` with every JobEvent (on the runner's thread); returns an unsubscriber."""
        return self._listeners.subscribe(listener)

    def take_over_queue(self) -> list[Job]:
        """Take over the queue: jobs a dead process left running become interrupted (queued
        again with ``auto_resume``) and their runs' temporary files are deleted; one whose run was
        published whole before the process died is marked completed instead (JobFinished). Runs
        once, on the first call or the first :meth:`run_next`; later calls return []."""
        if self._took_over:
            return []
        jobs = self.queue.recover_interrupted(auto_resume=self.auto_resume)
        self._took_over = True
        for job in jobs:
            published = published_run_images(job.output_root, job.run_id)
            if published is not None and job.run_id:  # killed after its run was published: done
                self._emit(JobFinished(self.queue.mark_completed(job.id, job.run_id, published)))
                continue
            removed = remove_stale_temp_files(job)
            self._emit(JobInterrupted(job, job.status is JobStatus.QUEUED, removed))
        self.finish_groups()  # a group whose last job ended just before the process died
        return jobs

    def finish_groups(self) -> list[JobGroup]:
        """Write the grid of every sweep group whose jobs have all ended and whose grid is not
        written yet (once each, see :mod:`.group_grid`); emits GroupFinished for each. Runs after
        every job, at take-over, and when there is nothing to run (a group cancelled meanwhile).
        A grid that cannot be written (disk full) is logged and tried again next time."""
        finished = []
        for group in self.queue.groups_due_for_grid():
            try:
                recorded = write_group_grid(self.queue, group)
            except Exception:
                log.exception("group %s: the grid could not be written; it is tried again later", group.id)
                continue
            self._emit(GroupFinished(recorded))
            finished.append(recorded)
        return finished

    def run_next(self) -> Job | None:
        """Run the next queued job to its end and return it as recorded (None if there was none
        to run: empty, paused, or a job is running). Raises RunInProgress, without claiming a job,
        when the controller is busy with a run of its own."""
        return self._run_claimed(self.queue.next_job)

    def run_job(self, job_id: int) -> Job | None:
        """Run the queued job ``job_id`` now, out of turn and even while the queue is paused
        ("Generate"), and return it as recorded; None if it is not queued any more (it ran, or
        was cancelled) or another job is running. Raises RunInProgress like :meth:`run_next`."""
        return self._run_claimed(lambda: self.queue.claim(job_id))

    def _run_claimed(self, claim: Callable[[], Job | None]) -> Job | None:
        self.take_over_queue()
        if self.controller.state is LifecycleState.RUNNING:
            raise RunInProgress("a run is already in progress; the queue waits until it ends")
        job = claim()
        if job is None:
            self.finish_groups()
            return None
        self._cancel_current = False
        self._interrupt_current = False
        self._current = job
        self._emit(JobStarted(job))
        try:
            finished = self._run(job)
        finally:
            self._current = None
        self._emit(JobFinished(finished))
        if finished.group_id is not None:
            self.finish_groups()
        if finished.status is JobStatus.FAILED and self.pause_on_failure:
            self.queue.pause()
            self._emit(QueuePaused(finished))
        return finished

    def run_until_empty(self, stop: threading.Event | None = None) -> list[Job]:
        """Run jobs until none is left to run (or the queue is paused), or until ``stop`` is set
        (checked between jobs; cancel the running one with :meth:`cancel_current`). Returns the
        jobs run, as recorded."""
        finished = []
        while stop is None or not stop.is_set():
            job = self.run_next()
            if job is None:
                break
            finished.append(job)
        return finished

    def cancel_current(self) -> bool:
        """Cancel the running job (it becomes cancelled). True if a job was running. Safe from
        any thread and from a signal handler: it takes no lock and writes nothing."""
        if self._current is None:
            return False
        self._cancel_current = True
        self.controller.cancel()
        return True

    def interrupt_current(self) -> bool:
        """Stop the running job because the app is closing: it becomes interrupted (not
        cancelled), so the next start offers to resume it. True if a job was running. Safe from
        any thread."""
        if self._current is None:
            return False
        self._interrupt_current = True
        self.controller.cancel()
        return True

    def cancel(self, job_id: int) -> bool:
        """Cancel job ``job_id``: a queued one at once, the running one at its next step.
        True if it was the running job."""
        running = self.queue.cancel(job_id)
        current = self._current
        if running and current is not None and current.id == job_id:
            self.cancel_current()
        return running

    def close(self) -> None:
        """Nothing to release: the engine belongs to the session."""

    # -- internals -------------------------------------------------------------------------
    def _run(self, job: Job) -> Job:
        unsubscribe = self.controller.subscribe(lambda event: self._on_run_event(job, event))
        try:
            if self._interrupt_current:
                return self.queue.mark_interrupted(job.id)
            if self._cancel_wanted(job):
                return self.queue.mark_cancelled(job.id)
            result = self.controller.run_pipeline(job.config)
        except ConfigError as exc:
            log.warning("job %s cannot run: %s", job.id, exc)
            return self.queue.mark_failed(job.id, exc.cause)
        except RunInProgress:
            self.queue.release(job.id)
            raise
        except Exception as exc:
            log.exception("job %s: unexpected error", job.id)
            message = f"unexpected error: {type(exc).__name__}: {exc} (details in the log)"
            return self.queue.mark_failed(job.id, FailureCause(FailureKind.UNEXPECTED, message))
        except BaseException:
            # KeyboardInterrupt or SystemExit: the user stopped the process during this job.
            self.queue.mark_cancelled(job.id)
            raise
        finally:
            unsubscribe()
        return self._record(job, result)

    def _record(self, job: Job, result: RunResult) -> Job:
        if result.status is LifecycleState.COMPLETED:
            return self.queue.mark_completed(job.id, result.run_id, result.image_paths)
        if result.status is LifecycleState.CANCELLED:
            if self._interrupt_current and not self._cancel_wanted(job):
                return self.queue.mark_interrupted(job.id, result.run_id or None)
            return self.queue.mark_cancelled(job.id, result.run_id or None)
        cause = result.cause or FailureCause(FailureKind.UNEXPECTED, result.error or "the run failed")
        return self.queue.mark_failed(job.id, cause, result.run_id or None)

    def _on_run_event(self, job: Job, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            # Before anything is written, so a crash can be cleaned up after (see take_over_queue()).
            self.queue.record_run(job.id, event.run_id, self.controller.output.output_dir)
        if isinstance(event, RunStarted | StageStarted | StepProgress) and self._stop_wanted(job):
            self.controller.cancel()

    def _cancel_wanted(self, job: Job) -> bool:
        # The queue's flag carries a cancel requested by another process (`queue cancel ID`).
        return self._cancel_current or self.queue.cancel_requested(job.id)

    def _stop_wanted(self, job: Job) -> bool:
        return self._interrupt_current or self._cancel_wanted(job)

    def _emit(self, event: JobEvent) -> None:
        self._listeners.emit(event)


def remove_stale_temp_files(job: Job) -> tuple[Path, ...]:
    """Delete what a killed run of ``job`` left half-written in its run folder.

    ``core.outputs`` writes every file as a temporary dot-file ending in ``.tmp`` beside its final
    name and publishes it whole; while its process lives it never leaves one behind. So in the
    folder of a run whose process died, every such file is debris (complete files keep their
    final names and are kept). An emptied run folder is removed too. Returns the deleted files.
    """
    if not job.run_id or job.output_root is None or not _RUN_ID.fullmatch(job.run_id):
        return ()
    removed = list(discard_partial_runs(job.output_root, job.run_id))  # its unpublished staging folder
    for folder in job.output_root.glob(f"*/{job.run_id}"):
        for path in sorted(folder.rglob(".*.tmp")):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()  # only succeeds when empty
        with contextlib.suppress(OSError):
            folder.rmdir()
    if removed:
        log.warning("job %s: removed %d half-written file(s) of its interrupted run", job.id, len(removed))
    return tuple(removed)
