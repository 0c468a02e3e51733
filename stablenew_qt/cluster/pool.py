"""RayWorkerPool and RayWorkerHandle: the WorkerPool/WorkerHandle of core.workers, on Ray.

Ray is imported only inside these functions, when a pool starts, never when the window or the CLI
starts. Modes (:class:`~stablenew_qt.core.workers.WorkersSetting`):

    local    a local Ray (started here, quietly, no dashboard), one worker per GPU found; no GPU:
             one CPU worker, and its message says so
    N        a local Ray with N workers sharing the GPUs (or the CPU)
    ADDRESS  ``auto`` or ``ray://host:port``: join that cluster, one worker per GPU it has

A worker that cannot start becomes a FAILED WorkerInfo with one line; the others keep going.
``close`` kills the actors and shuts down the Ray this pool started (never a cluster it joined).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, shorten
from ..core.events import RunEvent, WorkerInfo, WorkerState
from ..core.job import Job
from ..core.workers import RemoteRunResult, WorkerHandle, WorkerLost, WorkersMode, WorkersSetting
from .actor import EngineActor, failed_info

if TYPE_CHECKING:
    from ..engine.executor import EngineSettings

log = logging.getLogger(__name__)

#: The custom resource that stands for a GPU where there is none (tests, CPU-only clusters).
WORKER_RESOURCE = "stablenew_worker"
RAY_MISSING = "workers need Ray: pip install 'stablenew-qt[cluster]'"
#: Seconds a worker may take to build its engine before it counts as failed.
START_TIMEOUT_S = 300.0


def import_ray() -> Any:
    """The ray module, or ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING, "workers") from None
    return ray


class RayWorkerHandle:
    """The dispatcher's end of one Ray actor (WorkerHandle)."""

    def __init__(self, actor: Any, info: WorkerInfo, *, save_intermediates: bool = False) -> None:
        self._actor = actor
        self._info = info
        self._save_intermediates = save_intermediates
        self._lock = threading.Lock()

    @property
    def info(self) -> WorkerInfo:
        return self._info

    def run(
        self, job: Job, on_event: Callable[[RunEvent], None], *, save_intermediates: bool | None = None
    ) -> RemoteRunResult:
        ray = import_ray()
        from ray.exceptions import ActorUnavailableError, ObjectLostError, OwnerDiedError, RayActorError

        lost = (RayActorError, ActorUnavailableError, ObjectLostError, OwnerDiedError)
        worker = self._info.worker_id
        self._info = dataclasses.replace(self._info, state=WorkerState.BUSY, job_id=job.id, fraction=0.0)
        result: RemoteRunResult | None = None
        try:
            stream = self._actor.run.options(num_returns="streaming").remote(
                job.config, self._save_intermediates if save_intermediates is None else save_intermediates
            )
            for ref in stream:
                item = ray.get(ref)
                if isinstance(item, RemoteRunResult):
                    result = item
                else:
                    for event in item:  # the events that were ready together, in order
                        on_event(event)
            self._info = ray.get(self._actor.info.remote())
        except lost as exc:
            self._info = dataclasses.replace(
                self._info, state=WorkerState.LOST, message=f"worker {worker} was lost: {type(exc).__name__}"
            )
            raise WorkerLost(
                f"worker {worker} ({self._info.node or 'node'}) died during job {job.id}"
            ) from exc
        if result is None:
            raise WorkerLost(f"worker {worker} ended job {job.id} without a result")
        return result

    def cancel(self) -> None:
        """Stop the running job at its next step (the actor's second thread takes this)."""
        self._actor.cancel.remote()

    def close(self) -> None:
        ray = import_ray()
        try:
            ray.kill(self._actor)
        except Exception:  # already dead, or Ray is down
            log.debug("worker %s: kill failed", self._info.worker_id, exc_info=True)


class RayWorkerPool:
    """The workers a WorkersSetting asks for, as Ray actors with resident engines (WorkerPool)."""

    def __init__(
        self,
        setting: WorkersSetting,
        engine: EngineSettings,
        *,
        save_intermediates: bool = False,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        if not setting.enabled:
            raise ValueError("RayWorkerPool needs a workers setting other than 'this'")
        self.setting = setting
        self.engine = (
            engine
            if setting.models_dir is None
            else dataclasses.replace(engine, models_dir=setting.models_dir)
        )
        self.save_intermediates = save_intermediates
        self.start_timeout_s = start_timeout_s
        self.started_ray = False
        self.notes: list[str] = []
        self._handles: list[RayWorkerHandle] = []

    def start(self) -> tuple[list[WorkerHandle], list[WorkerInfo]]:
        ray = import_ray()
        self._init(ray)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        count, options = self._placement(gpus, int(resources.get(WORKER_RESOURCE, 0)))
        remote = ray.remote(**options, max_concurrency=2)(EngineActor)
        require_dir = self.setting.models_dir is not None or self.setting.mode is WorkersMode.ADDRESS
        actors = [(f"w{i}", remote.remote(f"w{i}", self.engine, require_dir)) for i in range(count)]
        starts = [(worker_id, actor, actor.start.remote()) for worker_id, actor in actors]
        handles: list[WorkerHandle] = []
        failed: list[WorkerInfo] = []
        for worker_id, actor, ref in starts:
            try:
                info = ray.get(ref, timeout=self.start_timeout_s)
            except Exception as exc:
                message = _first_line(exc)
                log.warning("worker %s did not start: %s", worker_id, message, exc_info=True)
                failed.append(failed_info(worker_id, message))
                ray.kill(actor)
                continue
            if not gpus and self.notes:
                info = dataclasses.replace(info, message=self.notes[0])
            handle = RayWorkerHandle(actor, info, save_intermediates=self.save_intermediates)
            self._handles.append(handle)
            handles.append(handle)
        if not handles:
            self.close()
            reasons = (
                "; ".join(f"{info.worker_id}: {info.message}" for info in failed) or "no worker could start"
            )
            raise ConfigError(f"no worker started ({reasons})", "workers")
        return handles, failed

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles.clear()
        if self.started_ray:
            import_ray().shutdown()
            self.started_ray = False

    # -- internals -------------------------------------------------------------------------
    def _init(self, ray: Any) -> None:
        if ray.is_initialized():
            return  # the caller's Ray (a test, an embedding app): used, not shut down
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report over the network
        quiet: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            # Ray's start-up notices (e.g. "Token authentication is enabled") would break the
            # CLI's one-line-per-event output; its errors still show.
            "logging_level": logging.ERROR,
        }
        try:
            if self.setting.mode is WorkersMode.ADDRESS:
                ray.init(address=self.setting.address, **quiet)
            else:
                ray.init(**quiet)
        except Exception as exc:
            where = self.setting.address or "a local Ray"
            raise ConfigError(
                f"could not start workers on {where}: {_first_line(exc)} "
                "(is the cluster up, with the same Ray and Python versions?)",
                "workers",
            ) from None
        self.started_ray = True

    def _placement(self, gpus: int, worker_slots: int) -> tuple[int, dict[str, Any]]:
        mode = self.setting.mode
        count = self.setting.count if mode is WorkersMode.COUNT else max(gpus, 1)
        if gpus:
            share = 1.0 if mode is not WorkersMode.COUNT else min(1.0, gpus / count)
            return count, {"num_gpus": share, "num_cpus": 0}
        if mode is not WorkersMode.COUNT:
            self.notes.append("no GPU found: one worker runs on the CPU")
        if worker_slots:
            return count, {"resources": {WORKER_RESOURCE: 1}, "num_cpus": 0}
        return count, {"num_cpus": 0}


def _first_line(exc: BaseException) -> str:
    cause = exc
    # Ray wraps the actor's exception (RayTaskError / ActorDiedError): show the original's line.
    inner = getattr(exc, "cause", None)
    if isinstance(inner, BaseException):
        cause = inner
    text = str(cause).strip().splitlines()
    return shorten(text[0] if text else type(cause).__name__, 200)
