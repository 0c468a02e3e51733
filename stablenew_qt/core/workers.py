"""Workers: engines in other processes (one per GPU, or on other machines) that run the queue's jobs.

The vocabulary shared by the dispatcher (``core/dispatch.py``, on the machine that owns the
queue), the worker side (``core/worker_side.py``, inside each worker process), the Ray binding
(``stablenew_qt/cluster/``, the only code that imports Ray) and the window's Workers panel. Every
value here is a plain frozen dataclass that pickles: it crosses the process boundary as it is.

    WorkersSetting  how the user wants jobs run: this GPU only, all local GPUs, N workers, a cluster
    WorkerInfo      one worker as the Workers panel shows it (node, device, VRAM, resident models, job)
    WorkersChanged  a session event: the workers' states now
    RemoteRunResult what a worker sends back when a job's run ends: its files as bytes, not paths
    WorkerHandle    the dispatcher's end of one worker (blocking ``run``, thread-safe ``cancel``)
    WorkerPool      starts the workers a setting asks for and stops them

No shared filesystem is assumed for outputs: a worker runs into a scratch folder of its own and
returns the run folder's files; the app publishes them through :mod:`.outputs`. Model files are
not shipped: each node reads its own models folder (``WorkersSetting.models_dir`` overrides it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from .errors import ConfigError, FailureCause
from .events import RunEvent, WorkerInfo, WorkersChanged, WorkerState
from .job import Job
from .lifecycle import LifecycleState

__all__ = [
    "RemoteRunResult",
    "WorkerHandle",
    "WorkerInfo",
    "WorkerLost",
    "WorkerPool",
    "WorkerPoolFactory",
    "WorkerState",
    "WorkersChanged",
    "WorkersMode",
    "WorkersSetting",
]


class WorkersMode(StrEnum):
    THIS_GPU = "this"  # the default: the session's own engine, in this process (no Ray)
    LOCAL = "local"  # a local Ray, one worker per GPU found
    COUNT = "count"  # a local Ray with ``count`` workers (sharing the CPU where there is no GPU)
    ADDRESS = "address"  # a Ray cluster: ``auto`` or ``ray://host:port``


_ADDRESS = re.compile(r"auto|ray://[^\s/:]+:\d{1,5}|[^\s/:]+:\d{1,5}")


@dataclass(frozen=True)
class WorkersSetting:
    """How the queue's jobs run. ``parse`` reads the CLI's ``--workers`` and the window's field."""

    mode: WorkersMode = WorkersMode.THIS_GPU
    count: int = 0
    address: str = ""
    #: The models folder on the worker nodes, when it is not this machine's (each node has its own copy).
    models_dir: Path | None = None

    @property
    def enabled(self) -> bool:
        """True when jobs run on workers (Ray), False for this GPU in this process."""
        return self.mode is not WorkersMode.THIS_GPU

    @classmethod
    def parse(cls, text: str, models_dir: Path | None = None) -> WorkersSetting:
        """``this`` (or empty), ``local``, a count ``N`` (1-64) or an ADDRESS (``auto``,
        ``ray://host:port``, ``host:port``). ConfigError (field ``workers``) for anything else."""
        value = text.strip()
        if value in ("", "this"):
            return cls(models_dir=models_dir)
        if value == "local":
            return cls(WorkersMode.LOCAL, models_dir=models_dir)
        if value.isdigit():
            count = int(value)
            if not 1 <= count <= 64:
                raise ConfigError(f"{value}: give a number of workers from 1 to 64", "workers")
            return cls(WorkersMode.COUNT, count=count, models_dir=models_dir)
        if _ADDRESS.fullmatch(value):
            return cls(WorkersMode.ADDRESS, address=value, models_dir=models_dir)
        raise ConfigError(
            f"{value!r}: use 'local' (one worker per GPU), a number of workers, "
            "or a Ray address ('auto' or 'ray://host:port')",
            "workers",
        )

    def __str__(self) -> str:
        if self.mode is WorkersMode.COUNT:
            return str(self.count)
        if self.mode is WorkersMode.ADDRESS:
            return self.address
        return self.mode.value


@dataclass(frozen=True)
class RemoteRunResult:
    """How a job's run ended on a worker. ``files`` are the published run folder's files, keyed by
    their path inside it (``00000-1234.png``, ``manifest.json``, ``intermediates/...``), written
    by the app into ``<output>/<date>/<run_id>/`` all at once; empty unless there is something to
    keep. ``node``/``device`` say where it ran (the manifest records them)."""

    run_id: str
    status: LifecycleState
    date: str  # the run folder's date, YYYY-MM-DD
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    seeds: tuple[int, ...] = ()
    error: str | None = None
    cause: FailureCause | None = None
    node: str = ""
    device: str = ""
    worker_id: str = ""


class WorkerLost(RuntimeError):
    """The worker's process or node died while it ran a job (Ray's ActorDiedError and the like)."""


class WorkerHandle(Protocol):
    """The dispatcher's end of one started worker."""

    @property
    def info(self) -> WorkerInfo: ...

    def run(
        self, job: Job, on_event: Callable[[RunEvent], None], *, save_intermediates: bool | None = None
    ) -> RemoteRunResult:
        """Run ``job``'s config on the worker; blocks until its run ends. ``on_event`` gets the
        run's events (progress, previews, stages) as they happen, on the calling thread.
        ``save_intermediates`` keeps each stage's images (None: the worker's default; the
        dispatcher passes the session's output setting). Raises WorkerLost when the worker dies
        meanwhile."""
        ...

    def cancel(self) -> None:
        """Stop the running job at its next denoising step (it ends CANCELLED). Any thread."""
        ...

    def close(self) -> None: ...


class WorkerPool(Protocol):
    """The workers a :class:`WorkersSetting` asks for."""

    def start(self) -> tuple[list[WorkerHandle], list[WorkerInfo]]:
        """Start the workers: the ones that came up, and a FAILED WorkerInfo (with its message)
        for each one that did not. Raises ConfigError when none can start (Ray missing, address
        unreachable), with one line saying what to do."""
        ...

    def close(self) -> None:
        """Stop the workers (and the local Ray this pool started)."""
        ...


WorkerPoolFactory = Callable[[WorkersSetting], WorkerPool]
