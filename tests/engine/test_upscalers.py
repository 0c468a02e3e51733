"""Pixel upscalers: A1111 sizes and passes, seamless tiling, safe loading, name resolution, caching.

Every model here is a tiny real spandrel architecture (RealESRGAN Compact, SAFMN) with random
weights built under a fixed seed and saved by the test itself.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stablenew_qt.core.sizes import upscaled_size
from stablenew_qt.engine.memory import MemoryBudget
from stablenew_qt.engine.upscalers import (
    BUILTIN_UPSCALERS,
    BuiltinUpscaler,
    SpandrelUpscaler,
    UpscalerCache,
    UpscalerError,
    available_upscalers,
    resolve_upscaler,
)


def _compact_state(scale: int, channels: int = 3, num_conv: int = 1) -> dict[str, torch.Tensor]:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    model = Compact(num_in_ch=channels, num_out_ch=channels, num_feat=8, num_conv=num_conv, upscale=scale)
    return {key: value.contiguous() for key, value in model.state_dict().items()}


def _safmn_state() -> dict[str, torch.Tensor]:
    from spandrel.architectures.SAFMN import SAFMN

    torch.manual_seed(0)
    model = SAFMN(dim=8, n_blocks=1, ffn_scale=2.0, upscaling_factor=2)
    return {key: value.contiguous() for key, value in model.state_dict().items()}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An ESRGAN folder: 4x .pth, 2x .safetensors (in a subfolder), 1x, greyscale and SAFMN models."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("ESRGAN")
    (root / "sub").mkdir()
    paths = {
        "x4": root / "4x-Tiny.pth",
        "x2": root / "sub" / "2x-Tiny.safetensors",
        "x1": root / "1x-Tiny.pth",
        "grey": root / "2x-Grey.pth",
        "safmn": root / "2x-SAFMN.safetensors",
    }
    torch.save(_compact_state(4), paths["x4"])
    save_file(_compact_state(2), str(paths["x2"]))
    torch.save(_compact_state(1), paths["x1"])
    torch.save(_compact_state(2, channels=1), paths["grey"])
    save_file(_safmn_state(), str(paths["safmn"]))
    return paths


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 70x50 noisy RGB image: sizes that are not multiples of 8 or of the tile size."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _counter() -> tuple[list[int], Callable[[], None]]:
    calls = [0]

    def check() -> None:
        calls[0] += 1

    return calls, check


# -- loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "scale"), [("x4", 4), ("x2", 2), ("x1", 1)])
def test_spandrel_detects_the_saved_model_and_its_scale(
    models: dict[str, Path], key: str, scale: int
) -> None:
    upscaler = SpandrelUpscaler.load(models[key])
    assert upscaler.scale == scale
    assert upscaler.name == models[key].stem
    assert upscaler.descriptor.architecture.id == "Compact"
    assert not upscaler.descriptor.model.training


def test_half_only_where_the_architecture_supports_it(models: dict[str, Path]) -> None:
    assert SpandrelUpscaler.load(models["x4"], half=True).descriptor.dtype == torch.float16
    assert SpandrelUpscaler.load(models["safmn"], half=True).descriptor.dtype == torch.float32


def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
            return (os.mkdir, (str(marker),))

    evil = tmp_path / "4x-Evil.pth"
    torch.save({"body.0.weight": Payload()}, evil)

    with pytest.raises(UpscalerError, match="refused"):
        resolve_upscaler("4x-Evil", tmp_path, "cpu", False, cache=UpscalerCache())
    assert not marker.exists()
    # Control: the payload is live, so the refusal above is what kept the marker away.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_unrecognised_or_non_weight_files_raise_upscaler_error(tmp_path: Path) -> None:
    torch.save({"foo.weight": torch.zeros(2, 2)}, tmp_path / "odd.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with warnings.catch_warnings():  # TorchScript is deprecated, but such files are still around
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(torch.nn.Identity()), tmp_path / "script.pt")
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    for name, message in [
        ("odd.pth", "does not recognise"),
        ("list.pth", "not a state dict"),
        ("script.pt", "TorchScript"),
        ("broken.safetensors", "not a readable safetensors"),
    ]:
        with pytest.raises(UpscalerError, match=message):
            SpandrelUpscaler.load(tmp_path / name)


def test_bad_tile_settings_are_refused(models: dict[str, Path]) -> None:
    with pytest.raises(UpscalerError, match="overlap"):
        SpandrelUpscaler.load(models["x2"], tile=16, overlap=8)


# -- sizes and passes (A1111 Upscaler.upscale) ---------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4, 1.5, 3.7])
@pytest.mark.parametrize("size", [(70, 50), (33, 21)])
def test_model_result_is_exactly_the_a1111_destination(
    models: dict[str, Path], factor: float, size: tuple[int, int]
) -> None:
    image = Image.new("RGB", size, (200, 120, 40))
    for key in ("x4", "x2"):
        result = SpandrelUpscaler.load(models[key], tile=48, overlap=8).upscale(image, factor)
        assert result.size == upscaled_size(*size, factor)
        assert result.mode == "RGB"


@pytest.mark.parametrize(
    ("key", "factor", "passes"),
    [("x2", 1.5, 1), ("x2", 3.7, 2), ("x2", 8, 3), ("x2", 16, 3), ("x2", 1, 1), ("x1", 2, 1)],
)
def test_model_passes_follow_a1111(models: dict[str, Path], key: str, factor: float, passes: int) -> None:
    """Up to three passes until the image covers the destination; a 1x model stops after one; scale 1
    still runs the model once. With tiling off check_cancel runs once per pass."""
    calls, check = _counter()
    image = Image.new("RGB", (24, 16), (10, 200, 90))
    result = SpandrelUpscaler.load(models[key], tile=0).upscale(image, factor, check)
    assert calls[0] == passes
    assert result.size == upscaled_size(24, 16, factor)


def test_greyscale_model_returns_greyscale(models: dict[str, Path], photo: Image.Image) -> None:
    result = SpandrelUpscaler.load(models["grey"]).upscale(photo, 2)
    assert (result.mode, result.size) == ("L", upscaled_size(70, 50, 2))


def test_size_requirements_are_met_by_padding(models: dict[str, Path], photo: Image.Image) -> None:
    """SAFMN needs sides that are multiples of 8; 70x50 and its tiles are padded and cropped back."""
    upscaler = SpandrelUpscaler.load(models["safmn"], tile=0)
    assert upscaler.descriptor.size_requirements.multiple_of == 8
    whole = upscaler.upscale(photo, 2)
    tiled = upscaler.with_tiling(36, 8).upscale(photo, 2)
    assert whole.size == tiled.size == upscaled_size(70, 50, 2)


# -- tiling --------------------------------------------------------------------------------------


def test_tiled_output_matches_untiled(models: dict[str, Path], photo: Image.Image) -> None:
    untiled = SpandrelUpscaler.load(models["x4"], tile=0)
    reference = _pixels(untiled.upscale(photo, 4))
    tiled = _pixels(untiled.with_tiling(32, 8).upscale(photo, 4))
    assert np.abs(tiled - reference).max() <= 2
    # Control: cut tiles with no overlap show seams, so the check above can see them.
    seamed = _pixels(untiled.with_tiling(35, 0).upscale(photo, 4))
    assert np.abs(seamed - reference).max() > 8


def test_model_output_differs_from_a_plain_resize(models: dict[str, Path], photo: Image.Image) -> None:
    result = _pixels(SpandrelUpscaler.load(models["x4"]).upscale(photo, 4))
    plain = _pixels(photo.resize((280, 200), Image.Resampling.NEAREST))
    assert np.abs(result - plain).mean() > 3


def test_cancel_between_tiles_raises_what_check_cancel_raises(
    models: dict[str, Path], photo: Image.Image
) -> None:
    class Stop(Exception):
        pass

    calls = [0]

    def check() -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise Stop

    with pytest.raises(Stop):
        SpandrelUpscaler.load(models["x4"], tile=32, overlap=8).upscale(photo, 4, check)
    assert calls[0] == 3  # two tiles ran, the third was never started


def test_tiled_run_checks_cancel_once_per_tile(models: dict[str, Path], photo: Image.Image) -> None:
    calls, check = _counter()
    SpandrelUpscaler.load(models["x4"], tile=32, overlap=8).upscale(photo, 4, check)
    assert calls[0] == 3 * 2  # 70 px wide -> 3 tiles, 50 px high -> 2 tiles, one pass


# -- built-ins -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_UPSCALERS)
@pytest.mark.parametrize("factor", [2, 4, 1.5, 3.7, 0.5])
def test_builtin_sizes_are_exact(name: str, factor: float, photo: Image.Image) -> None:
    upscaler = BuiltinUpscaler(name)
    assert upscaler.scale == 1
    assert upscaler.upscale(photo, factor).size == upscaled_size(70, 50, factor)


def test_builtin_filters(photo: Image.Image) -> None:
    dest = upscaled_size(70, 50, 3.7)
    nearest = BuiltinUpscaler("Nearest").upscale(photo, 3.7)
    assert nearest.tobytes() == photo.resize(dest, Image.Resampling.NEAREST).tobytes()
    lanczos = photo.resize(dest, Image.Resampling.LANCZOS).tobytes()
    assert BuiltinUpscaler("Lanczos").upscale(photo, 3.7).tobytes() == lanczos
    assert BuiltinUpscaler("None").upscale(photo, 3.7).tobytes() == lanczos


@pytest.mark.parametrize("factor", [0, -1, float("nan")])
def test_bad_factor_is_refused(factor: float, photo: Image.Image) -> None:
    with pytest.raises(UpscalerError, match="positive"):
        BuiltinUpscaler("Lanczos").upscale(photo, factor)


# -- resolving and caching -----------------------------------------------------------------------


def test_resolve_by_name(models: dict[str, Path]) -> None:
    folder = models["x4"].parent
    cache = UpscalerCache()
    assert isinstance(resolve_upscaler("Lanczos", folder, "cpu", False, cache=cache), BuiltinUpscaler)
    found = resolve_upscaler("2x-Tiny", folder, "cpu", False, cache=cache)  # found in a subfolder
    assert (found.name, found.scale) == ("2x-Tiny", 2)
    names = available_upscalers(folder)
    assert names[:3] == BUILTIN_UPSCALERS
    assert set(names[3:]) == {"1x-Tiny", "2x-Grey", "2x-SAFMN", "2x-Tiny", "4x-Tiny"}


def test_unknown_name_lists_what_is_installed(models: dict[str, Path]) -> None:
    with pytest.raises(UpscalerError, match="unknown upscaler '4x-UltraSharp'") as error:
        resolve_upscaler("4x-UltraSharp", models["x4"].parent, "cpu", False, cache=UpscalerCache())
    for name in ("4x-Tiny", "2x-Tiny", "None", "Lanczos", "Nearest"):
        assert name in str(error.value)


def test_cache_returns_the_loaded_model_again(models: dict[str, Path], tmp_path: Path) -> None:
    folder = models["x4"].parent
    cache = UpscalerCache()
    first = resolve_upscaler("4x-Tiny", folder, "cpu", False, cache=cache)
    assert resolve_upscaler("4x-Tiny", folder, "cpu", False, cache=cache) is first
    retiled = resolve_upscaler("4x-Tiny", folder, "cpu", False, tile=64, overlap=16, cache=cache)
    assert isinstance(retiled, SpandrelUpscaler)
    assert isinstance(first, SpandrelUpscaler)
    assert retiled.descriptor is first.descriptor
    assert (retiled.tile, retiled.overlap) == (64, 16)
    # Least recently used first out, at most two entries.
    resolve_upscaler("2x-Tiny", folder, "cpu", False, cache=cache)
    resolve_upscaler("1x-Tiny", folder, "cpu", False, cache=cache)
    assert len(cache) == 2
    assert resolve_upscaler("4x-Tiny", folder, "cpu", False, cache=cache) is not first


def test_edited_file_is_loaded_afresh(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "4x-Edit.pth"
    path.write_bytes(models["x4"].read_bytes())
    cache = UpscalerCache()
    first = resolve_upscaler("4x-Edit", tmp_path, "cpu", False, cache=cache)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert resolve_upscaler("4x-Edit", tmp_path, "cpu", False, cache=cache) is not first


def test_the_cache_counts_its_models_in_the_shared_memory_budget(models: dict[str, Path]) -> None:
    """No module-global cache: the engine context's cache holds the models, inside its budget."""
    folder = models["x4"].parent
    budget = MemoryBudget.unlimited()
    cache = UpscalerCache(budget=budget)
    first = resolve_upscaler("4x-Tiny", folder, "cpu", False, cache=cache)
    assert isinstance(first, SpandrelUpscaler)
    weights = sum(p.numel() * p.element_size() for p in first.descriptor.model.parameters())
    assert budget.used_bytes() == weights > 0
    budget.total_bytes = weights  # full: the next model makes room by evicting the first
    resolve_upscaler("2x-Tiny", folder, "cpu", False, cache=cache)
    assert len(cache) == 1 and resolve_upscaler("4x-Tiny", folder, "cpu", False, cache=cache) is not first
