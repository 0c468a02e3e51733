"""Workers on Ray: the only package that imports Ray, and only inside functions (when a pool
starts), so ``import stablenew_qt.cluster`` is cheap and the app and CLI start without Ray.

    RayWorkerPool / RayWorkerHandle  core.workers' WorkerPool / WorkerHandle on Ray actors
    EngineActor                      the worker process's end: one resident engine
    job_runner_factory               the session's JobRunnerFactory for a WorkersSetting
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.dispatch import dispatching
from ..core.job_runner import JobRunnerFactory
from ..core.workers import WorkersSetting
from .actor import EngineActor
from .pool import RAY_MISSING, WORKER_RESOURCE, RayWorkerHandle, RayWorkerPool, import_ray

if TYPE_CHECKING:
    from ..engine.executor import EngineSettings

__all__ = [
    "RAY_MISSING",
    "WORKER_RESOURCE",
    "EngineActor",
    "RayWorkerHandle",
    "RayWorkerPool",
    "import_ray",
    "job_runner_factory",
]


def job_runner_factory(
    setting: WorkersSetting,
    engine: EngineSettings,
    *,
    save_intermediates: bool = False,
    pause_on_failure: bool = False,
    auto_resume: bool = False,
) -> JobRunnerFactory:
    """The session's JobRunnerFactory for ``setting`` (a WorkersSetting other than ``this``):
    core.dispatch's DispatchingJobRunner over a :class:`RayWorkerPool` of ``engine`` (the
    EngineSettings each worker builds its engine from). Imports no Ray until the pool starts."""
    pool = RayWorkerPool(setting, engine, save_intermediates=save_intermediates)
    return dispatching(pool, pause_on_failure=pause_on_failure, auto_resume=auto_resume)
