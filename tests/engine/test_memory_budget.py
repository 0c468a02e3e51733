"""One memory budget for pipelines, upscalers and detectors: least recently used first out, across
every pool, and device memory freed once after evicting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stablenew_qt.engine.device import DeviceChoice
from stablenew_qt.engine.memory import MemoryBudget, ResidentLru
from stablenew_qt.engine.models import ModelCatalog
from stablenew_qt.engine.pipelines import PipelineCache

CPU = DeviceChoice(torch.device("cpu"), torch.float32)


def test_the_least_recently_used_entry_of_any_pool_goes_first() -> None:
    freed: list[int] = []
    budget = MemoryBudget(100, lambda: freed.append(1))
    upscalers: ResidentLru[str, str] = ResidentLru(budget, max_entries=5)
    detectors: ResidentLru[str, str] = ResidentLru(budget, max_entries=5)
    upscalers.put("4x", "upscaler", 40)
    detectors.put("face", "detector", 40)
    assert upscalers.get("4x") == "upscaler"  # now the detector is the least recently used
    assert budget.make_room(30) == 1 and freed == [1]
    assert (len(upscalers), len(detectors)) == (1, 0)
    assert budget.make_room(10) == 0 and freed == [1], "nothing to free when nothing went"
    assert budget.make_room(1000) == 1 and budget.used_bytes() == 0, "everything goes if need be"


def test_max_entries_still_caps_a_pool() -> None:
    pool: ResidentLru[str, int] = ResidentLru(MemoryBudget.unlimited(), max_entries=2)
    for name in ("a", "b", "c"):
        pool.put(name, 1, 1)
    assert (pool.get("a"), pool.get("b"), pool.get("c")) == (None, 1, 1)


@pytest.fixture
def catalog(demo_models: dict[str, Path], tmp_path: Path) -> ModelCatalog:
    return ModelCatalog(tmp_path / "models", extra_checkpoints=demo_models)


def test_a_pipeline_load_evicts_an_older_upscaler_in_the_same_budget(catalog: ModelCatalog) -> None:
    probe = PipelineCache(catalog, CPU, hasher=lambda _p: None)
    size = probe.base("demo-tiny-sd15").size_bytes
    budget = MemoryBudget(int(size * 1.2))
    upscalers: ResidentLru[str, str] = ResidentLru(budget, max_entries=2)
    cache = PipelineCache(catalog, CPU, budget=budget, hasher=lambda _p: None)
    upscalers.put("4x-UltraSharp", "loaded earlier", int(size * 0.5))
    cache.base("demo-tiny-sd15")
    assert len(upscalers) == 0, "the upscaler was used least recently: it made room"
    assert cache.resident() == ["demo-tiny-sd15"] and budget.used_bytes() == size
    upscalers.put("4x-UltraSharp", "loaded again", int(size * 0.1))
    cache.budget_bytes = 1  # the budget is shared: the cache's own size is the budget's
    cache.base("demo-tiny-sdxl")
    assert cache.resident() == ["demo-tiny-sdxl"] and len(upscalers) == 0


def test_the_engine_context_puts_every_cache_under_one_budget(
    demo_models: dict[str, Path], tmp_path: Path
) -> None:
    from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings

    demo_root = next(iter(demo_models.values())).parent
    ctx = DiffusersExecutor(EngineSettings(tmp_path / "models", device="cpu", demo_dir=demo_root)).context
    assert ctx.cache.budget is ctx.budget is ctx.upscalers.budget is ctx.detectors.budget
    assert ctx.upscaler("Lanczos").name == "Lanczos"  # built-ins need no model
