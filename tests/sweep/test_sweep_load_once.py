"""A sweep over checkpoints loads each model once (issue 15), measured on the real engine with the
demo models: the model cache is given room for one pipeline only, so every change of checkpoint
between two jobs is a load (the control queues the same cells in the order the axes were typed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import GroupKind, JobStatus
from stablenew_qt.core.session import SessionOptions, open_session
from stablenew_qt.core.sweep import SweepSpec, sweep_jobs

pytestmark = pytest.mark.slow

MODELS = ("demo-tiny-sd15", "demo-tiny-sdxl")


def _base() -> RunConfig:
    return RunConfig.model_validate(
        {
            "prompt": "a lighthouse",
            "seed": 3,
            "txt2img": {"model": MODELS[0], "steps": 1, "width": 64, "height": 64},
        }
    )


def _run(demo_models: dict[str, Path], tmp_path: Path, configs: list[RunConfig]) -> int:
    """Run ``configs`` as one group through a session on the real engine; the loads it took."""
    from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings

    demo_root = next(iter(demo_models.values())).parent
    engine = DiffusersExecutor(EngineSettings(tmp_path / "models", device="cpu", demo_dir=demo_root))
    cache = engine.context.cache
    cache.budget_bytes = 1  # room for one pipeline: the next model evicts the last
    options = SessionOptions(OutputSettings(tmp_path / "runs"), queue_path=tmp_path / "queue.sqlite3")
    with open_session(engine, options) as session:
        session.queue.add_group(configs, GroupKind.SWEEP)
        done = session.run_queue()
    assert [job.status for job in done] == [JobStatus.COMPLETED] * len(configs)
    return cache.loads


def test_a_checkpoint_sweep_loads_each_model_once(demo_models: dict[str, Path], tmp_path: Path) -> None:
    # Checkpoint name on X, CFG on Y: typed order would switch models at every cell.
    spec = SweepSpec.from_dict(
        {
            "x": {"type": "Checkpoint name", "values": ", ".join(MODELS)},
            "y": {"type": "CFG Scale", "values": "4, 7"},
        }
    )
    jobs = sweep_jobs(_base(), spec)
    assert [c.txt2img.model for c in jobs.configs] == [MODELS[0], MODELS[0], MODELS[1], MODELS[1]]
    assert _run(demo_models, tmp_path / "planned", list(jobs.configs)) == 2
    typed = [jobs.configs[i] for i in sorted(range(4), key=lambda i: jobs.indices[i])]  # the grid's order
    assert [c.txt2img.model for c in typed] == [MODELS[0], MODELS[1], MODELS[0], MODELS[1]]
    assert _run(demo_models, tmp_path / "typed", typed) == 4, "the control: each switch is a load"
