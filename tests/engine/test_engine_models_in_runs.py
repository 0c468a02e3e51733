"""Engine behaviour around models, through the runner: external VAEs (and ones that do not fit),
TAESD previews, spandrel upscalers in the upscale stage, hub ids offline, and CUDA (gpu-marked)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    for sub in ("Stable-diffusion", "VAE", "ESRGAN", "VAE-approx"):
        (tmp_path / "models" / sub).mkdir(parents=True)
    return tmp_path / "models"


def _executor(models_dir: Path, demo_models: dict[str, Path], device: str = "cpu") -> DiffusersExecutor:
    demo_root = next(iter(demo_models.values())).parent
    return DiffusersExecutor(
        EngineSettings(models_dir=models_dir, device=device, preview_every=1, demo_dir=demo_root)  # type: ignore[arg-type]
    )


def _run(executor: DiffusersExecutor, tmp_path: Path, **sections: Any):
    data: dict[str, Any] = {
        "prompt": "a lighthouse",
        "seed": 3,
        "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": 2},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    events: list[object] = []
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    return runner.run(RunConfig.from_dict(data), CancelToken(), emit=events.append), events


def test_external_vae_folder_is_used_and_named(models_dir: Path, demo_models, tmp_path: Path) -> None:
    shutil.copytree(demo_models["demo-tiny-sd15"] / "vae", models_dir / "VAE" / "my-vae")
    executor = _executor(models_dir, demo_models)
    result, _ = _run(executor, tmp_path, txt2img={"vae": "my-vae"})
    assert result.status == "COMPLETED", result.error
    loaded = executor.context.cache.base("demo-tiny-sd15", "my-vae")
    assert loaded.vae_entry is not None and loaded.vae_entry.name == "my-vae"


def test_vae_of_another_family_is_a_clear_error(models_dir: Path, demo_models, tmp_path: Path) -> None:
    shutil.copytree(demo_models["demo-tiny-sdxl"] / "vae", models_dir / "VAE" / "sdxl-vae")
    result, _ = _run(_executor(models_dir, demo_models), tmp_path, txt2img={"vae": "sdxl-vae"})
    assert result.status == "FAILED"
    assert result.error is not None
    assert result.error.startswith(
        "txt2img: VAE 'sdxl-vae' does not fit this SD 1.5 model: its scaling_factor"
    )
    assert not (tmp_path / "runs").exists()


def test_taesd_previews_are_full_size(models_dir: Path, demo_models, tmp_path: Path) -> None:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    tiny = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    )
    tiny.save_pretrained(models_dir / "VAE-approx" / "taesd")
    result, events = _run(_executor(models_dir, demo_models), tmp_path)
    assert result.status == "COMPLETED", result.error
    previews = [e.preview for e in events if isinstance(e, ev.StepProgress) and e.preview is not None]
    assert previews and {p.size for p in previews} == {(64, 64)}, "TAESD decodes to full size"


def test_linear_previews_without_taesd_are_latent_size(models_dir: Path, demo_models, tmp_path: Path) -> None:
    _result, events = _run(_executor(models_dir, demo_models), tmp_path)
    previews = [e.preview for e in events if isinstance(e, ev.StepProgress) and e.preview is not None]
    assert previews and {p.size for p in previews} == {(8, 8)}


def test_upscale_stage_with_a_spandrel_model(models_dir: Path, demo_models, tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=1, upscale=4)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        models_dir / "ESRGAN" / "4x-Tiny.safetensors",
    )
    result, _ = _run(
        _executor(models_dir, demo_models),
        tmp_path,
        upscale={"enabled": True, "upscale_model": "4x-Tiny", "upscale_factor": 3.0},
    )
    assert result.status == "COMPLETED", result.error
    assert result.images[0].size == (192, 192)
    from PIL import Image

    with Image.open(result.image_paths[0]) as im:
        assert "Postprocess upscaler: 4x-Tiny" in im.text["parameters"]


def test_unknown_upscaler_is_a_clear_error(models_dir: Path, demo_models, tmp_path: Path) -> None:
    result, _ = _run(
        _executor(models_dir, demo_models), tmp_path, upscale={"enabled": True, "upscale_model": "4x-Missing"}
    )
    assert result.status == "FAILED" and result.error is not None
    assert result.error.startswith("upscale: ") and "4x-Missing" in result.error


def test_hub_id_offline_is_a_clear_error(models_dir: Path, demo_models, tmp_path: Path) -> None:
    result, _ = _run(_executor(models_dir, demo_models), tmp_path, txt2img={"model": "someorg/some-model"})
    assert result.status == "FAILED" and result.error is not None
    assert "not in the local Hugging Face cache" in result.error and "HF_HUB_OFFLINE" in result.error


@pytest.mark.gpu
def test_cuda_fp16_txt2img_with_refiner_and_hires(models_dir: Path, demo_models, tmp_path: Path) -> None:
    executor = _executor(models_dir, demo_models, device="cuda")
    result, _ = _run(
        executor,
        tmp_path,
        txt2img={
            "model": "demo-tiny-sdxl",
            "refiner_enabled": True,
            "refiner_model_name": "demo-tiny-sdxl-refiner",
            "hires_enabled": True,
            "hires_steps": 2,
        },
    )
    assert result.status == "COMPLETED", result.error
    assert executor.context.device.dtype == torch.float16
    assert result.images[0].size == (128, 128)
