"""Pixel upscalers with A1111 semantics: the PIL built-ins and ESRGAN-family models run by spandrel.

``Upscaler.upscale(image, scale)`` always returns ``floor(side * scale / 8) * 8`` per side (at least
8; spec §2.3 step 3b and §4). A model upscaler applies its model up to three times until the image
covers that size, stops early if a pass does not grow the image, then LANCZOS-resizes to it, as
A1111's ``modules/upscaler.py`` does. Model inference is tiled by ``tiling.run_tiled`` (A1111
``ESRGAN_tile`` 192 px with ``ESRGAN_tile_overlap`` 8 px; tile 0 = whole image), whose feathered
overlaps leave no seams.

Weights are read without trusting pickle: ``.pth``/``.pt``/``.ckpt`` through
``torch.load(weights_only=True)``, ``.safetensors`` through safetensors. spandrel 0.4's own
``load_from_file`` uses ``torch.load`` with a custom restricted unpickler (``weights_only`` off) and
tries ``torch.jit.load`` on ``.pt`` files, so we read the state dict ourselves and hand it to
``ModelLoader.load_from_state_dict``. torch and spandrel are imported lazily, on the engine thread.
"""

from __future__ import annotations

import math
import pickle
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image

from ..core.errors import shorten
from ..core.files import FileRefused, regular_file_size
from ..core.samplers import BUILTIN_PIXEL_UPSCALERS
from ..core.sizes import upscaled_size
from .memory import MemoryBudget, ResidentLru, module_bytes
from .tiling import run_tiled

if TYPE_CHECKING:
    import torch

BUILTIN_UPSCALERS: tuple[str, ...] = BUILTIN_PIXEL_UPSCALERS
"""Upscalers that need no model file: ``("None", "Lanczos", "Nearest")``."""

MODEL_SUFFIXES: tuple[str, ...] = (".safetensors", ".pth", ".pt")
"""Upscaler model files found in the ESRGAN folder, in the order preferred when stems collide."""

DEFAULT_TILE = 192
DEFAULT_OVERLAP = 8
MAX_PASSES = 3  # A1111 applies the model at most three times per upscale


class UpscalerError(ValueError):
    """An upscaler cannot be used: unknown name, unreadable or unsafe file, or not an image model."""


def _no_cancel() -> None:
    return None


class Upscaler(Protocol):
    """A pixel upscaler as A1111 has them (``modules/upscaler.py`` ``Upscaler``)."""

    @property
    def name(self) -> str:
        """The name shown in lists and written to infotext (a built-in name or a model file stem)."""
        ...

    @property
    def scale(self) -> int:
        """The model's native factor (4 for a 4x ESRGAN); 1 for the built-ins."""
        ...

    def upscale(
        self, image: Image.Image, scale: float, check_cancel: Callable[[], None] = _no_cancel
    ) -> Image.Image:
        """Return ``image`` resized by ``scale`` to exactly ``upscaled_size(w, h, scale)``.

        ``check_cancel`` is called between units of work (model tiles) and raises to stop.
        """
        ...


def _dest_size(image: Image.Image, scale: float) -> tuple[int, int]:
    if not (math.isfinite(scale) and scale > 0):
        raise UpscalerError(f"upscale factor must be a positive number, got {scale!r}")
    return upscaled_size(image.width, image.height, scale)


@dataclass(frozen=True)
class BuiltinUpscaler:
    """A built-in ("None", "Lanczos", "Nearest"): one PIL resize straight to the destination size.

    "None" resizes with LANCZOS, as A1111's ``resize_image`` does when no upscaler is chosen.
    """

    name: str
    scale: int = 1

    def __post_init__(self) -> None:
        if self.name not in BUILTIN_UPSCALERS:
            raise UpscalerError(f"{self.name!r} is not a built-in upscaler; built in: {BUILTIN_UPSCALERS}")

    def upscale(
        self, image: Image.Image, scale: float, check_cancel: Callable[[], None] = _no_cancel
    ) -> Image.Image:
        """Resize to ``upscaled_size(w, h, scale)`` with NEAREST for "Nearest", else LANCZOS."""
        dest = _dest_size(image, scale)
        check_cancel()
        nearest = self.name == "Nearest"
        return image.resize(dest, Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS)


class SpandrelUpscaler:
    """An ESRGAN-family model (any spandrel image-to-image architecture) run tile by tile.

    Build one with ``SpandrelUpscaler.load(path)``. The instance owns torch state on its device;
    use it from the engine's worker thread only.
    """

    def __init__(self, descriptor: Any, name: str, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP):
        """Wrap a loaded spandrel ``ImageModelDescriptor``; ``tile``/``overlap`` are input pixels."""
        if tile < 0 or overlap < 0 or (tile > 0 and 2 * overlap >= tile):
            raise UpscalerError(
                f"tile {tile} / overlap {overlap} px: use tile 0 (no tiling) or a tile larger than twice "
                "the overlap, e.g. tile 192 with overlap 8"
            )
        self._descriptor = descriptor
        self._name = name
        self._tile = tile
        self._overlap = overlap

    @classmethod
    def load(
        cls,
        path: Path,
        device: str = "cpu",
        half: bool = False,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
    ) -> SpandrelUpscaler:
        """Load a model file (``.pth``/``.pt``/``.safetensors``) weights-only and detect its architecture.

        ``half`` switches to float16 only where the architecture supports it. Raises
        ``UpscalerError`` for an unsafe, unreadable or unrecognised file or a non image-to-image model.
        """
        return cls(_load_descriptor(Path(path), device, half), Path(path).stem, tile, overlap)

    @property
    def name(self) -> str:
        """The model file's stem, the name A1111 lists and writes to infotext."""
        return self._name

    @property
    def scale(self) -> int:
        """The model's native factor as spandrel detected it."""
        return int(self._descriptor.scale)

    @property
    def descriptor(self) -> Any:
        """The spandrel ``ImageModelDescriptor`` (shared between tiling variants of one model)."""
        return self._descriptor

    @property
    def tile(self) -> int:
        """Tile size in input pixels; 0 runs the whole image at once."""
        return self._tile

    @property
    def overlap(self) -> int:
        """Overlap between neighbouring tiles in input pixels."""
        return self._overlap

    def with_tiling(self, tile: int, overlap: int) -> SpandrelUpscaler:
        """The same loaded model with other tile settings (loads nothing)."""
        return SpandrelUpscaler(self._descriptor, self._name, tile, overlap)

    def upscale(
        self, image: Image.Image, scale: float, check_cancel: Callable[[], None] = _no_cancel
    ) -> Image.Image:
        """A1111 ``Upscaler.upscale``: up to three model passes until the image covers the
        destination (a pass that does not grow the image ends the loop), then LANCZOS to it.

        As in A1111, a scale of exactly 1 still runs the model once (1x restoration models).
        """
        dest = _dest_size(image, scale)
        current = image
        for index in range(MAX_PASSES):
            covers = current.width >= dest[0] and current.height >= dest[1]
            if covers and (index > 0 or scale != 1):
                break
            before = current.size
            current = self._apply_model(current, check_cancel)
            if current.size == before:
                break
        if current.size != dest:
            current = current.resize(dest, Image.Resampling.LANCZOS)
        return current

    def _apply_model(self, image: Image.Image, check_cancel: Callable[[], None]) -> Image.Image:
        import torch

        descriptor = self._descriptor
        x = _image_to_tensor(image, descriptor.input_channels, descriptor.device, descriptor.dtype)
        with torch.inference_mode():
            if self._tile == 0 or _tiling_is_internal(descriptor):
                check_cancel()
                y = descriptor(x).float().cpu()
            else:
                y = run_tiled(
                    x,
                    descriptor,
                    tile=self._tile,
                    overlap=self._overlap,
                    scale=self.scale,
                    out_channels=descriptor.output_channels,
                    check_cancel=check_cancel,
                )
        return _tensor_to_image(y)


def _tiling_is_internal(descriptor: Any) -> bool:
    from spandrel import ModelTiling

    return bool(descriptor.tiling == ModelTiling.INTERNAL)


def _image_to_tensor(image: Image.Image, channels: int, device: Any, dtype: Any) -> torch.Tensor:
    import numpy as np
    import torch

    array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)
    return (tensor.to(device=device, dtype=torch.float32) / 255.0).to(dtype)


def _tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    import torch

    pixels = tensor[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


# -- loading -----------------------------------------------------------------------------------


def _load_descriptor(path: Path, device: str, half: bool) -> Any:
    import spandrel

    state_dict = spandrel.canonicalize_state_dict(_read_weights(path))
    try:
        descriptor = spandrel.ModelLoader(device, registry=_registry()).load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError as exc:
        raise UpscalerError(
            f"{path.name}: spandrel {spandrel.__version__} does not recognise this model's architecture"
        ) from exc
    except Exception as exc:
        raise UpscalerError(f"{path.name} could not be loaded as an upscaler model: {exc}") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UpscalerError(
            f"{path.name} is a {descriptor.architecture.name} {descriptor.purpose} model, not an "
            "image-to-image upscaler"
        )
    if descriptor.input_channels not in (1, 3) or descriptor.output_channels not in (1, 3):
        raise UpscalerError(
            f"{path.name} maps {descriptor.input_channels} to {descriptor.output_channels} channels; "
            "only RGB and greyscale models are supported"
        )
    if half and descriptor.supports_half:
        descriptor.half()
    return descriptor.eval()


def _read_weights(path: Path) -> dict[str, Any]:
    """Read a state dict without running pickled code."""
    try:
        regular_file_size(path)  # a FIFO or device would block or flood the loader
    except FileRefused as exc:
        raise UpscalerError(f"{shorten(path.name)} cannot be used: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError) as exc:
            raise UpscalerError(f"{path.name} is not a readable safetensors file: {exc}") from exc
    if suffix not in (".pth", ".pt", ".ckpt"):
        raise UpscalerError(f"{path.name}: upscaler models must be {', '.join(MODEL_SUFFIXES)} files")
    if _is_torchscript(path):
        raise UpscalerError(
            f"{path.name} is a TorchScript program, not a plain weights file; use the model's "
            ".pth or .safetensors weights"
        )
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UpscalerError(
            f"{path.name} holds pickled objects besides weights, which could run code; refused. Use a "
            ".safetensors version of the model"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:  # truncated, corrupt or unreadable file
        raise UpscalerError(f"{path.name} is not a plain weights file: {exc}") from exc
    if not isinstance(loaded, dict):
        raise UpscalerError(f"{path.name} holds a {type(loaded).__name__}, not a state dict of weights")
    return loaded


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zips with a ``constants.pkl`` record (torch checks the same)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def _registry() -> Any:
    """spandrel's registry, plus ``spandrel_extra_arches`` when installed (as A1111 does)."""
    import spandrel

    try:
        import spandrel_extra_arches
    except ImportError:
        return spandrel.MAIN_REGISTRY
    registry = spandrel.MAIN_REGISTRY.copy()  # copy-on-write: spandrel's global registry stays as is
    registry.add(*spandrel_extra_arches.EXTRA_REGISTRY, ignore_duplicates=True)
    return registry


# -- resolving names ---------------------------------------------------------------------------


def installed_models(esrgan_dir: Path) -> dict[str, Path]:
    """Model files under ``esrgan_dir`` (recursively) by file stem, the names A1111 lists.

    When two files share a stem, ``.safetensors`` wins over ``.pth`` over ``.pt``, then the
    shorter path.
    """
    if not esrgan_dir.is_dir():
        return {}
    files = [p for p in esrgan_dir.rglob("*") if p.suffix.lower() in MODEL_SUFFIXES and p.is_file()]
    files.sort(key=lambda p: (MODEL_SUFFIXES.index(p.suffix.lower()), len(p.parts), str(p)), reverse=True)
    return {p.stem: p for p in files}  # the preferred file comes last and wins


def available_upscalers(esrgan_dir: Path) -> tuple[str, ...]:
    """Every name ``resolve_upscaler`` accepts: the built-ins, then installed models sorted by name."""
    return BUILTIN_UPSCALERS + tuple(sorted(installed_models(esrgan_dir), key=str.lower))


class UpscalerCache:
    """Loaded models keyed by (file, modification time, device, half), least recently used first
    out, at most ``max_entries`` of them, inside the engine's memory ``budget``.

    A second job with the same model loads nothing; an edited file (new mtime) loads afresh.
    """

    def __init__(self, max_entries: int = 2, *, budget: MemoryBudget | None = None) -> None:
        """Keep at most ``max_entries`` models loaded (each may hold device memory)."""
        self._pool: ResidentLru[tuple[str, int, str, bool], SpandrelUpscaler] = ResidentLru(
            budget, max_entries
        )
        self._lock = threading.Lock()

    def get(self, path: Path, device: str, half: bool) -> SpandrelUpscaler:
        """The loaded model for ``path``, loading it (and evicting the least recent) if needed."""
        key = (str(path.resolve()), path.stat().st_mtime_ns, device, half)
        with self._lock:
            upscaler = self._pool.get(key)
            if upscaler is None:
                self._pool.reserve(path.stat().st_size)
                upscaler = SpandrelUpscaler.load(path, device, half)
                self._pool.put(key, upscaler, module_bytes(upscaler.descriptor.model))
            return upscaler

    @property
    def budget(self) -> MemoryBudget:
        """The memory budget this cache's entries count against."""
        return self._pool.budget

    def clear(self) -> None:
        """Drop every loaded model (e.g. to free device memory before a large pipeline)."""
        self._pool.clear()

    def __len__(self) -> int:
        return len(self._pool)


def resolve_upscaler(
    name: str,
    esrgan_dir: Path,
    device: str,
    half: bool,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    cache: UpscalerCache,
) -> Upscaler:
    """The upscaler called ``name``: a built-in, or the model file under ``esrgan_dir`` with that stem.

    Models come from ``cache`` (the engine context's, under its memory budget), so resolving the
    same model again loads nothing. Raises ``UpscalerError`` naming every available upscaler when
    ``name`` is unknown.
    """
    if name in BUILTIN_UPSCALERS:
        return BuiltinUpscaler(name)
    path = installed_models(esrgan_dir).get(name)
    if path is None:
        raise UpscalerError(
            f"unknown upscaler {name!r}; available: {', '.join(available_upscalers(esrgan_dir))} "
            f"(models are {'/'.join(MODEL_SUFFIXES)} files in {esrgan_dir}, named by file stem)"
        )
    upscaler = cache.get(path, device, half)
    if (upscaler.tile, upscaler.overlap) != (tile, overlap):
        return upscaler.with_tiling(tile, overlap)
    return upscaler
