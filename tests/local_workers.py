"""Dispatch test doubles: in-process workers standing in for Ray actors.

:class:`LocalWorker` is a :class:`~stablenew_qt.core.workers.WorkerHandle` that runs each job
through the real worker side (``core/worker_side.WorkerRuntime``: AppController, PipelineRunner,
RunOutputs into a scratch folder, files returned as bytes) on a FakeExecutor that keeps one
"checkpoint" resident and counts its loads, as the real engine's pipeline cache does. It can be
told to die during a job (the actor's process killed): the events stop, no result comes, WorkerLost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from stablenew_qt.core.events import RunEvent, StepProgress, WorkerInfo, WorkerState
from stablenew_qt.core.executor import StageExecution, StagePayload
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job import Job
from stablenew_qt.core.worker_side import WorkerRuntime
from stablenew_qt.core.workers import RemoteRunResult, WorkerHandle, WorkerLost


class ResidentFakeEngine(FakeExecutor):
    """A FakeExecutor that "loads" the first stage's checkpoint when it changes (one resident)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.resident: str | None = None
        self.loads = 0
        self.loaded: list[str] = []

    def resident_checkpoints(self) -> tuple[str, ...]:
        return (self.resident,) if self.resident else ()

    def checkpoint_loads(self) -> int:
        return self.loads

    def generate_images(self, stage: StageExecution, payload: StagePayload, progress, cancel_token):  # type: ignore[no-untyped-def]
        model = payload.config.txt2img.model or "default"
        if model != self.resident:
            self.resident = model
            self.loads += 1
            self.loaded.append(model)
        return super().generate_images(stage, payload, progress, cancel_token)


class LocalWorker:
    """WorkerHandle over an in-process WorkerRuntime (see the module docstring)."""

    def __init__(self, worker_id: str, *, step_delay: float = 0.0, node: str = "testhost") -> None:
        self.engine = ResidentFakeEngine(step_delay=step_delay)
        self.engine.device = "cpu"
        self.runtime = WorkerRuntime(self.engine, worker_id, node=node)
        self._info = self.runtime.info()
        self.jobs: list[int] = []
        self.die_at_step: int | None = None  # die at this step of the next job
        self.dead = False
        self.cancels = 0
        self.steps_after_cancel = 0
        self.closed = False
        self.started = threading.Event()  # set when a job's first step arrives

    @property
    def info(self) -> WorkerInfo:
        return self._info

    def run(
        self, job: Job, on_event: Callable[[RunEvent], None], *, save_intermediates: bool | None = None
    ) -> RemoteRunResult:
        if self.dead:
            raise WorkerLost(f"worker {self.runtime.worker_id} is dead")
        self.jobs.append(job.id)
        cancelled_at: list[int] = []

        def relay(event: RunEvent) -> None:
            if self.dead:
                return  # a dead process sends nothing more
            if isinstance(event, StepProgress):
                self.started.set()
                if self.cancels:
                    cancelled_at.append(event.step)
                if self.die_at_step is not None and event.step >= self.die_at_step:
                    self.dead = True
                    self.runtime.cancel()
                    return
            on_event(event)

        result = self.runtime.run(job.config, relay, save_intermediates=bool(save_intermediates))
        self.steps_after_cancel = len(cancelled_at)
        if self.dead:
            self._info = WorkerInfo(self.runtime.worker_id, state=WorkerState.LOST)
            raise WorkerLost(f"worker {self.runtime.worker_id} died during job {job.id}")
        self._info = self.runtime.info()
        return result

    def cancel(self) -> None:
        self.cancels += 1
        self.runtime.cancel()

    def close(self) -> None:
        self.closed = True


class ListPool:
    """A WorkerPool over given handles (``failed``: WorkerInfos of workers that did not start)."""

    def __init__(self, handles: list[WorkerHandle], failed: list[WorkerInfo] | None = None) -> None:
        self.handles = handles
        self.failed = failed or []
        self.starts = 0
        self.closed = False

    def start(self) -> tuple[list[WorkerHandle], list[WorkerInfo]]:
        self.starts += 1
        return list(self.handles), list(self.failed)

    def close(self) -> None:
        self.closed = True
        for handle in self.handles:
            handle.close()
