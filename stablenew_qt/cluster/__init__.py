"""Workers on Ray: the only package that imports Ray, and only inside functions (when a pool
starts), so ``import stablenew_qt.cluster`` is cheap and the app and CLI start without Ray.

    RayWorkerPool / RayWorkerHandle  core.workers' WorkerPool / WorkerHandle on Ray actors
    EngineActor                      the worker process's end: one resident engine
    job_runner_factory               the session's JobRunnerFactory for a WorkersSetting
"""

from __future__ import annotations

from .actor import EngineActor
from .pool import RAY_MISSING, WORKER_RESOURCE, RayWorkerHandle, RayWorkerPool, import_ray

__all__ = ["RAY_MISSING", "WORKER_RESOURCE", "EngineActor", "RayWorkerHandle", "RayWorkerPool", "import_ray"]


def job_runner_factory(
    setting: object,
    engine: object,
    *,
    save_intermediates: bool = False,
    pause_on_failure: bool = False,
    auto_resume: bool = False,
) -> object:
    """The session's JobRunnerFactory for ``setting`` (a WorkersSetting other than ``this``):
    core.dispatch's DispatchingJobRunner over a :class:`RayWorkerPool` of ``engine`` (the
    EngineSettings each worker builds its engine from). Imports no Ray until the pool starts."""
    import importlib

    from ..core.workers import WorkersSetting

    # core.dispatch is the dispatch helper's module (issue 16); looked up by name until it is merged.
    dispatch = importlib.import_module("stablenew_qt.core.dispatch")

    assert isinstance(setting, WorkersSetting)
    pool = RayWorkerPool(setting, engine, save_intermediates=save_intermediates)  # type: ignore[arg-type]

    def make(queue: object, controller: object) -> object:
        return dispatch.DispatchingJobRunner(
            queue, controller, pool, pause_on_failure=pause_on_failure, auto_resume=auto_resume
        )

    return make
