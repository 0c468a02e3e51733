"""core.worker_side on the real demo engine, in-process (no Ray): files, events, cancel, failure."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.events import RunCompleted, RunEvent, RunStarted, StepProgress, WorkerState
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.worker_side import WorkerRuntime
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings


def demo_config(seed: int = 7, steps: int = 3, model: str = "demo-tiny-sd15") -> RunConfig:
    return RunConfig.from_dict(
        {
            "prompt": "a lighthouse",
            "seed": seed,
            "txt2img": {"model": model, "width": 64, "height": 64, "steps": steps},
        }
    )


@pytest.fixture
def runtime(tmp_path: Path, demo_models: dict[str, Path]) -> WorkerRuntime:
    demo_root = next(iter(demo_models.values())).parent
    engine = DiffusersExecutor(
        EngineSettings(models_dir=tmp_path / "models", device="cpu", demo_dir=demo_root)  # type: ignore[arg-type]
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return WorkerRuntime(engine, "w0", node="test-node", scratch_root=scratch)


def test_a_completed_job_returns_its_run_folder_as_bytes_and_leaves_no_scratch(
    runtime: WorkerRuntime,
) -> None:
    events: list[RunEvent] = []
    result = runtime.run(demo_config(), events.append)

    assert result.status is LifecycleState.COMPLETED, result.error
    assert result.seeds == (7,) and result.worker_id == "w0" and result.node == "test-node"
    assert result.date.count("-") == 2 and len(result.date) == 10
    pngs = [name for name in result.files if name.endswith(".png")]
    assert pngs == ["00000-7.png"]
    assert Image.open(io.BytesIO(result.files[pngs[0]])).size == (64, 64)
    manifest = json.loads(result.files["manifest.json"])
    assert manifest["run_id"] == result.run_id
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunCompleted)
    assert sum(isinstance(e, StepProgress) for e in events) >= 3
    assert list(runtime.scratch_root.iterdir()) == []  # type: ignore[union-attr]
    info = runtime.info()
    assert info.resident == ("demo-tiny-sd15",) and info.loads == 1 and info.jobs_done == 1
    assert info.state is WorkerState.IDLE and "CPU" in info.device


def test_cancel_from_another_thread_stops_the_job_at_its_next_step(runtime: WorkerRuntime) -> None:
    steps: list[int] = []

    def on_event(event: Any) -> None:
        if isinstance(event, StepProgress):
            steps.append(event.step)
            runtime.cancel()  # what the actor's second thread does

    result = runtime.run(demo_config(steps=20), on_event)
    assert result.status is LifecycleState.CANCELLED
    assert result.files == {}
    assert len(steps) <= 2, steps
    # The next job runs normally: the flag is per job.
    assert runtime.run(demo_config(), lambda _e: None).status is LifecycleState.COMPLETED


def test_a_job_that_cannot_run_fails_with_one_line_and_no_files(runtime: WorkerRuntime) -> None:
    result = runtime.run(demo_config(model="no-such-model.safetensors"), lambda _e: None)
    assert result.status is LifecycleState.FAILED
    assert result.files == {}
    assert result.error and "no-such-model" in result.error and "\n" not in result.error
    assert result.cause is not None
    assert list(runtime.scratch_root.iterdir()) == []  # type: ignore[union-attr]


def test_the_worker_reports_its_gpu_memory_when_the_engine_says_and_none_otherwise() -> None:
    from stablenew_qt.core.fake_executor import FakeExecutor
    from stablenew_qt.core.worker_side import WorkerRuntime

    class GpuEngine(FakeExecutor):
        def vram_mb(self) -> tuple[int, int]:
            return 5_120, 143_771

    assert (WorkerRuntime(FakeExecutor(), "w0").info().vram_total_mb) is None
    info = WorkerRuntime(GpuEngine(), "w1").info()
    assert (info.vram_used_mb, info.vram_total_mb) == (5_120, 143_771)
