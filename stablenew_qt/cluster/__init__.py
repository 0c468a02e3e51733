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
