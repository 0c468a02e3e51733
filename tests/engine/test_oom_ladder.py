"""The out-of-memory ladder (engine/oom.py, climbed by the executor) on the real engine, CPU.

The UNet's forward is wrapped to raise ``torch.OutOfMemoryError`` a chosen number of times (or
whenever its batch is too big): the rungs must come in order, the step that worked must be
remembered for the same model and size, the stage's note and the manifest must say it, and when
every rung fails the run fails as OUT_OF_MEMORY with advice. Where a rung does not change the
maths at this size (VAE tiling of a 64×64 image is one tile; attention slicing and one image per
call compute the same sums) the pixels are compared with a plain run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import FailureKind
from stablenew_qt.core.events import StageFinished
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.options import MemoryMode
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner, RunResult
from stablenew_qt.engine import oom
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings
from stablenew_qt.engine.oom import (
    CPU_RUNGS,
    CUDA_RUNGS,
    MemoryMeasures,
    Rung,
    Step,
    ladder,
    out_of_memory_advice,
)

pytestmark = pytest.mark.timeout(300)


def _executor(demo_models: dict[str, Path], tmp_path: Path) -> DiffusersExecutor:
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True, exist_ok=True)
    demo_root = next(iter(demo_models.values())).parent
    return DiffusersExecutor(EngineSettings(models_dir=models, device="cpu", demo_dir=demo_root))  # type: ignore[arg-type]


@pytest.fixture
def executor(demo_models: dict[str, Path], tmp_path: Path) -> DiffusersExecutor:
    return _executor(demo_models, tmp_path)


def _config(batch: int = 1, **txt2img: object) -> RunConfig:
    return RunConfig.from_dict(
        {
            "prompt": "a lighthouse",
            "seed": 5,
            "batch_size": batch,
            "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": 2, **txt2img},
        }
    )


def _run(executor: DiffusersExecutor, config: RunConfig, out: Path) -> RunResult:
    return PipelineRunner(executor, OutputSettings(out)).run(config, CancelToken())


@pytest.fixture
def unet_oom(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[Callable[[torch.Tensor], bool]], list[int]]]:
    """``unet_oom(fails)``: from now on the UNet raises OutOfMemoryError whenever ``fails(sample)``;
    returns the list of batch sizes each UNet call got (failed ones as negatives)."""
    from diffusers import UNet2DConditionModel

    original = UNet2DConditionModel.forward

    def install(fails: Callable[[torch.Tensor], bool]) -> list[int]:
        calls: list[int] = []

        def forward(self: Any, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if fails(sample):
                calls.append(-sample.shape[0])
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
            calls.append(sample.shape[0])
            return original(self, sample, *args, **kwargs)

        monkeypatch.setattr(UNet2DConditionModel, "forward", forward)
        return calls

    yield install


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[Step]:
    """Every step the executor puts in force, in order."""
    steps: list[Step] = []
    original = MemoryMeasures.apply

    def apply(self: MemoryMeasures, step: Step) -> None:
        steps.append(step)
        original(self, step)

    monkeypatch.setattr(MemoryMeasures, "apply", apply)
    return steps


def _first_n(n: int) -> Callable[[torch.Tensor], bool]:
    count = {"calls": 0}

    def fails(_sample: torch.Tensor) -> bool:
        count["calls"] += 1
        return count["calls"] <= n

    return fails


def _pixels(result: RunResult) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.int16) for image in result.images])


# -- the ladder itself -------------------------------------------------------------------------
def test_the_rungs_come_in_the_documented_order() -> None:
    tiling, slicing = (Rung.VAE_TILING,), (Rung.VAE_TILING, Rung.ATTENTION_SLICING)
    offload = (*slicing, Rung.MODEL_OFFLOAD, Rung.SEQUENTIAL_OFFLOAD)
    assert ladder(CUDA_RUNGS, 4) == [
        Step(),
        Step(tiling),
        Step(slicing),
        Step((*slicing, Rung.MODEL_OFFLOAD)),
        Step(offload),
        Step((*offload, Rung.SMALLER_BATCH), 2),
        Step((*offload, Rung.SMALLER_BATCH), 1),
    ]
    assert ladder(CUDA_RUNGS, 1)[-1] == Step(offload), "one image: no smaller batch"
    assert ladder(CPU_RUNGS, 3) == [
        Step(),
        Step(tiling),
        Step(slicing),
        Step((*slicing, Rung.SMALLER_BATCH), 2),
        Step((*slicing, Rung.SMALLER_BATCH), 1),
    ]
    assert Step((*offload, Rung.SMALLER_BATCH), 1).describe() == (
        "VAE tiling, attention slicing, model CPU offload, sequential CPU offload and batch 1 per call"
    )


def test_offload_rungs_switch_the_cache_memory_mode() -> None:
    class Cache:
        def __init__(self) -> None:
            self.calls: list[object] = []

        def set_attention_slicing(self, on: bool) -> None:
            self.calls.append(("slicing", on))

        def set_memory_mode(self, mode: MemoryMode) -> None:
            self.calls.append(mode)

    class Context:
        cache = Cache()
        force_vae_tiling = False

    context = Context()
    measures = MemoryMeasures(context, MemoryMode.GPU)
    modes = []
    for step in ladder(CUDA_RUNGS, 2):
        measures.apply(step)
        modes.append((context.force_vae_tiling, context.cache.calls[-2], context.cache.calls[-1]))
    assert modes == [
        (False, ("slicing", False), MemoryMode.GPU),
        (True, ("slicing", False), MemoryMode.GPU),
        (True, ("slicing", True), MemoryMode.GPU),
        (True, ("slicing", True), MemoryMode.MODEL_OFFLOAD),
        (True, ("slicing", True), MemoryMode.SEQUENTIAL_OFFLOAD),
        (True, ("slicing", True), MemoryMode.SEQUENTIAL_OFFLOAD),
    ]
    measures.apply(Step())  # a plain step takes every measure back
    assert context.force_vae_tiling is False and context.cache.calls[-1] is MemoryMode.GPU


def test_a_split_batch_keeps_each_images_variation_seed() -> None:
    from stablenew_qt.core.executor import StagePayload

    config = RunConfig.from_dict({"seed": 5, "batch_size": 4, "subseed": 100, "subseed_strength": 0.3})
    payload = StagePayload(config, "a lighthouse", "", (5, 5, 5, 5))
    parts = oom.split_payload(payload, 3)
    assert [p.seeds for p in parts] == [(5, 5, 5), (5,)]
    assert [p.config.subseed for p in parts] == [100, 103], "the second call starts at image 3's"
    plain = StagePayload(RunConfig.from_dict({"seed": 5}), "x", "", (5, 6, 7))
    assert [p.config.subseed for p in oom.split_payload(plain, 2)] == [-1, -1]


def test_what_counts_as_out_of_memory() -> None:
    assert oom.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert oom.is_out_of_memory(MemoryError())
    assert oom.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert not oom.is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not oom.is_out_of_memory(ValueError("out of memory"))


def test_the_final_advice() -> None:
    last_cuda = ladder(CUDA_RUNGS, 2)[-1]
    assert out_of_memory_advice(True, last_cuda) == (
        "out of GPU memory even with sequential offload and batch 1: "
        "lower the size or close other GPU programs"
    )
    assert out_of_memory_advice(False, ladder(CPU_RUNGS, 1)[-1]) == (
        "out of memory even with attention slicing: lower the size or close other programs"
    )


# -- on the real engine ------------------------------------------------------------------------
@pytest.mark.slow
def test_two_failures_climb_two_rungs_and_the_step_is_remembered(
    executor: DiffusersExecutor,
    demo_models: dict[str, Path],
    tmp_path: Path,
    unet_oom: Any,
    applied: list[Step],
) -> None:
    plain = _run(_executor(demo_models, tmp_path / "plain"), _config(), tmp_path / "plain-runs")
    applied.clear()
    calls = unet_oom(_first_n(2))
    result = _run(executor, _config(), tmp_path / "runs")
    assert result.status == "COMPLETED", result.error
    slicing = Step((Rung.VAE_TILING, Rung.ATTENTION_SLICING))
    assert applied == [Step(), Step((Rung.VAE_TILING,)), slicing]
    assert calls[:2] == [-2, -2] and all(c > 0 for c in calls[2:])  # CFG: 2 latents per call
    ctx = executor.context
    assert ctx.oom_steps.get(("txt2img:demo-tiny-sd15", 64, 64)) == slicing
    assert ctx.cache.attention_slicing and ctx.force_vae_tiling
    assert result.manifest_path is not None
    [stage] = json.loads(result.manifest_path.read_text(encoding="utf-8"))["stages"]
    assert stage["notes"] == [
        "ran out of memory; succeeded with VAE tiling and attention slicing (kept for this model and size)"
    ]
    difference = int(np.abs(_pixels(result) - _pixels(plain)).max())
    assert difference <= 1, f"slicing and one-tile VAE tiling changed pixels by {difference}"

    applied.clear()
    again = _run(executor, _config(), tmp_path / "runs")  # the next job starts on the step that worked
    assert again.status == "COMPLETED" and applied == [slicing]
    assert again.manifest_path is not None
    [stage] = json.loads(again.manifest_path.read_text(encoding="utf-8"))["stages"]
    assert stage["notes"] == [
        "ran with VAE tiling and attention slicing: this model and size ran out of memory before"
    ]
    applied.clear()
    other = _run(executor, _config(width=96), tmp_path / "runs")  # another size starts plain
    assert other.status == "COMPLETED" and applied == [Step()]
    assert not ctx.cache.attention_slicing and not ctx.force_vae_tiling


@pytest.mark.slow
def test_a_batch_too_big_for_memory_runs_one_image_per_call(
    executor: DiffusersExecutor,
    demo_models: dict[str, Path],
    tmp_path: Path,
    unet_oom: Any,
    applied: list[Step],
) -> None:
    plain = _run(_executor(demo_models, tmp_path / "plain"), _config(batch=2), tmp_path / "plain-runs")
    applied.clear()
    calls = unet_oom(lambda sample: sample.shape[0] > 2)  # two images with CFG are 4 latents
    result = _run(executor, _config(batch=2), tmp_path / "runs")
    assert result.status == "COMPLETED", result.error
    assert applied[-1].batch == 1 and [s.batch for s in applied] == [None, None, None, 1]
    assert calls.count(-4) == 3 and set(calls) - {-4} == {2}
    assert result.seeds == plain.seeds == (5, 6)
    difference = int(np.abs(_pixels(result) - _pixels(plain)).max())
    assert difference <= 1, f"one image per call changed pixels by {difference}"


@pytest.mark.slow
def test_when_every_rung_fails_the_run_fails_with_advice(
    executor: DiffusersExecutor, tmp_path: Path, unet_oom: Any, applied: list[Step]
) -> None:
    unet_oom(lambda _sample: True)
    result = _run(executor, _config(batch=2), tmp_path / "runs")
    assert result.status == "FAILED" and result.cause is not None
    assert result.cause.kind is FailureKind.OUT_OF_MEMORY and result.cause.stage == "txt2img"
    assert result.error == (
        "txt2img: out of memory even with attention slicing and batch 1: "
        "lower the size or close other programs"
    )
    assert applied == ladder(CPU_RUNGS, 2)
    assert not (tmp_path / "runs").exists()
    assert executor.context.oom_steps.get(("txt2img:demo-tiny-sd15", 64, 64)) == Step()


# -- every stage -------------------------------------------------------------------------------
def _chain_engine(demo_models: dict[str, Path], tmp_path: Path) -> DiffusersExecutor:
    models = tmp_path / "models"
    (models / "adetailer").mkdir(parents=True)
    detector = models / "adetailer" / "face_tiny.pt"
    shutil.copy(Path(__file__).parents[1] / "data" / "face_tiny.pt", detector)
    settings = EngineSettings(
        models_dir=models,
        device="cpu",  # type: ignore[arg-type]
        demo_dir=next(iter(demo_models.values())).parent,
        trusted_detectors=(detector,),
        trust_file=tmp_path / "trust.json",
    )
    return DiffusersExecutor(settings)


CHAIN = {
    "prompt": "portrait photo",
    "seed": 4,
    "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": 2},
    "img2img": {"enabled": True, "steps": 2, "denoise": 0.5},
    "upscale": {"enabled": True, "upscale_model": "Lanczos", "upscale_factor": 1.5},
    "adetailer": {"enabled": True, "units": [{"adetailer_model": "face_tiny.pt", "adetailer_steps": 2}]},
}

OOM_KINDS: dict[str, Callable[[], BaseException]] = {
    "CUDA OutOfMemoryError": lambda: torch.OutOfMemoryError("CUDA out of memory (simulated)"),
    "CPU allocation RuntimeError": lambda: RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory (simulated)"
    ),
    "MemoryError": MemoryError,
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(OOM_KINDS))
@pytest.mark.parametrize("stage", ["txt2img", "img2img", "upscale", "adetailer"])
def test_out_of_memory_in_any_stage_is_retried_and_noted(
    stage: str, kind: str, demo_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage function itself raises once (the point where the stage would allocate)."""
    import importlib

    module = importlib.import_module(f"stablenew_qt.engine.stages.{stage}")
    original = module.run
    raised: list[str] = []

    def run_once_out_of_memory(*args: Any, **kwargs: Any) -> Any:
        if not raised:
            raised.append(stage)
            raise OOM_KINDS[kind]()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "run", run_once_out_of_memory)
    events: list[object] = []
    runner = PipelineRunner(_chain_engine(demo_models, tmp_path), OutputSettings(tmp_path / "runs"))
    result = runner.run(RunConfig.from_dict(CHAIN), CancelToken(), events.append)
    assert result.status == "COMPLETED", result.error
    assert raised == [stage]
    assert result.manifest_path is not None
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    notes = {entry["stage"]: entry.get("notes", []) for entry in manifest["stages"]}
    note = "ran out of memory; succeeded with VAE tiling (kept for this model and size)"
    assert note in notes.pop(stage)
    finished = {e.stage.value: e.notes for e in events if isinstance(e, StageFinished)}
    assert note in finished[stage], "the window's status line gets it from StageFinished.notes"
    assert not [n for stage_notes in notes.values() for n in stage_notes if "memory" in n], notes
