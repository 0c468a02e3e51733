"""The engine's warm-up: what it imports, and that it leaves the garbage collector and the import
system as it found them (but for the frozen objects)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stablenew_qt.engine.executor import (
    PRELOAD_ENV,
    DiffusersExecutor,
    EngineSettings,
    TorchLibrariesFirst,
    imports_frozen,
)


@pytest.fixture
def unfreeze_after() -> Iterator[None]:
    """Give frozen objects back to the collector after the test (the suite shares one process)."""
    yield
    gc.unfreeze()


def test_imports_frozen_pauses_full_collections_then_freezes(unfreeze_after: None) -> None:
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with imports_frozen():
        assert gc.get_threshold()[:2] == thresholds[:2] and gc.get_threshold()[2] >= 2**30
        made = [[object()] for _ in range(1000)]
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() >= frozen + len(made)


def test_imports_frozen_restores_the_thresholds_after_an_error(unfreeze_after: None) -> None:
    thresholds = gc.get_threshold()
    with pytest.raises(RuntimeError), imports_frozen():
        raise RuntimeError("an import failed")
    assert gc.get_threshold() == thresholds


def test_the_torch_preload_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as before the first import
    before = list(sys.meta_path)
    with TorchLibrariesFirst.installed():
        assert isinstance(sys.meta_path[0], TorchLibrariesFirst)
    monkeypatch.setenv(PRELOAD_ENV, "0")
    with TorchLibrariesFirst.installed():
        assert sys.meta_path == before
    assert sys.meta_path == before


def test_the_torch_finder_finds_nothing_and_is_inert_once_torch_is_in(tmp_path: Path) -> None:
    import torch  # noqa: F401  (the suite has it already; the finder must then stay out)

    before = list(sys.meta_path)
    with TorchLibrariesFirst.installed():
        assert sys.meta_path == before
    finder = TorchLibrariesFirst()
    assert finder.find_spec("json", None) is None
    # A torch folder without its libraries (another build): nothing is loaded, nothing raises.
    assert finder.find_spec("torch._C", [str(tmp_path)]) is None


def test_warm_up_imports_the_first_run_s_modules(
    demo_models: dict[str, Path], tmp_path: Path, unfreeze_after: None
) -> None:
    meta_path = list(sys.meta_path)
    thresholds = gc.get_threshold()
    engine = DiffusersExecutor(
        EngineSettings(models_dir=tmp_path, device="cpu", demo_dir=next(iter(demo_models.values())).parent)
    )
    engine.warm_up()
    assert sys.meta_path == meta_path and gc.get_threshold() == thresholds
    assert gc.get_freeze_count() > 0
    import diffusers

    for name in ("StableDiffusionXLImg2ImgPipeline", "StableDiffusionInpaintPipeline", "AutoencoderKL"):
        assert name in vars(diffusers), f"{name} not resolved from diffusers' lazy module"
    assert {"stablenew_qt.engine.stages.adetailer", "diffusers.loaders.single_file_utils"} <= set(sys.modules)
