"""Ray workers on the CPU: a custom resource stands for the GPUs, two actors on the demo models.

One local Ray for the module (``ray.init`` takes ~6 s, each actor's engine a few more); the pool
joins it, so it does not shut it down. The handles are tested on their own, then under the
dispatcher (a session running the queue on them), then ``queue run --workers 2`` starts a pool of
its own in the same Ray. The kill test runs last: it takes a worker away.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from job_records import job_record
from PIL import Image

from stablenew_qt.cli import main
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.dispatch import dispatching
from stablenew_qt.core.events import (
    JobFinished,
    JobStarted,
    QueueRunFinished,
    RunCompleted,
    StepProgress,
    WorkerInfo,
    WorkersChanged,
    WorkerState,
)
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job import Job, JobStatus
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.session import EngineSession, SessionOptions, open_session
from stablenew_qt.core.worker_side import WorkerRuntime
from stablenew_qt.core.workers import RemoteRunResult, WorkersSetting

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
    return job_record(job_id, config.to_json(), JobStatus.RUNNING, attempts=1)


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
        resources={WORKER_RESOURCE: 4},  # two for the module's pool, two for the CLI's
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


class SharedPool:
    """The module's started handles as a WorkerPool (the module fixture stops them, not the session)."""

    def __init__(self, handles: list[RayWorkerHandle]) -> None:
        self.handles = handles

    def start(self) -> tuple[list[Any], list[WorkerInfo]]:
        return list(self.handles), []

    def close(self) -> None:
        pass


def open_dispatching_session(tmp_path: Path, handles: list[RayWorkerHandle]) -> EngineSession:
    options = SessionOptions(OutputSettings(tmp_path / "out"), queue_path=tmp_path / "queue.sqlite3")
    return open_session(FakeExecutor(), options, job_runner=dispatching(SharedPool(handles)))


def test_the_dispatcher_runs_eight_queued_jobs_exactly_once_across_both_ray_workers(
    pool: tuple[RayWorkerPool, list[RayWorkerHandle]], tmp_path: Path
) -> None:
    _, handles = pool
    with open_dispatching_session(tmp_path, handles) as session:
        seen: list[Any] = []
        session.subscribe(seen.append)
        jobs = session.enqueue(make_job(0).config, 8)
        finished = session.run_queue()
        recorded = [session.queue.get(job.id) for job in jobs]
    assert sorted(job.id for job in finished) == [job.id for job in jobs]
    assert all(job.status is JobStatus.COMPLETED and job.attempts == 1 for job in recorded)
    ran_on: dict[int, str] = {}
    for job in recorded:
        assert job.outputs and all(path.is_file() for path in job.outputs)
        manifest = json.loads((job.outputs[0].parent / "manifest.json").read_text(encoding="utf-8"))
        ran_on[job.id] = manifest["worker"]["worker_id"]
        assert manifest["worker"]["node"] and "CPU" in manifest["worker"]["device"]
    assert set(ran_on.values()) == {"w0", "w1"}, f"both workers were used: {ran_on}"
    started = [e.job.id for e in seen if isinstance(e, JobStarted)]
    assert sorted(started) == sorted(ran_on), "each job started once"
    assert any(isinstance(e, StepProgress) for e in seen) and isinstance(seen[-1], QueueRunFinished)


def test_queue_run_workers_2_runs_the_queue_on_two_ray_workers(
    pool: tuple[RayWorkerPool, list[RayWorkerHandle]],
    demo_models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue_path, out = tmp_path / "queue.sqlite3", tmp_path / "out"
    with JobQueue(queue_path) as queue:
        jobs = queue.add(make_job(0).config, 4)
    # The workers find the session's prebuilt demo models where the app looks for them.
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "StableNewQt" / "demo-models"
    made_link = not cache.exists()
    if made_link:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.symlink_to(next(iter(demo_models.values())).parent, target_is_directory=True)
    models = tmp_path / "models"
    models.mkdir()
    try:
        args = ["queue", "run", "--queue", str(queue_path), "--output", str(out), "--workers", "2"]
        code = main([*args, "--models-dir", str(models), "--device", "cpu"])
    finally:
        if made_link:
            cache.unlink()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    with JobQueue(queue_path) as queue:
        recorded = [queue.get(job.id) for job in jobs]
    assert all(job.status is JobStatus.COMPLETED and job.attempts == 1 for job in recorded), captured.err
    printed = [line for line in captured.out.splitlines() if line.strip()]
    assert sorted(printed) == sorted(str(path) for job in recorded for path in job.outputs)
    for job in recorded:
        assert re.search(rf"job {job.id}: completed on worker w[01]\b", captured.err), captured.err
    assert "worker w0" in captured.err and "worker w1" in captured.err
    assert local_ray_is_kept(pool)


def local_ray_is_kept(pool: tuple[RayWorkerPool, list[RayWorkerHandle]]) -> bool:
    """The CLI's pool joined the module's Ray: closing it kept that Ray and the module's workers."""
    return ray.is_initialized() and all(h.info.state is WorkerState.IDLE for h in pool[1])


def test_a_killed_worker_leaves_its_job_requeued_once_and_the_other_worker_completes_everything(
    pool: tuple[RayWorkerPool, list[RayWorkerHandle]], tmp_path: Path
) -> None:
    _, handles = pool
    victim = handles[0]
    killed: list[int] = []

    def kill_the_first_busy_w0(event: Any) -> None:
        if isinstance(event, WorkersChanged) and not killed:
            w0 = next(w for w in event.workers if w.worker_id == "w0")
            if w0.state is WorkerState.BUSY and w0.fraction > 0 and w0.job_id is not None:
                killed.append(w0.job_id)
                ray.kill(victim._actor)

    with open_dispatching_session(tmp_path, handles) as session:
        session.subscribe(kill_the_first_busy_w0)
        seen: list[Any] = []
        session.subscribe(seen.append)
        jobs = session.enqueue(make_job(0, steps=30).config, 3)
        session.run_queue()
        recorded = {job.id: session.queue.get(job.id) for job in jobs}
    assert len(killed) == 1, "the kill happened while w0 ran a job"
    assert all(job.status is JobStatus.COMPLETED for job in recorded.values()), recorded
    assert recorded[killed[0]].attempts == 2, "the lost job ran again once, and completed once"
    assert [job.attempts for i, job in recorded.items() if i != killed[0]] == [1, 1]
    assert len({job.outputs[0].parent for job in recorded.values()}) == 3
    lost = [e for e in seen if isinstance(e, JobFinished) and e.job.status is JobStatus.INTERRUPTED]
    assert [e.job.id for e in lost] == killed
    last = [e for e in seen if isinstance(e, WorkersChanged)][-1]
    assert {w.worker_id: w.state for w in last.workers} == {"w0": WorkerState.LOST, "w1": WorkerState.IDLE}
    assert victim.info.state is WorkerState.LOST
