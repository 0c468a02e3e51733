"""Ray workers on the CPU: a custom resource stands for the GPUs, two actors on the demo models.

One local Ray for the module (``ray.init`` takes ~6 s, each actor's engine a few more); the pool
joins it, so it does not shut it down. The kill test runs last: it takes a worker away.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.events import RunCompleted, StepProgress, WorkerState
from stablenew_qt.core.job import Job, JobStatus
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.worker_side import WorkerRuntime
from stablenew_qt.core.workers import RemoteRunResult, WorkerLost, WorkersSetting

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'stablenew-qt[cluster]'")

from stablenew_qt.cluster import WORKER_RESOURCE, RayWorkerHandle, RayWorkerPool  # noqa: E402
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings  # noqa: E402

pytestmark = pytest.mark.slow


def make_job(job_id: int, *, seed: int = 11, steps: int = 2, model: str = "demo-tiny-sd15") -> Job:
    config = RunConfig.from_dict(
        {
            "prompt": "a harbour",
            "seed": seed,
            "txt2img": {"model": model, "width": 64, "height": 64, "steps": steps},
        }
    )
    return Job(
        id=job_id,
        config_json=config.to_json(),
        status=JobStatus.RUNNING,
        position=job_id,
        priority=0,
        created=datetime.now().astimezone(),
        started=None,
        finished=None,
        attempts=1,
        error=None,
        outputs=(),
        run_id=None,
        output_root=None,
        cancel_requested=False,
    )


def pixels(result: RemoteRunResult) -> np.ndarray:
    (name,) = [n for n in result.files if n.endswith(".png")]
    return np.asarray(Image.open(io.BytesIO(result.files[name])).convert("RGB"))


@pytest.fixture(scope="module")
def engine_settings(tmp_path_factory: pytest.TempPathFactory, demo_models: dict[str, Path]) -> EngineSettings:
    models = tmp_path_factory.mktemp("cluster") / "models"
    models.mkdir()
    return EngineSettings(models_dir=models, device="cpu", demo_dir=next(iter(demo_models.values())).parent)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray.init(
        num_cpus=2,
        resources={WORKER_RESOURCE: 2},
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(
    local_ray: Any, engine_settings: EngineSettings
) -> Iterator[tuple[RayWorkerPool, list[RayWorkerHandle]]]:
    workers = RayWorkerPool(WorkersSetting.parse("2"), engine_settings)
    handles, failed = workers.start()
    assert failed == []
    yield workers, handles  # type: ignore[misc]
    workers.close()
    assert local_ray.is_initialized()  # a Ray the pool joined is not shut down


def test_two_workers_start_on_the_stand_in_resource(
    pool: tuple[RayWorkerPool, list[RayWorkerHandle]],
) -> None:
    workers, handles = pool
    assert [h.info.worker_id for h in handles] == ["w0", "w1"]
    assert all(h.info.state is WorkerState.IDLE and "CPU" in h.info.device and h.info.node for h in handles)
    assert not workers.started_ray


def test_same_seed_same_pixels_on_either_worker_and_in_process(
    pool: tuple[RayWorkerPool, list[RayWorkerHandle]], engine_settings: EngineSettings, tmp_path: Path
) -> None:
    _, handles = pool
    events: list[Any] = []
    first = handles[0].run(make_job(1), events.append)
    second = handles[1].run(make_job(2), lambda _e: None)
    assert first.status is second.status is LifecycleState.COMPLETED, (first.error, second.error)
    assert {first.worker_id, second.worker_id} == {"w0", "w1"}
    assert isinstance(events[-1], RunCompleted) and any(isinstance(e, StepProgress) for e in events)
    local = WorkerRuntime(DiffusersExecutor(engine_settings), "here", scratch_root=tmp_path).run(
        make_job(3).config, lambda _e: None
    )
    assert np.array_equal(pixels(first), pixels(second))
    assert np.array_equal(pixels(first), pixels(local))


def test_cancel_reaches_a_running_job_within_a_step_or_two(
    pool: tuple[RayWorkerPool, list[RayWorkerHandle]],
) -> None:
    _, handles = pool
    handle = handles[0]
    steps: list[int] = []

    def on_event(event: Any) -> None:
        if isinstance(event, StepProgress):
            steps.append(event.step)
            if len(steps) == 1:
                handle.cancel()

    result = handle.run(make_job(4, steps=40), on_event)
    assert result.status is LifecycleState.CANCELLED
    assert result.files == {}
    assert len(steps) <= 4, steps


def test_models_stay_resident_and_loads_are_counted(
    pool: tuple[RayWorkerPool, list[RayWorkerHandle]],
) -> None:
    _, handles = pool
    handle = handles[1]
    before = handle.info.loads
    for i in range(4):
        for model in ("demo-tiny-sd15", "demo-tiny-sdxl"):
            result = handle.run(make_job(10 + i, model=model, steps=1), lambda _e: None)
            assert result.status is LifecycleState.COMPLETED, result.error
    info = handle.info
    assert set(info.resident) == {"demo-tiny-sd15", "demo-tiny-sdxl"}
    assert info.loads - before == 1  # sd15 was resident already; sdxl loaded once for four jobs
    assert info.state is WorkerState.IDLE


def test_a_killed_worker_raises_worker_lost_and_the_other_keeps_serving(
    pool: tuple[RayWorkerPool, list[RayWorkerHandle]],
) -> None:
    _, (victim, survivor) = pool
    errors: list[BaseException] = []
    started = threading.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, StepProgress):
            started.set()

    def run() -> None:
        try:
            victim.run(make_job(20, steps=100), on_event)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(60), errors
    ray.kill(victim._actor)
    thread.join(60)
    assert len(errors) == 1 and isinstance(errors[0], WorkerLost), errors
    assert victim.info.state is WorkerState.LOST
    assert survivor.run(make_job(21), lambda _e: None).status is LifecycleState.COMPLETED
