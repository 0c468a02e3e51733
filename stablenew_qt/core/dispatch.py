"""DispatchingJobRunner: the queue's jobs run on several workers at once (one per GPU, or a cluster).

The JobQueue on this machine stays the only source of truth: jobs are claimed, recorded and
recovered exactly as with :class:`~.job_runner.SingleNodeJobRunner`. What changes is where a
claimed job runs: on a :class:`~.workers.WorkerHandle` (a Ray actor with its own resident engine,
see ``stablenew_qt/cluster/``), several at a time::

    caller's thread (the dispatcher)            one thread per busy worker
      claim a job for each idle worker   --->     handle.run(job, on_event)  (blocks)
      inbox: events and results          <---     events as they happen, then the RemoteRunResult
      record_run, cancel, publish files, mark the job, emit events, WorkersChanged

Every queue write and every listener call happens on the dispatcher's thread (the caller of
``run_until_empty``/``run_job``: the window's engine thread, the CLI's main thread), as with the
single-node runner; the worker threads only block on their handle and post to the inbox.

Placement (:func:`place`): an idle worker takes the first queued job whose checkpoint it holds,
else the first whose checkpoint no other worker holds or is loading, else the head of the queue;
a head passed over :data:`PASS_LIMIT` times per worker is taken next, so nothing starves. A sweep
over two checkpoints on two workers loads each checkpoint about once per worker, not once per job.

Results: the worker sends its run folder's files as bytes; :func:`~.outputs.publish_run_files`
writes them all at once into ``<output>/<date>/<run_id>/`` (paths checked, never overwriting), with
``"worker"`` (node, device, id) added to manifest.json. The worker's RunCompleted is held back
and re-sent with the published paths, so the window shows files that exist.

Faults: a worker that dies during a job (:class:`~.workers.WorkerLost`) leaves the job
interrupted, and queued again at the front once (attempt 2); a job lost on its second attempt stays
interrupted. The other workers keep going; with none left the run ends. Cancel reaches a running
job through ``handle.cancel()`` (from :meth:`DispatchingJobRunner.cancel_current`, or a cancel
recorded in the queue by another process, checked as its progress arrives).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue as queue_module
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from .controller import AppController, RunInProgress
from .errors import ConfigError, FailureCause, FailureKind, OutputError
from .events import (
    JobFinished,
    JobStarted,
    LifecycleChanged,
    QueuePaused,
    RunCompleted,
    RunFailed,
    RunStarted,
    SessionEvent,
    SessionListener,
    StageStarted,
    StepProgress,
    WorkerInfo,
    WorkersChanged,
    WorkerState,
)
from .job import Job, JobStatus
from .job_group import JobGroup
from .job_runner import JobRunnerFactory, SingleNodeJobRunner
from .lifecycle import TERMINAL_STATES, LifecycleState
from .listeners import Listeners, Unsubscribe
from .metadata.names import model_stem
from .outputs import publish_run_files
from .queue import JobQueue
from .workers import RemoteRunResult, WorkerHandle, WorkerLost, WorkerPool

log = logging.getLogger(__name__)

__all__ = ["PASS_LIMIT", "DispatchingJobRunner", "WorkerView", "checkpoint_key", "dispatching", "place"]

#: A job lost with its worker is queued again automatically while it has had fewer attempts.
MAX_AUTO_ATTEMPTS = 2
#: Times per worker the head of the queue may be passed over for a resident model's job.
PASS_LIMIT = 4
#: How many queued jobs placement looks at.
LOOKAHEAD = 64
#: WorkersChanged for progress at most this often (state changes are sent at once).
PROGRESS_INTERVAL_S = 0.25
#: How long the dispatcher waits for worker news before it looks at cancels and the queue again.
POLL_S = 0.05
#: A running job's cancel flag in the queue (set by another process) is read at most this often.
CANCEL_CHECK_S = 0.05

_HASH = re.compile(r"\s*\[[0-9a-fA-F]{8,12}\]$")


def checkpoint_key(name: str) -> str:
    """A checkpoint name as configs and engines write it, made comparable (A1111's file stem, no
    hash, any case): ``"SDXL\\juggernaut.safetensors [a1b2c3d4]"`` and ``"sdxl/juggernaut"`` are
    the same model. Only a placement preference: two stems alike in different folders share a key."""
    return model_stem(_HASH.sub("", name.strip())).casefold()


@dataclass(frozen=True)
class WorkerView:
    """What placement knows of a worker: the checkpoints it holds, and the one its running job
    is loading or using (None when idle)."""

    worker_id: str
    resident: frozenset[str] = frozenset()
    loading: str | None = None


def place(
    candidates: Sequence[Job],
    worker: WorkerView,
    others: Sequence[WorkerView],
    *,
    head_passed: int = 0,
    pass_limit: int = PASS_LIMIT,
) -> Job | None:
    """The job the idle ``worker`` should take from ``candidates`` (queued jobs in run order):

    1. the first whose checkpoint ``worker`` holds;
    2. else the first whose checkpoint no other worker holds or is loading;
    3. else the head.

    When the head has been passed over ``pass_limit`` times (``head_passed``) it is taken, so a job
    whose model no worker holds never waits behind an endless run of resident ones."""
    if not candidates:
        return None
    head = candidates[0]
    if head_passed >= pass_limit:
        return head
    keys = [checkpoint_key(job.model) for job in candidates]
    for job, key in zip(candidates, keys, strict=True):
        if key in worker.resident:
            return job
    elsewhere: set[str] = set()
    for other in others:
        elsewhere |= other.resident
        if other.loading is not None:
            elsewhere.add(other.loading)
    for job, key in zip(candidates, keys, strict=True):
        if key not in elsewhere:
            return job
    return head


@dataclass
class _Slot:
    """One started worker, as the dispatcher tracks it."""

    handle: WorkerHandle
    info: WorkerInfo
    job: Job | None = None
    token: int = 0
    run_id: str | None = None
    held: RunCompleted | None = None  # the worker's RunCompleted, re-sent once the files are published
    last_model: str | None = None
    cancel_wanted: bool = False
    interrupt_wanted: bool = False
    cancel_sent: bool = False
    cancel_checked: float = 0.0
    lost: bool = False

    @property
    def busy(self) -> bool:
        return self.job is not None

    def view(self) -> WorkerView:
        resident = frozenset(checkpoint_key(name) for name in self.info.resident)
        if not resident and self.last_model is not None:  # a worker that does not say: its last model
            resident = frozenset({self.last_model})
        loading = checkpoint_key(self.job.model) if self.job is not None else None
        return WorkerView(self.info.worker_id, resident, loading)


@dataclass(frozen=True)
class _News:
    """What a worker thread posts: a run event, or how the run ended (a result or an exception)."""

    slot: _Slot
    token: int
    event: SessionEvent | None = None
    result: RemoteRunResult | None = None
    error: BaseException | None = None


class DispatchingJobRunner:
    """Runs the queue's jobs on the workers of ``pool`` (started at the first run), several at a
    time; see the module docstring. Implements :class:`~.job_runner.JobRunner`.

    ``controller`` is the session's (its output settings say where runs are published; the
    take-over and the sweep grids are the single-node runner's code). ``pause_on_failure`` and
    ``auto_resume`` work as for :class:`~.job_runner.SingleNodeJobRunner`.
    """

    def __init__(
        self,
        queue: JobQueue,
        controller: AppController,
        pool: WorkerPool,
        *,
        pause_on_failure: bool = False,
        auto_resume: bool = False,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.queue = queue
        self.controller = controller
        self.pool = pool
        self.pause_on_failure = pause_on_failure
        self.progress_interval_s = progress_interval_s
        self._listeners: Listeners[SessionEvent] = Listeners("dispatcher")
        # Take-over, crash recovery and sweep grids: the single-node runner's code, not a copy.
        self._local = SingleNodeJobRunner(queue, controller, auto_resume=auto_resume)
        self._local.subscribe(self._emit)
        self._slots: list[_Slot] = []
        self._failed: list[WorkerInfo] = []
        self._started = False
        self._closed = False
        self._inbox: queue_module.Queue[_News] = queue_module.Queue()
        self._tokens = itertools.count(1)
        self._passed: dict[int, int] = {}
        self._interrupt = False
        self._workers_sent = 0.0
        self._state = LifecycleState.IDLE

    # -- JobRunner ---------------------------------------------------------------------------
    @property
    def current(self) -> Job | None:
        """The first running job (None when no worker is busy); see :attr:`running`."""
        running = self.running
        return running[0] if running else None

    @property
    def state(self) -> LifecycleState:
        """RUNNING while any worker runs a job; when the last one ends, how it ended (interrupted
        shows as CANCELLED) until :meth:`return_to_idle`. Sent as LifecycleChanged, so the window
        shows the dispatcher's runs as it shows its own engine's."""
        return self._state

    def return_to_idle(self) -> None:
        if self._state in TERMINAL_STATES:
            self._set_state(LifecycleState.IDLE)

    @property
    def running(self) -> tuple[Job, ...]:
        """Every running job, as claimed."""
        return tuple(slot.job for slot in list(self._slots) if slot.job is not None)

    @property
    def workers(self) -> tuple[WorkerInfo, ...]:
        """The workers as they are now (failed ones included)."""
        return tuple(slot.info for slot in self._slots) + tuple(self._failed)

    def subscribe(self, listener: SessionListener) -> Unsubscribe:
        """Call ``listener`` with every job, run and workers event (on the dispatcher's thread)."""
        return self._listeners.subscribe(listener)

    def take_over_queue(self) -> list[Job]:
        """As :meth:`SingleNodeJobRunner.take_over_queue` (it is that code)."""
        return self._local.take_over_queue()

    def finish_groups(self) -> list[JobGroup]:
        return self._local.finish_groups()

    def run_next(self) -> Job | None:
        """Run the job placement picks for the first idle worker to its end; None if none ran."""
        finished = self._dispatch(limit=1)
        return finished[0] if finished else None

    def run_job(self, job_id: int) -> Job | None:
        """Run the queued job ``job_id`` now, even while the queue is paused, on the idle worker that
        holds its checkpoint (else the first idle one), and return it as recorded; None if it is
        not queued any more."""
        finished = self._dispatch(only=job_id)
        return finished[0] if finished else None

    def run_until_empty(self, stop: threading.Event | None = None) -> list[Job]:
        """Keep every worker busy until nothing is left to run (or the queue is paused, or ``stop``
        is set: no new job starts and the running ones finish). Returns the jobs run, as recorded,
        in the order they ended."""
        return self._dispatch(stop=stop)

    def cancel_current(self) -> bool:
        """Cancel every running job (each becomes cancelled). True if one was running. Safe from
        any thread and from a signal handler: it only sets flags the dispatcher reads."""
        busy = [slot for slot in list(self._slots) if slot.job is not None]
        for slot in busy:
            slot.cancel_wanted = True
        return bool(busy)

    def interrupt_current(self) -> bool:
        """The app is closing: every running job stops and becomes interrupted; no new job
        starts. True if one was running. Safe from any thread."""
        self._interrupt = True
        busy = [slot for slot in list(self._slots) if slot.job is not None]
        for slot in busy:
            slot.interrupt_wanted = True
        return bool(busy)

    def close(self) -> None:
        """Stop the workers (and the local Ray the pool started)."""
        if self._started and not self._closed:
            self._closed = True
            self.pool.close()

    # -- the dispatch loop -------------------------------------------------------------------
    def _dispatch(
        self, *, stop: threading.Event | None = None, only: int | None = None, limit: int | None = None
    ) -> list[Job]:
        self._local.take_over_queue()
        if self.controller.state is LifecycleState.RUNNING:
            raise RunInProgress("a run is already in progress; the queue waits until it ends")
        self._start_pool()
        self._interrupt = False
        finished: list[Job] = []
        claimed = 0
        try:
            while True:
                may_claim = not self._interrupt and (stop is None or not stop.is_set())
                if only is not None:
                    if claimed == 0:
                        if self._claim_only(only) is None:
                            break
                        claimed = 1
                elif may_claim and (limit is None or claimed < limit):
                    claimed += self._fill(None if limit is None else limit - claimed)
                if not any(slot.busy for slot in self._slots):
                    break
                self._serve(finished)
        except BaseException:
            self._abandon()
            raise
        finally:
            self._send_workers(force=True)
        self._local.finish_groups()  # a group cancelled meanwhile
        return finished

    def _start_pool(self) -> None:
        if self._started:
            if not self._live():
                raise ConfigError(
                    "no worker is left: every worker was lost; restart the queue run", "workers"
                )
            return
        try:
            handles, failed = self.pool.start()
        except ConfigError as exc:
            self._failed = [WorkerInfo("workers", state=WorkerState.FAILED, message=str(exc))]
            self._send_workers(force=True)
            raise
        self._started = True
        self._slots = [_Slot(handle, handle.info) for handle in handles]
        self._failed = list(failed)
        for info in failed:
            log.warning("worker %s did not start: %s", info.worker_id, info.message)
        self._send_workers(force=True)

    def _live(self) -> list[_Slot]:
        return [slot for slot in self._slots if not slot.lost]

    def _fill(self, limit: int | None) -> int:
        """Claim a job for each idle worker (placement); returns how many were claimed."""
        claimed = 0
        for slot in self._live():
            if slot.busy:
                continue
            if limit is not None and claimed >= limit:
                break
            others = [other.view() for other in self._live() if other is not slot]
            job = self.queue.claim_chosen(
                partial(self._choose, slot=slot, others=others), lookahead=LOOKAHEAD
            )
            if job is None:
                break  # nothing runnable now (empty, paused); the next turn looks again
            self._start(slot, job)
            claimed += 1
        return claimed

    def _choose(self, jobs: list[Job], *, slot: _Slot, others: list[WorkerView]) -> Job | None:
        if not jobs:
            return None
        head = jobs[0]
        limit = PASS_LIMIT * max(len(self._live()), 1)
        chosen = place(jobs, slot.view(), others, head_passed=self._passed.get(head.id, 0), pass_limit=limit)
        if chosen is not None and chosen.id != head.id:
            self._passed[head.id] = self._passed.get(head.id, 0) + 1
        elif chosen is not None:
            self._passed.pop(head.id, None)
        return chosen

    def _claim_only(self, job_id: int) -> Job | None:
        idle = [slot for slot in self._live() if not slot.busy]
        if not idle:
            return None
        job = self.queue.claim(job_id, concurrent=True)
        if job is None:
            return None
        key = checkpoint_key(job.model)
        slot = next((s for s in idle if key in s.view().resident), idle[0])
        self._start(slot, job)
        return job

    def _start(self, slot: _Slot, job: Job) -> None:
        slot.job, slot.token, slot.run_id, slot.held = job, next(self._tokens), None, None
        slot.cancel_wanted = slot.interrupt_wanted = slot.cancel_sent = False
        slot.cancel_checked = 0.0
        slot.info = dataclasses.replace(
            slot.info, state=WorkerState.BUSY, job_id=job.id, fraction=0.0, message=""
        )
        self._set_state(LifecycleState.RUNNING)
        self._emit(JobStarted(job, worker=self._where(slot)))
        self._send_workers(force=True)
        token, inbox, handle = slot.token, self._inbox, slot.handle
        keep = self.controller.output.save_intermediates  # the session's setting now, per job

        def work() -> None:
            def on_event(event: SessionEvent) -> None:
                inbox.put(_News(slot, token, event=event))

            try:
                result = handle.run(job, on_event, save_intermediates=keep)
            except BaseException as exc:  # WorkerLost, or a bug in the handle: the dispatcher decides
                inbox.put(_News(slot, token, error=exc))
                return
            inbox.put(_News(slot, token, result=result))

        threading.Thread(target=work, name=f"stablenew-dispatch-{slot.info.worker_id}", daemon=True).start()

    def _serve(self, finished: list[Job]) -> None:
        """Handle the workers' news for one turn (waiting up to POLL_S for the first), then send
        the cancels that are due."""
        try:
            news: _News | None = self._inbox.get(timeout=POLL_S)
        except queue_module.Empty:
            news = None
        while news is not None:
            job = self._handle(news)
            if job is not None:
                finished.append(job)
            try:
                news = self._inbox.get_nowait()
            except queue_module.Empty:
                news = None
        self._send_cancels()

    def _handle(self, news: _News) -> Job | None:
        slot = news.slot
        job = slot.job
        if job is None or news.token != slot.token:
            return None  # from a run already recorded (abandoned at a Ctrl-C)
        if news.event is not None:
            self._on_run_event(slot, job, news.event)
            return None
        if isinstance(news.error, WorkerLost):
            return self._lost(slot, job, news.error)
        if news.error is not None:
            log.error(
                "job %s on worker %s: unexpected error", job.id, slot.info.worker_id, exc_info=news.error
            )
            message = (
                f"unexpected error on worker {slot.info.worker_id}: {type(news.error).__name__}: {news.error}"
            )
            recorded = self.queue.mark_failed(
                job.id, FailureCause(FailureKind.UNEXPECTED, message), slot.run_id
            )
        else:
            assert news.result is not None
            recorded = self._record(slot, job, news.result)
        return self._ended(slot, recorded)

    def _on_run_event(self, slot: _Slot, job: Job, event: SessionEvent) -> None:
        if isinstance(event, RunStarted):
            # Before the worker writes anything here, so a crash of this process is recovered as today.
            slot.run_id = event.run_id
            self.queue.record_run(job.id, event.run_id, self.controller.output.output_dir)
        if isinstance(event, RunCompleted):
            slot.held = event  # its paths are the worker's scratch folder: re-sent once published
            return
        if isinstance(event, StepProgress):
            slot.info = dataclasses.replace(slot.info, fraction=event.fraction)
            self._send_workers()
        if isinstance(event, RunStarted | StageStarted | StepProgress):
            self._check_cancel(slot, job)
        self._emit(event)

    def _check_cancel(self, slot: _Slot, job: Job, *, now: float | None = None) -> None:
        if slot.cancel_sent:
            return
        wanted = slot.cancel_wanted or slot.interrupt_wanted
        moment = time.monotonic() if now is None else now
        if not wanted and moment - slot.cancel_checked >= CANCEL_CHECK_S:
            slot.cancel_checked = moment
            wanted = self.queue.cancel_requested(job.id)  # `queue cancel ID` from another process
            slot.cancel_wanted = slot.cancel_wanted or wanted
        if wanted:
            slot.cancel_sent = True
            slot.handle.cancel()

    def _send_cancels(self) -> None:
        for slot in self._live():
            if slot.job is not None and (slot.cancel_wanted or slot.interrupt_wanted or self._interrupt):
                slot.interrupt_wanted = slot.interrupt_wanted or self._interrupt
                self._check_cancel(slot, slot.job)

    def _record(self, slot: _Slot, job: Job, result: RemoteRunResult) -> Job:
        run_id = result.run_id or slot.run_id or None
        published = None
        if result.files and run_id:
            try:
                published = publish_run_files(
                    self.controller.output.output_dir,
                    result.date,
                    run_id,
                    result.files,
                    {"worker": {"node": result.node, "device": result.device, "worker_id": result.worker_id}},
                )
            except (OutputError, ConfigError) as exc:
                log.error("job %s: %s", job.id, exc)
                if result.status is LifecycleState.COMPLETED:
                    self._emit(RunFailed(run_id, None, str(exc), exc.cause))
                    return self.queue.mark_failed(job.id, exc.cause, run_id)
                # A run that did not complete loses the intermediates it kept, as on one GPU.
        if result.status is LifecycleState.CANCELLED:
            cancelled = slot.cancel_wanted or self.queue.cancel_requested(job.id)
            if slot.interrupt_wanted and not cancelled:
                return self.queue.mark_interrupted(job.id, run_id)
            return self.queue.mark_cancelled(job.id, run_id)
        if result.status is LifecycleState.COMPLETED:
            if published is None:
                cause = FailureCause(FailureKind.UNEXPECTED, f"worker {result.worker_id} sent no images back")
                self._emit(RunFailed(run_id or "", None, cause.message, cause))
                return self.queue.mark_failed(job.id, cause, run_id)
            held = slot.held
            self._emit(
                RunCompleted(
                    run_id or "",
                    published.folder,
                    published.images,
                    published.manifest or published.folder,
                    held.seconds if held is not None else 0.0,
                )
            )
            return self.queue.mark_completed(job.id, run_id or "", published.images)
        cause = result.cause or FailureCause(FailureKind.UNEXPECTED, result.error or "the run failed")
        return self.queue.mark_failed(job.id, cause, run_id)

    def _lost(self, slot: _Slot, job: Job, error: WorkerLost) -> Job | None:
        worker = slot.info.worker_id
        slot.lost = True
        slot.info = dataclasses.replace(
            slot.info,
            state=WorkerState.LOST,
            job_id=None,
            fraction=0.0,
            message=str(error) or f"worker {worker} was lost",
        )
        slot.job = None
        log.error("worker %s was lost during job %s: %s", worker, job.id, error)
        again = job.attempts < MAX_AUTO_ATTEMPTS and not (slot.cancel_wanted or slot.interrupt_wanted)
        message = f"worker {worker} ({slot.info.node or 'its node'}) died while it ran this job" + (
            "; queued again" if again else "; it had been tried before, so it stays interrupted: retry it"
        )
        recorded = self.queue.mark_interrupted(job.id, slot.run_id, message)
        self._settle(JobStatus.CANCELLED)
        self._emit(JobFinished(recorded, worker=self._where(slot)))
        if again:
            self.queue.retry(job.id, front=True)  # attempt 2 at its next claim
        self._send_workers(force=True)
        if not self._live():
            log.error("every worker was lost; the queue run stops")
        return None if again else recorded  # a job queued again has not ended

    def _ended(self, slot: _Slot, recorded: Job) -> Job:
        job = slot.job
        slot.job = None
        self._settle(recorded.status)
        slot.last_model = checkpoint_key(job.model) if job is not None else slot.last_model
        info = slot.handle.info  # the worker's own view after the job (resident models, loads)
        slot.info = dataclasses.replace(
            info,
            state=WorkerState.IDLE,
            job_id=None,
            fraction=0.0,
            jobs_done=max(info.jobs_done, slot.info.jobs_done + 1),
        )
        self._emit(JobFinished(recorded, worker=self._where(slot)))
        self._send_workers(force=True)
        if recorded.group_id is not None:
            self._local.finish_groups()
        if recorded.status is JobStatus.FAILED and self.pause_on_failure:
            self.queue.pause()
            self._emit(QueuePaused(recorded))
        return recorded

    def _abandon(self) -> None:
        """The caller's thread is leaving the loop on an exception (a second Ctrl-C): the running
        jobs are cancelled on their workers and recorded as cancelled."""
        for slot in self._live():
            job = slot.job
            if job is None:
                continue
            slot.job = None
            slot.info = dataclasses.replace(slot.info, state=WorkerState.IDLE, job_id=None, fraction=0.0)
            try:
                slot.handle.cancel()
                self.queue.mark_cancelled(job.id, slot.run_id)
            except Exception:
                log.exception("job %s could not be recorded as cancelled", job.id)
        self._settle(JobStatus.CANCELLED)

    def _settle(self, status: JobStatus) -> None:
        """When no worker is busy any more, the lifecycle shows how the last job ended."""
        if self._state is LifecycleState.RUNNING and not any(slot.busy for slot in self._slots):
            ended = {JobStatus.COMPLETED: LifecycleState.COMPLETED, JobStatus.FAILED: LifecycleState.FAILED}
            self._set_state(ended.get(status, LifecycleState.CANCELLED))

    def _set_state(self, new: LifecycleState) -> None:
        old, self._state = self._state, new
        if old is not new:
            if old in TERMINAL_STATES and new is LifecycleState.RUNNING:
                self._emit(LifecycleChanged(old, LifecycleState.IDLE))  # the lifecycle's own path
                old = LifecycleState.IDLE
            self._emit(LifecycleChanged(old, new))

    @staticmethod
    def _where(slot: _Slot) -> str:
        info = slot.info
        place = ", ".join(part for part in (info.node, info.device) if part)
        return f"{info.worker_id} ({place})" if place else info.worker_id

    def _send_workers(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._workers_sent < self.progress_interval_s:
            return
        self._workers_sent = now
        self._emit(WorkersChanged(self.workers))

    def _emit(self, event: SessionEvent) -> None:
        self._listeners.emit(event)


def dispatching(
    pool: WorkerPool, *, pause_on_failure: bool = False, auto_resume: bool = False
) -> JobRunnerFactory:
    """A session's JobRunnerFactory that runs its jobs on ``pool``'s workers
    (``open_session(engine, options, job_runner=dispatching(pool))``)."""

    def make(queue: JobQueue, controller: AppController) -> DispatchingJobRunner:
        return DispatchingJobRunner(
            queue, controller, pool, pause_on_failure=pause_on_failure, auto_resume=auto_resume
        )

    return make
