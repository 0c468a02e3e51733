"""EngineSession: the one road every job takes, whoever starts it.

The window, ``stablenew-qt run``, ``queue run`` and ``bench`` all build their session with
:func:`open_session` and hand it RunConfigs; every one becomes a job in the JobQueue and reaches
its PNG through the same modules::

    EngineSession.enqueue / generate / run_queue          (this module)
      -> JobQueue              (core/queue.py: the job, stored as JSON in SQLite)
      -> JobRunner             (core/job_runner.py: SingleNodeJobRunner claims and records it)
      -> AppController         (core/controller.py: lifecycle, cancel, the plan built once)
      -> PipelineRunner        (core/runner.py: seeds, stages in order, events)
      -> Engine                (engine/executor.py: DiffusersExecutor runs each stage)
      -> RunOutputs            (core/outputs.py: PNGs with infotext, manifest.json)

A one-shot ``run`` or ``bench`` uses a temporary queue; when the queue file cannot be opened the
session falls back to a temporary one and says so (:attr:`EngineSession.queue_problem`).

Threads: the blocking calls (``generate``, ``run_job``, ``run_queue``, ``take_over_queue``,
``warm_up`` and the ``set_*``/``replace_engine`` changes) belong to one thread, the one that owns the
engine (the GUI's engine thread, the CLI's main thread). ``enqueue`` and ``cancel`` are safe from any
thread, and ``cancel()`` of the running job also from a signal handler. Listeners get every
:data:`~.events.SessionEvent` on the thread that caused it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig
from .controller import AppController
from .events import (
    EngineReported,
    InterruptedJobsFound,
    JobFinished,
    QueueRunFinished,
    SessionEvent,
    SessionListener,
)
from .executor import Engine
from .hooks import JsonlLearningHook, LearningHook
from .job import Job, JobStatus
from .job_group import GroupKind, JobGroup
from .job_runner import JobRunner, JobRunnerFactory, SingleNodeJobRunner
from .lifecycle import LifecycleState
from .listeners import Listeners, Unsubscribe
from .outputs import OutputSettings
from .queue import JobQueue, QueueError
from .runner import PipelineRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    """How a session runs jobs.

    ``queue_path`` None means a temporary queue, deleted when the session closes (a one-shot
    ``run``). ``fallback_to_temporary`` uses one too when ``queue_path`` cannot be opened (the
    window); without it the QueueError is raised (``queue run``: the file is the point).
    ``learning_log`` switches the learning hook on: one JSON line per run appended to that file.
    """

    output: OutputSettings
    queue_path: Path | None = None
    fallback_to_temporary: bool = True
    pause_on_failure: bool = False
    auto_resume: bool = False
    learning_log: Path | None = None


def learning_hooks(path: Path | None) -> list[LearningHook]:
    """The hooks a session runs with: the JSONL learning log at ``path``, or none (off)."""
    return [JsonlLearningHook(path)] if path is not None else []


def open_session(
    engine: Engine,
    options: SessionOptions,
    *,
    queue: JobQueue | None = None,
    job_runner: JobRunnerFactory | None = None,
) -> EngineSession:
    """The one factory: an EngineSession running jobs on ``engine`` as ``options`` say.

    ``queue`` uses a queue the caller opened (and closes); otherwise the session opens
    ``options.queue_path`` (or a temporary queue) and closes it. ``job_runner`` replaces the
    single-node runner (it gets the queue and the controller). Cheap: nothing loads until the
    first job or :meth:`EngineSession.warm_up`. Raises QueueError only without
    ``fallback_to_temporary``.
    """
    runner = PipelineRunner(engine, options.output, hooks=learning_hooks(options.learning_log))
    controller = AppController(runner)
    owned, problem = (None, None) if queue is not None else _open_queue(options)
    used = queue if queue is not None else owned
    assert used is not None
    made = (job_runner or _single_node(options))(used, controller)
    made.pause_on_failure = made.pause_on_failure or options.pause_on_failure
    return EngineSession(controller, used, made, owned=owned, queue_problem=problem)


def _single_node(options: SessionOptions) -> JobRunnerFactory:
    def make(queue: JobQueue, controller: AppController) -> JobRunner:
        return SingleNodeJobRunner(
            queue, controller, pause_on_failure=options.pause_on_failure, auto_resume=options.auto_resume
        )

    return make


def _open_queue(options: SessionOptions) -> tuple[JobQueue, str | None]:
    if options.queue_path is None:
        return TemporaryQueue(), None
    try:
        return JobQueue(options.queue_path), None
    except QueueError as exc:
        if not options.fallback_to_temporary:
            raise
        log.error("the job queue is unavailable; this session uses a temporary queue: %s", exc)
        return TemporaryQueue(), str(exc)


class TemporaryQueue(JobQueue):
    """A JobQueue in a new temporary folder, deleted with it on :meth:`close`."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="stablenew-queue-"))
        super().__init__(self.folder / "queue.sqlite3")

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.folder, ignore_errors=True)


class EngineSession:
    """Owns the controller, the job runner and the queue of one engine; see the module docstring.

    Build it with :func:`open_session`; close it (or use ``with``) to release the queue.
    """

    def __init__(
        self,
        controller: AppController,
        queue: JobQueue,
        job_runner: JobRunner,
        *,
        owned: JobQueue | None = None,
        queue_problem: str | None = None,
    ) -> None:
        self.controller = controller
        self.queue = queue
        self.job_runner = job_runner
        self.queue_problem = queue_problem
        self._owned = owned
        self._listeners: Listeners[SessionEvent] = Listeners("session")
        self._unsubscribe = [
            controller.subscribe(self._listeners.emit),
            job_runner.subscribe(self._on_job_event),
            queue.subscribe(self._listeners.emit),
        ]

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------
    @property
    def state(self) -> LifecycleState:
        """The lifecycle of the session's runs (a dispatcher's: RUNNING while any worker runs one)."""
        return self.job_runner.state

    @property
    def engine(self) -> Engine:
        engine = self.controller.executor
        assert isinstance(engine, Engine)
        return engine

    @property
    def output(self) -> OutputSettings:
        return self.controller.output

    @property
    def current_job(self) -> Job | None:
        """The job running now (None between jobs)."""
        return self.job_runner.current

    @property
    def temporary_queue(self) -> bool:
        """True when the jobs live in a temporary queue (deleted on close)."""
        return isinstance(self.queue, TemporaryQueue)

    def subscribe(self, listener: SessionListener) -> Unsubscribe:
        """Call ``listener`` with every event: runs, jobs, queue changes, engine reports."""
        return self._listeners.subscribe(listener)

    # -- adding and stopping jobs (any thread) -----------------------------------------------
    def enqueue(
        self, config: RunConfig, count: int = 1, *, front: bool = False, priority: int = 0
    ) -> list[Job]:
        """Queue ``count`` copies of ``config`` (seeds stepping), at the end or before every
        queued job (``front``: "Generate"). ConfigError now, before anything is queued, for a
        config that cannot run."""
        self.controller.validate(config)
        if front:
            return self.queue.add_front(config, count)
        return self.queue.add(config, count, priority=priority)

    def enqueue_group(
        self,
        configs: Sequence[RunConfig],
        kind: GroupKind,
        meta: Mapping[str, Any] | None = None,
        *,
        front: bool = False,
    ) -> JobGroup:
        """Queue ``configs`` as one group (a wildcards run, a prompt pack), at the end or first in
        line; ConfigError before anything is queued when one of them cannot run."""
        for config in configs:
            self.controller.validate(config)
        return self.queue.add_group(configs, kind, meta, front=front)

    def cancel(self, job_id: int | None = None) -> bool:
        """Cancel job ``job_id`` (a queued one at once, the running one at its next step) or, with
        None, the running job. True if a running job was asked to stop. With None it takes no lock
        and writes nothing, so a signal handler may call it."""
        if job_id is None:
            return self.job_runner.cancel_current()
        running = self.queue.cancel(job_id)
        current = self.job_runner.current
        if running and current is not None and current.id == job_id:
            self.job_runner.cancel_current()
        return running

    def cancel_group(self, group_id: int) -> bool:
        """Cancel every job of group ``group_id`` still to run; its running job (if any) stops at
        its next step. True if a running job was asked to stop."""
        running = self.queue.cancel_group(group_id)
        current = self.job_runner.current
        if running is not None and current is not None and current.id == running:
            self.job_runner.cancel_current()
        return running is not None

    def interrupt(self) -> bool:
        """The app is closing: stop the running job so it is offered for resume at the next start."""
        return self.job_runner.interrupt_current()

    # -- running (the engine's thread) -------------------------------------------------------
    def generate(self, config: RunConfig) -> Job:
        """Queue ``config`` first and run it now; returns the job as recorded (its status says how
        it ended). ConfigError before anything is queued; RunInProgress or QueueError (another
        process runs this queue) before it starts."""
        job = self.enqueue(config, front=True)[0]
        finished = self.run_job(job.id)
        return finished if finished is not None else self.queue.get(job.id)

    def run_job(self, job_id: int) -> Job | None:
        """Run the queued job ``job_id`` now, even while the queue is paused; None if it is not
        queued any more. See :meth:`~.job_runner.SingleNodeJobRunner.run_job`."""
        return self.job_runner.run_job(job_id)

    def run_queue(self, stop: threading.Event | None = None) -> list[Job]:
        """Run queued jobs until none is left (or the queue is paused, or ``stop`` is set between
        jobs); returns them as recorded and announces :class:`~.events.QueueRunFinished`."""
        finished: list[Job] = []
        try:
            finished = self.job_runner.run_until_empty(stop)
        finally:
            self._listeners.emit(QueueRunFinished(len(finished)))
        return finished

    def take_over_queue(self) -> list[Job]:
        """Become the queue's runner: jobs a dead process left running become interrupted (and
        their half-written files are deleted). Returns those found now and announces every job
        that is interrupted (:class:`~.events.InterruptedJobsFound`)."""
        found = self.job_runner.take_over_queue()
        interrupted = self.queue.list(status=JobStatus.INTERRUPTED)
        self._listeners.emit(InterruptedJobsFound(tuple(interrupted)))
        return found

    def warm_up(self) -> None:
        """Prepare the engine now (imports, device, model list), then report it."""
        self.engine.warm_up()
        self.report_engine()

    def report_engine(self) -> None:
        """Announce the engine's device readout (:class:`~.events.EngineReported`)."""
        self._listeners.emit(EngineReported(self.engine.device_summary()))

    def return_to_idle(self) -> None:
        """Show IDLE again after a run's end state (see AppController.return_to_idle)."""
        self.job_runner.return_to_idle()

    # -- changing how jobs run (the engine's thread, between jobs) ---------------------------
    def replace_engine(self, engine: Engine) -> None:
        """Run the next jobs on ``engine`` (another models folder or memory mode)."""
        self.controller.reconfigure(executor=engine)
        self.report_engine()

    def set_output(self, output: OutputSettings) -> None:
        """Write the next jobs' images as ``output`` says."""
        self.controller.reconfigure(output=output)

    def set_learning_log(self, path: Path | None) -> None:
        """Append one JSON line per run to ``path`` from the next run on; None switches it off."""
        self.controller.reconfigure(hooks=learning_hooks(path))

    def set_pause_on_failure(self, on: bool) -> None:
        """Pause the queue when a job fails (read between jobs)."""
        self.job_runner.pause_on_failure = on

    def close(self) -> None:
        """Stop listening, release the job runner (a dispatcher stops its workers) and close the
        queue the session opened (a temporary one is deleted)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        try:
            self.job_runner.close()
        except Exception:
            log.exception("the job runner did not close cleanly")
        if self._owned is not None:
            self._owned.close()

    # -- internals ---------------------------------------------------------------------------
    def _on_job_event(self, event: SessionEvent) -> None:
        self._listeners.emit(event)
        if isinstance(event, JobFinished) and not event.worker:
            self.report_engine()  # every job changes what the device holds
