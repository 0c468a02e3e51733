"""Fixtures for the LoRA and embedding tests: a models folder, a pipeline cache, reference pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from stablenew_qt.engine.device import DeviceChoice
from stablenew_qt.engine.models import ModelCatalog
from stablenew_qt.engine.pipelines import PipelineCache

CPU = DeviceChoice(torch.device("cpu"), torch.float32)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    (folder / "Lora").mkdir(parents=True)
    return folder


@pytest.fixture
def pipeline_cache(demo_models: dict[str, Path], models_dir: Path) -> PipelineCache:
    return PipelineCache(ModelCatalog(models_dir, extra_checkpoints=demo_models), CPU, hasher=lambda _p: None)


@pytest.fixture
def reference_pipe(demo_models: dict[str, Path]) -> Any:
    """Factory: a fresh, independent copy of a demo pipeline (to merge LoRAs into, A1111-style)."""
    import diffusers

    def make(name: str = "demo-tiny-sd15", dtype: torch.dtype = torch.float32) -> Any:
        cls = diffusers.StableDiffusionXLPipeline if "sdxl" in name else diffusers.StableDiffusionPipeline
        extra: dict[str, Any] = (
            {} if "sdxl" in name else {"safety_checker": None, "requires_safety_checker": False}
        )
        pipe = cls.from_pretrained(str(demo_models[name]), dtype=dtype, **extra)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return make
