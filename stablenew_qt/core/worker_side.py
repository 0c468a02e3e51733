"""What runs inside a worker process: one engine, one job at a time, files returned as bytes.

A :class:`WorkerRuntime` holds the worker's engine (its checkpoints stay resident between jobs)
and runs a job's RunConfig through the same :class:`~.controller.AppController` and
:class:`~.runner.PipelineRunner` the app uses, into a scratch output folder of its own. The run's
events go to a callback as they happen; :meth:`WorkerRuntime.cancel` (any thread) stops the run at
its next step. When the run ends the published run folder is read into a
:class:`~.workers.RemoteRunResult` (relative path -> bytes) and the scratch folder is deleted: no
shared filesystem is assumed, the app publishes the files itself.

Pure Python: no Ray here (``stablenew_qt/cluster/`` wraps this in an actor), so it is tested on
the demo engine in-process.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from .config import RunConfig
from .controller import AppController
from .errors import ConfigError, FailureCause, FailureKind
from .events import (
    LifecycleChanged,
    RunEvent,
    RunStarted,
    StageStarted,
    StepProgress,
    WorkerInfo,
    WorkerState,
)
from .executor import Engine
from .lifecycle import LifecycleState
from .outputs import OutputSettings
from .runner import PipelineRunner, RunResult
from .workers import RemoteRunResult

log = logging.getLogger(__name__)

__all__ = ["WorkerRuntime", "engine_loads", "engine_resident", "engine_vram", "read_run_files"]


def engine_resident(engine: object) -> tuple[str, ...]:
    """The checkpoints ``engine`` holds loaded now (an engine that does not say: none)."""
    resident = getattr(engine, "resident_checkpoints", None)
    return tuple(resident()) if callable(resident) else ()


def engine_vram(engine: object) -> tuple[int | None, int | None]:
    """(used, total) MiB of ``engine``'s GPU, or (None, None) (CPU, not loaded, or it does not say)."""
    vram = getattr(engine, "vram_mb", None)
    found = vram() if callable(vram) else None
    return (int(found[0]), int(found[1])) if found else (None, None)


def engine_loads(engine: object) -> int:
    """How many checkpoint loads ``engine`` has made (an engine that does not count: 0)."""
    loads = getattr(engine, "checkpoint_loads", None)
    return int(loads()) if callable(loads) else 0


def read_run_files(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder``, keyed by its POSIX path relative to it."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


class WorkerRuntime:
    """One worker's engine and its job runs (one at a time; :meth:`cancel` from any thread)."""

    def __init__(
        self,
        engine: Engine,
        worker_id: str,
        *,
        node: str | None = None,
        scratch_root: Path | None = None,
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.node = node if node is not None else socket.gethostname()
        self.scratch_root = scratch_root
        self.jobs_done = 0
        self._cancel = threading.Event()
        self._controller: AppController | None = None
        self._busy = threading.Lock()

    # -- what the Workers panel shows ----------------------------------------------------------
    def info(self, state: WorkerState = WorkerState.IDLE, job_id: int | None = None) -> WorkerInfo:
        used, total = engine_vram(self.engine)
        return WorkerInfo(
            worker_id=self.worker_id,
            node=self.node,
            device=self.engine.device_summary() or "not loaded yet",
            vram_total_mb=total,
            vram_used_mb=used,
            resident=engine_resident(self.engine),
            state=state,
            job_id=job_id,
            jobs_done=self.jobs_done,
            loads=engine_loads(self.engine),
        )

    def warm_up(self) -> WorkerInfo:
        """Prepare the engine (imports, device, model list; loads no checkpoint)."""
        self.engine.warm_up()
        return self.info()

    # -- running ---------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the running job at its next step (it ends CANCELLED). Safe from any thread."""
        self._cancel.set()
        controller = self._controller
        if controller is not None:
            controller.cancel()

    def run(
        self,
        config: RunConfig,
        on_event: Callable[[RunEvent], None],
        *,
        save_intermediates: bool = False,
    ) -> RemoteRunResult:
        """Run ``config`` to its end in a scratch folder; ``on_event`` gets its events in order.
        Returns how it ended, with the published run folder's files when it completed."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"worker {self.worker_id} is already running a job")
        scratch = Path(tempfile.mkdtemp(prefix="stablenew-worker-", dir=self.scratch_root))
        try:
            self._cancel.clear()
            runner = PipelineRunner(self.engine, OutputSettings(scratch / "runs", save_intermediates))
            controller = self._controller = AppController(runner)
            controller.subscribe(lambda event: self._relay(controller, event, on_event))
            if self._cancel.is_set():  # cancelled before it started
                return self._result("", LifecycleState.CANCELLED)
            try:
                result = controller.run_pipeline(config)
            except ConfigError as exc:
                log.warning("worker %s: the job cannot run: %s", self.worker_id, exc)
                return self._result("", LifecycleState.FAILED, error=str(exc), cause=exc.cause)
            except Exception as exc:
                log.exception("worker %s: unexpected error", self.worker_id)
                message = f"unexpected error on worker {self.worker_id}: {type(exc).__name__}: {exc}"
                cause = FailureCause(FailureKind.UNEXPECTED, message)
                return self._result("", LifecycleState.FAILED, error=message, cause=cause)
            return self._finished(result)
        finally:
            self._controller = None
            self.jobs_done += 1
            shutil.rmtree(scratch, ignore_errors=True)
            self._busy.release()

    def _relay(
        self, controller: AppController, event: RunEvent, on_event: Callable[[RunEvent], None]
    ) -> None:
        if isinstance(event, RunStarted | StageStarted | StepProgress) and self._cancel.is_set():
            controller.cancel()
        if not isinstance(event, LifecycleChanged):
            on_event(event)

    def _finished(self, result: RunResult) -> RemoteRunResult:
        date, files = "", {}
        published = result.manifest_path or (result.image_paths[0] if result.image_paths else None)
        # A completed run's folder, or the intermediates (and manifest) a run that did not complete kept.
        if published is not None and published.parent.is_dir():
            folder = published.parent
            date, files = folder.parent.name, read_run_files(folder)
        return self._result(
            result.run_id,
            result.status,
            date=date,
            files=files,
            seeds=result.seeds,
            error=result.error,
            cause=result.cause,
        )

    def _result(
        self,
        run_id: str,
        status: LifecycleState,
        *,
        date: str = "",
        files: dict[str, bytes] | None = None,
        seeds: tuple[int, ...] = (),
        error: str | None = None,
        cause: FailureCause | None = None,
    ) -> RemoteRunResult:
        return RemoteRunResult(
            run_id=run_id,
            status=status,
            date=date,
            files=files or {},
            seeds=seeds,
            error=error,
            cause=cause,
            node=self.node,
            device=self.engine.device_summary(),
            worker_id=self.worker_id,
        )
