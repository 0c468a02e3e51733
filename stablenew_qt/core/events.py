"""Every event the core announces, as plain frozen dataclasses: no Qt, no live objects.

Three sources, one vocabulary:

- a run (PipelineRunner, AppController): :data:`RunEvent`;
- a job (the JobRunner, working through the JobQueue): :data:`JobEvent`;
- the queue file changing, and the session itself: :class:`QueueChanged`, :data:`SessionNotice`.

:data:`SessionEvent` is their union: what ``EngineSession.subscribe`` delivers, what the GUI's one
bridge turns into signals and what the CLI prints. Every event pickles (a process boundary, such as
a worker on another GPU, can carry it); a preview image travels as a PIL image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import FailureCause
from .job import Job
from .job_group import JobGroup
from .lifecycle import LifecycleState
from .sequencer import StageExecutionPlan, StageName


# -- a run ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunStarted:
    run_id: str
    plan: StageExecutionPlan
    seeds: tuple[int, ...]
    #: Each image's variation seed, when variation is on (``subseed_strength`` > 0); else empty.
    subseeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class StageStarted:
    run_id: str
    stage: StageName
    index: int
    total_stages: int


@dataclass(frozen=True)
class StepProgress:
    """Progress inside a stage. ``fraction`` is the whole run's progress in 0..1."""

    run_id: str
    stage: StageName
    index: int
    total_stages: int
    step: int
    total_steps: int
    fraction: float
    label: str = ""
    preview: Image.Image | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StageFinished:
    run_id: str
    stage: StageName
    index: int
    seconds: float
    image_count: int
    params: Mapping[str, Any] = field(default_factory=dict)
    #: What the engine had to do for the user to know (e.g. the out-of-memory step that worked):
    #: a status line each.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunCompleted:
    run_id: str
    output_dir: Path
    image_paths: tuple[Path, ...]
    manifest_path: Path
    seconds: float


@dataclass(frozen=True)
class RunFailed:
    """The run ended FAILED. ``message`` is for the user (details went to the log); ``cause``
    says why, for code that branches on it."""

    run_id: str
    stage: StageName | None
    message: str
    cause: FailureCause | None = None


@dataclass(frozen=True)
class RunCancelled:
    run_id: str
    stage: StageName | None


@dataclass(frozen=True)
class LifecycleChanged:
    old: LifecycleState
    new: LifecycleState


RunEvent = (
    RunStarted
    | StageStarted
    | StepProgress
    | StageFinished
    | RunCompleted
    | RunFailed
    | RunCancelled
    | LifecycleChanged
)
EventSink = Callable[[RunEvent], None]


# -- a job ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobStarted:
    """``job`` was claimed (status running) and its run is about to start; ``worker`` names the
    worker it runs on ("" for this process's engine)."""

    job: Job
    worker: str = ""


@dataclass(frozen=True)
class JobFinished:
    """``job`` ended: its status is completed, failed or cancelled (or interrupted when the app
    is closing, or its worker was lost); a failed job's ``job.cause`` says why. ``worker`` names
    the worker it ran on ("" for this process's engine)."""

    job: Job
    worker: str = ""


@dataclass(frozen=True)
class JobInterrupted:
    """Found when the runner took over the queue: ``job`` was running when its process died.
    ``resumed`` when it was queued again (auto-resume); ``removed_files`` are the temporary files
    its run had left half-written, now deleted."""

    job: Job
    resumed: bool
    removed_files: tuple[Path, ...]


@dataclass(frozen=True)
class QueuePaused:
    """The runner paused the queue because ``job`` failed (``pause_on_failure``)."""

    job: Job


@dataclass(frozen=True)
class GroupFinished:
    """Every job of ``group`` has ended and its grid is recorded: ``group.grid_paths`` are the
    grid files (``grid_state`` written), or ``grid_state`` none says there was nothing to draw."""

    group: JobGroup


JobEvent = JobStarted | JobFinished | JobInterrupted | QueuePaused | GroupFinished
JobListener = Callable[[JobEvent], None]


# -- the queue and the session -------------------------------------------------------------------
@dataclass(frozen=True)
class QueueChanged:
    """Jobs were added, changed or removed through this JobQueue (``job_ids`` empty: the pause
    state changed)."""

    job_ids: tuple[int, ...]


@dataclass(frozen=True)
class InterruptedJobsFound:
    """After the session took over the queue: every job that is interrupted now (a crash, or the
    app was closed while it ran), oldest first; empty when there is none."""

    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class QueueRunFinished:
    """Working through the queue stopped (empty, paused, or stopped) after ``jobs_run`` jobs."""

    jobs_run: int


@dataclass(frozen=True)
class EngineReported:
    """The engine's one-line device and memory readout ("" while it is not loaded), sent after
    the warm-up and after every job."""

    summary: str


@dataclass(frozen=True)
class SessionRefused:
    """A request could not start (another process runs this queue, a run is in progress, the
    queue file failed): ``message`` says what to do."""

    message: str


# -- workers (core/workers.py) -----------------------------------------------------------------
class WorkerState(StrEnum):
    STARTING = "starting"  # the process is coming up (imports, engine)
    IDLE = "idle"
    BUSY = "busy"  # running ``WorkerInfo.job_id``
    FAILED = "failed"  # it could not start: ``WorkerInfo.message`` says why (no CUDA, no models folder, ...)
    LOST = "lost"  # its process or node died; its job was interrupted and queued again once


@dataclass(frozen=True)
class WorkerInfo:
    """One worker, as the Workers panel and ``queue run`` show it."""

    worker_id: str  # stable while the pool lives: "w0", "w1", ...
    node: str = ""  # host name or node IP ("" until it has started)
    device: str = ""  # e.g. "cuda:0 NVIDIA H200" or "cpu"
    vram_total_mb: int | None = None
    vram_used_mb: int | None = None
    #: The checkpoints its engine holds loaded now (file names), what placement prefers.
    resident: tuple[str, ...] = ()
    state: WorkerState = WorkerState.STARTING
    job_id: int | None = None
    #: The running job's progress in 0..1 (0 when idle).
    fraction: float = 0.0
    message: str = ""
    #: Jobs it has run to an end, and checkpoint loads it made (what placement keeps low).
    jobs_done: int = 0
    loads: int = 0


@dataclass(frozen=True)
class WorkersChanged:
    """A session event: the pool's workers as they are now (sent when one changes state, and at
    most a few times a second for progress)."""

    workers: tuple[WorkerInfo, ...]


SessionNotice = (
    QueueChanged | InterruptedJobsFound | QueueRunFinished | EngineReported | SessionRefused | WorkersChanged
)
SessionEvent = RunEvent | JobEvent | SessionNotice
SessionListener = Callable[[SessionEvent], None]
