"""PipelineCache: resident models, shared modules, LRU eviction under a memory budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stablenew_qt.engine.device import DeviceChoice
from stablenew_qt.engine.errors import ModelError
from stablenew_qt.engine.models import ModelCatalog
from stablenew_qt.engine.pipelines import PipelineCache

CPU = DeviceChoice(torch.device("cpu"), torch.float32)


@pytest.fixture
def catalog(demo_models: dict[str, Path], tmp_path: Path) -> ModelCatalog:
    return ModelCatalog(tmp_path / "models", extra_checkpoints=demo_models)


def test_second_request_loads_nothing(catalog: ModelCatalog) -> None:
    cache = PipelineCache(catalog, CPU, hasher=lambda _p: None)
    first = cache.base("demo-tiny-sd15")
    assert cache.base("demo-tiny-sd15") is first and cache.loads == 1


def test_derived_pipelines_share_every_module(catalog: ModelCatalog) -> None:
    cache = PipelineCache(catalog, CPU, hasher=lambda _p: None)
    base = cache.base("demo-tiny-sd15")
    img2img, inpaint = cache.img2img(base), cache.inpaint(base)
    for pipe in (img2img, inpaint):
        assert pipe.unet is base.pipe.unet and pipe.vae is base.pipe.vae
        assert pipe.text_encoder is base.pipe.text_encoder
    assert cache.img2img(base) is img2img and cache.loads == 1


def test_lru_eviction_under_the_budget(catalog: ModelCatalog) -> None:
    probe = PipelineCache(catalog, CPU, hasher=lambda _p: None)
    size = probe.base("demo-tiny-sd15").size_bytes
    cache = PipelineCache(catalog, CPU, budget_bytes=int(size * 1.5), hasher=lambda _p: None)
    cache.base("demo-tiny-sd15")
    cache.base("demo-tiny-sdxl")
    assert cache.resident() == ["demo-tiny-sdxl"], "the least recently used model made room"
    cache.base("demo-tiny-sd15")
    assert cache.loads == 3 and cache.resident() == ["demo-tiny-sd15"]


def test_evicting_a_base_drops_its_refiner(catalog: ModelCatalog) -> None:
    cache = PipelineCache(catalog, CPU, hasher=lambda _p: None)
    base = cache.base("demo-tiny-sdxl")
    cache.refiner("demo-tiny-sdxl-refiner", base)
    assert cache.resident() == ["demo-tiny-sdxl", "demo-tiny-sdxl-refiner"]
    cache.budget_bytes = 1
    cache.base("demo-tiny-sd15")
    assert cache.resident() == ["demo-tiny-sd15"]


def test_unknown_memory_mode_is_refused(catalog: ModelCatalog) -> None:
    with pytest.raises(ValueError, match="unknown memory mode 'turbo'"):
        PipelineCache(catalog, CPU, memory_mode="turbo")  # type: ignore[arg-type]


def test_inpainting_checkpoint_is_refused_for_txt2img_by_the_stage(catalog: ModelCatalog) -> None:
    cache = PipelineCache(catalog, CPU, hasher=lambda _p: None)
    loaded = cache.base("demo-tiny-sd15-inpaint")
    assert cache.inpaint(loaded) is loaded.pipe
    with pytest.raises(ModelError, match="cannot be used for img2img"):
        cache.img2img(loaded)
