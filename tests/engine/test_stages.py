"""The real engine on tiny random-weight models: every stage and combination through the runner.

These run the real engine on the CPU (A1111's sampling loop on the diffusers UNet, VAE and text
encoders: the same code paths a CUDA user runs, in fp32). The
demo models come from the session fixture ``demo_models`` (tests/engine/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner, RunResult
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.engine.denoise import img2img_step_count
from stablenew_qt.engine.errors import ModelError
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings

SD15 = "demo-tiny-sd15"
SDXL = "demo-tiny-sdxl"
REFINER = "demo-tiny-sdxl-refiner"


@pytest.fixture(scope="module")
def executor(demo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> DiffusersExecutor:
    """One engine for the module, so pipelines stay resident as they do in the app."""
    models_dir = tmp_path_factory.mktemp("models")
    demo_root = next(iter(demo_models.values())).parent
    settings = EngineSettings(models_dir=models_dir, device="cpu", preview_every=2, demo_dir=demo_root)
    return DiffusersExecutor(settings)


def _config(**sections: Any) -> RunConfig:
    base: dict[str, Any] = {
        "prompt": "a red apple on a table",
        "negative_prompt": "blurry",
        "seed": 42,
        "txt2img": {
            "model": SD15,
            "width": 64,
            "height": 64,
            "steps": 4,
            "sampler": "Euler",
            "scheduler": "Automatic",
        },
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return RunConfig.from_dict(base)


def _run(executor: DiffusersExecutor, config: RunConfig, tmp_path: Path, token: CancelToken | None = None):
    events: list[object] = []
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    result = runner.run(config, token or CancelToken(), emit=events.append)
    return result, events


def _pixels(result: RunResult) -> list[np.ndarray]:
    return [np.asarray(im) for im in result.images]


def _steps(events: list[object], stage: StageName) -> list[int]:
    return [e.step for e in events if isinstance(e, ev.StepProgress) and e.stage is stage]


def test_txt2img_sd15_batch_has_distinct_seeds_and_is_deterministic(executor, tmp_path: Path) -> None:
    config = _config(batch_size=2)
    first, events = _run(executor, config, tmp_path)
    assert first.status == "COMPLETED", first.error
    assert [im.size for im in first.images] == [(64, 64), (64, 64)]
    a, b = _pixels(first)
    assert not np.array_equal(a, b), "seed and seed+1 must give different images"
    again, _ = _run(executor, config, tmp_path)
    assert all(np.array_equal(x, y) for x, y in zip(_pixels(first), _pixels(again), strict=True))
    assert _steps(events, StageName.TXT2IMG) == [1, 2, 3, 4]
    previews = [e.preview for e in events if isinstance(e, ev.StepProgress) and e.preview is not None]
    assert previews and all(isinstance(p, Image.Image) for p in previews)


def test_batch_count_makes_the_images_of_one_batch_of_count_x_size(executor, tmp_path: Path) -> None:
    # A1111's n_iter: image i of the run has seed + i however the images are split into batches.
    one_batch, _ = _run(executor, _config(batch_size=4, img2img={"enabled": True}), tmp_path)
    counted, events = _run(
        executor, _config(batch_size=2, batch_count=2, img2img={"enabled": True}), tmp_path
    )
    assert counted.status == "COMPLETED", counted.error
    assert counted.seeds == one_batch.seeds == (42, 43, 44, 45)
    worst = max(
        int(np.abs(a.astype(int) - b.astype(int)).max())
        for a, b in zip(_pixels(one_batch), _pixels(counted), strict=True)
    )
    # Batched matmuls may round differently on the CPU; anything beyond a couple of levels would
    # mean a batch got another image's noise or prompt.
    # (Measured: 0/255 on the 2-core CPU, 2026-12-02.)
    assert worst <= 2, f"largest pixel difference {worst}/255"
    assert len({im.tobytes() for im in counted.images}) == 4
    assert _steps(events, StageName.TXT2IMG) == [1, 2, 3, 4] * 2


def test_second_identical_job_loads_nothing(executor, tmp_path: Path) -> None:
    _run(executor, _config(), tmp_path)
    loads = executor.context.cache.loads
    result, _ = _run(executor, _config(seed=7, img2img={"enabled": True}), tmp_path)
    assert result.status == "COMPLETED", result.error
    assert executor.context.cache.loads == loads


def test_txt2img_sdxl(executor, tmp_path: Path) -> None:
    result, _ = _run(executor, _config(txt2img={"model": SDXL, "width": 64, "height": 96}), tmp_path)
    assert result.status == "COMPLETED", result.error
    assert result.images[0].size == (64, 96)


def test_sdxl_refiner_hand_off_shares_modules(executor, tmp_path: Path) -> None:
    config = _config(
        txt2img={
            "model": SDXL,
            "refiner_enabled": True,
            "refiner_model_name": REFINER,
            "refiner_switch_at": 0.5,
        }
    )
    result, events = _run(executor, config, tmp_path)
    assert result.status == "COMPLETED", result.error
    labels = {e.label for e in events if isinstance(e, ev.StepProgress)}
    assert {"txt2img", "refiner"} <= labels
    assert len(_steps(events, StageName.TXT2IMG)) == 4, "base and refiner steps add up to the step count"
    cache = executor.context.cache
    base = cache.base(SDXL)
    refiner = cache.refiner(REFINER, base)
    assert refiner.pipe.text_encoder_2 is base.pipe.text_encoder_2
    assert refiner.pipe.vae is base.pipe.vae
    with Image.open(result.image_paths[0]) as im:
        assert "Refiner: demo-tiny-sdxl-refiner" in im.text["parameters"]


def test_refiner_of_another_family_is_a_clear_error(executor, tmp_path: Path) -> None:
    # Found from the files' headers before anything loads (the runner's engine check)...
    config = _config(txt2img={"model": SDXL, "refiner_enabled": True, "refiner_model_name": SD15})
    with pytest.raises(ConfigError) as caught:
        _run(executor, config, tmp_path)
    [problem] = caught.value.problems
    assert problem.field == "txt2img.refiner_model_name"
    assert problem.message.startswith("'demo-tiny-sd15' is SD") and "SDXL refiner" in problem.message
    # ... and the stage itself still refuses it when asked directly.
    base = executor.context.cache.base(SDXL)
    with pytest.raises(ModelError, match="refiner 'demo-tiny-sd15' is SD"):
        executor.context.cache.refiner(SD15, base)


@pytest.mark.parametrize(
    "mode",
    [
        "Latent",
        "Latent (antialiased)",
        "Latent (bicubic)",
        "Latent (bicubic antialiased)",
        "Latent (nearest)",
        "Latent (nearest-exact)",
        "Lanczos",
        "Nearest",
    ],
)
def test_hires_every_upscaler_mode(executor, tmp_path: Path, mode: str) -> None:
    config = _config(
        txt2img={
            "hires_enabled": True,
            "hires_upscaler_name": mode,
            "hires_upscale_factor": 1.5,
            "hires_denoise": 0.5,
        }
    )
    result, events = _run(executor, config, tmp_path)
    assert result.status == "COMPLETED", result.error
    assert result.images[0].size == (96, 96)
    assert img2img_step_count(4, 0.5, fixed_steps=True) == 4, (
        "A1111: 4 hires steps at 0.5 run the last 4 of an 8-step schedule"
    )
    assert _steps(events, StageName.TXT2IMG) == list(range(1, 9))


def test_hires_resize_to_box_crops_like_a1111(executor, tmp_path: Path) -> None:
    config = _config(
        txt2img={
            "hires_enabled": True,
            "hires_resize_width": 128,
            "hires_resize_height": 80,
            "hires_steps": 2,
        }
    )
    result, _ = _run(executor, config, tmp_path)
    assert result.status == "COMPLETED", result.error
    assert result.images[0].size == (128, 80)


def test_hires_with_refiner_second_pass(executor, tmp_path: Path) -> None:
    config = _config(
        txt2img={
            "model": SDXL,
            "refiner_enabled": True,
            "refiner_model_name": REFINER,
            "hires_enabled": True,
            "hires_upscale_factor": 2.0,
            "hires_denoise": 0.6,
            "hires_steps": 3,
        }
    )
    result, events = _run(executor, config, tmp_path)
    assert result.status == "COMPLETED", result.error
    assert result.images[0].size == (128, 128)
    labels = [e.label for e in events if isinstance(e, ev.StepProgress)]
    assert labels.index("hires") < labels.index("refiner"), "the refiner finishes the hires pass"
    assert labels[:4] == ["txt2img"] * 4, "the first pass runs on the base model only"


def test_img2img_step_parity_from_file(executor, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.new("RGBA", (72, 64), (10, 200, 30, 128)).save(source)
    config = _config(
        input_image_path=str(source),
        txt2img={"enabled": False},
        img2img={"enabled": True, "steps": 10, "denoise": 0.35},
    )
    result, events = _run(executor, config, tmp_path)
    assert result.status == "COMPLETED", result.error
    assert result.images[0].size == (72, 64)
    assert len(_steps(events, StageName.IMG2IMG)) == int(0.35 * 10) + 1 == img2img_step_count(10, 0.35)


def test_full_chain_through_the_runner(executor, tmp_path: Path) -> None:
    config = _config(
        batch_size=2,
        txt2img={"hires_enabled": True, "hires_upscale_factor": 1.5, "hires_steps": 2},
        img2img={"enabled": True, "steps": 4, "denoise": 0.5},
        upscale={"enabled": True, "upscale_model": "Lanczos", "upscale_factor": 2.0},
    )
    result, events = _run(executor, config, tmp_path)
    assert result.status == "COMPLETED", result.error
    assert [im.size for im in result.images] == [(192, 192), (192, 192)]
    finished = [e.stage for e in events if isinstance(e, ev.StageFinished)]
    assert finished == [StageName.TXT2IMG, StageName.IMG2IMG, StageName.UPSCALE]
    with Image.open(result.image_paths[1]) as im:
        text = im.text["parameters"]
    assert "Seed: 43," in text and "Model: demo-tiny-sd15" in text and "Postprocess upscaler: Lanczos" in text


@pytest.mark.parametrize(
    ("overrides", "stage"),
    [
        ({}, StageName.TXT2IMG),
        ({"txt2img": {"hires_enabled": True, "hires_steps": 3}}, StageName.TXT2IMG),
        ({"img2img": {"enabled": True, "steps": 8, "denoise": 0.6}}, StageName.IMG2IMG),
    ],
    ids=["txt2img", "hires", "img2img"],
)
def test_cancel_at_step_k_stops_within_one_step(
    executor, tmp_path: Path, overrides, stage: StageName
) -> None:
    token = CancelToken()
    seen: list[int] = []
    k = 2 if stage is StageName.IMG2IMG else 5 if overrides else 2

    def on_event(event: object) -> None:
        if isinstance(event, ev.StepProgress) and event.stage is stage:
            seen.append(event.step)
            if event.step == k:
                token.cancel()

    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    result = runner.run(_config(**overrides), token, emit=on_event)
    assert result.status == "CANCELLED"
    assert result.failed_stage is stage
    assert seen[-1] == k, "no step is reported after the cancel"
    assert not (tmp_path / "runs").exists(), "nothing partial is written"


# Parity of every pass with a hand-built ksampling.sample call: tests/engine/test_stage_sampling.py.


def test_missing_model_is_a_clear_error(executor, tmp_path: Path) -> None:
    result, _ = _run(executor, _config(txt2img={"model": "no-such-model.safetensors"}), tmp_path)
    assert result.status == "FAILED"
    assert (
        result.error is not None and result.error.startswith("txt2img: ") and "no-such-model" in result.error
    )


def test_scheduler_does_not_drift_between_jobs(executor, tmp_path: Path, demo_models) -> None:
    """Each job samples with the model's own noise schedule, whatever sampler the last job used."""
    ddim = _config(txt2img={"sampler": "DDIM", "scheduler": "Automatic"})
    fresh = DiffusersExecutor(
        EngineSettings(
            models_dir=tmp_path / "m", device="cpu", demo_dir=next(iter(demo_models.values())).parent
        )
    )
    expected, _ = _run(fresh, ddim, tmp_path)
    _run(executor, _config(txt2img={"sampler": "DPM++ 2M", "scheduler": "Karras"}), tmp_path)
    after, _ = _run(executor, ddim, tmp_path)
    assert np.array_equal(_pixels(after)[0], _pixels(expected)[0])
