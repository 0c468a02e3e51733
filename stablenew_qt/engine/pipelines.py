"""PipelineCache: loads checkpoints once and keeps them resident between jobs.

* A second job with the same model loads nothing (``loads`` counts real loads).
* img2img and inpaint pipelines share every module with the txt2img pipeline (``from_pipe``).
* The SDXL refiner shares ``text_encoder_2`` and the VAE with its base.
* Least-recently-used models are evicted when a new one would exceed the memory budget, which the
  cache shares with the engine's upscalers and detectors (``engine/memory.py``).
* Memory modes: everything on the device (default), model CPU offload, sequential offload.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.options import MemoryMode
from .device import DeviceChoice
from .errors import MissingModelError, ModelError
from .family import ModelFamily, describe, detect_family
from .hashing import model_hash
from .memory import MemoryBudget, device_budget, free_device_memory, module_bytes
from .models import ModelCatalog, ModelEntry
from .safety import check_loadable_checkpoint

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "MemoryMode", "PipelineCache", "diffusers_class_names", "infotext_name"]

_TXT2IMG_CLASS = {
    ModelFamily.SD15: "StableDiffusionPipeline",
    ModelFamily.SDXL: "StableDiffusionXLPipeline",
    ModelFamily.SDXL_REFINER: "StableDiffusionXLImg2ImgPipeline",
    ModelFamily.SD15_INPAINT: "StableDiffusionInpaintPipeline",
    ModelFamily.SDXL_INPAINT: "StableDiffusionXLInpaintPipeline",
}
_IMG2IMG_CLASS = {
    ModelFamily.SD15: "StableDiffusionImg2ImgPipeline",
    ModelFamily.SDXL: "StableDiffusionXLImg2ImgPipeline",
    ModelFamily.SDXL_REFINER: "StableDiffusionXLImg2ImgPipeline",
}
_INPAINT_CLASS = {
    ModelFamily.SD15: "StableDiffusionInpaintPipeline",
    ModelFamily.SD15_INPAINT: "StableDiffusionInpaintPipeline",
    ModelFamily.SDXL: "StableDiffusionXLInpaintPipeline",
    ModelFamily.SDXL_INPAINT: "StableDiffusionXLInpaintPipeline",
}


def diffusers_class_names() -> tuple[str, ...]:
    """Every diffusers class the cache may build (pipelines and the external VAE), so the engine's
    warm-up can import them (diffusers imports its classes lazily, on first attribute access)."""
    names = {*_TXT2IMG_CLASS.values(), *_IMG2IMG_CLASS.values(), *_INPAINT_CLASS.values(), "AutoencoderKL"}
    return tuple(sorted(names))


def _diffusers_class(name: str) -> Any:
    import diffusers

    return getattr(diffusers, name)


def infotext_name(entry: ModelEntry) -> str:
    """A1111's ``Model:`` value: the checkpoint's file name without folder or extension."""
    return entry.name.rsplit("/", 1)[-1]


@dataclass
class LoadedModel:
    """A resident checkpoint and the pipelines derived from it."""

    key: tuple[str, ...]
    entry: ModelEntry
    family: ModelFamily
    pipe: Any
    model_hash: str | None
    vae_entry: ModelEntry | None = None
    vae_hash: str | None = None
    size_bytes: int = 0
    derived: dict[str, Any] = field(default_factory=dict)
    #: The model's own scheduler config as loaded. Stages build every scheduler from this, never
    #: from ``pipe.scheduler`` (which the previous job replaced).
    scheduler_config: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return infotext_name(self.entry)

    @property
    def is_sdxl(self) -> bool:
        return self.family in (ModelFamily.SDXL, ModelFamily.SDXL_REFINER, ModelFamily.SDXL_INPAINT)


class PipelineCache:
    """Resident pipelines keyed by model, VAE, device, precision and memory mode.

    ``budget`` is the engine's shared memory budget (one of its pools); without one the cache has
    its own of ``budget_bytes`` (default: :func:`~.memory.default_budget_bytes`).
    """

    def __init__(
        self,
        catalog: ModelCatalog,
        device: DeviceChoice,
        *,
        memory_mode: MemoryMode | str = MemoryMode.GPU,
        budget_bytes: int | None = None,
        budget: MemoryBudget | None = None,
        hasher: Callable[[Path], str | None] = model_hash,
        compile_unet: bool = False,
    ) -> None:
        try:
            self.memory_mode = MemoryMode(memory_mode)
        except ValueError:
            names = ", ".join(mode.value for mode in MemoryMode)
            raise ValueError(f"unknown memory mode {memory_mode!r}; use one of {names}") from None
        self.catalog = catalog
        self.device = device
        self.budget = budget if budget is not None else device_budget(device, budget_bytes)
        self.budget.register(self)
        self._hasher = hasher
        self.compile_unet = compile_unet
        self._models: OrderedDict[tuple[str, ...], LoadedModel] = OrderedDict()
        self._used: dict[tuple[str, ...], int] = {}
        self.loads = 0
        #: Attention a slice at a time on every pipeline (a rung of the out-of-memory ladder).
        self.attention_slicing = False

    @property
    def budget_bytes(self) -> int:
        """The memory budget's size (shared with the engine's upscalers and detectors)."""
        return self.budget.total_bytes

    @budget_bytes.setter
    def budget_bytes(self, total: int) -> None:
        self.budget.total_bytes = total

    # -- public ----------------------------------------------------------------------------
    def base(self, model: str, vae: str | None = None) -> LoadedModel:
        """The txt2img pipeline of ``model`` (with ``vae`` swapped in), loading it if needed."""
        entry = self._resolve_checkpoint(model)
        vae_entry = self.catalog.resolve_vae(vae) if vae else None
        key = (str(entry.path or entry.name), str(vae_entry.path) if vae_entry else "", self.memory_mode)
        return self._get(key, lambda: self._load(entry, vae_entry, key))

    def refiner(self, model: str, base: LoadedModel) -> LoadedModel:
        """The SDXL refiner ``model``, sharing ``text_encoder_2`` and the VAE with ``base``."""
        entry = self._resolve_checkpoint(model)
        family = self._family(entry)
        if family is not ModelFamily.SDXL_REFINER or base.family is not ModelFamily.SDXL:
            if base.family is ModelFamily.SD15 and family is ModelFamily.SD15:
                raise ModelError(
                    "a refiner for SD1.x models is not supported yet; turn the refiner off "
                    "or use an SDXL base with an SDXL refiner"
                )
            raise ModelError(
                f"refiner '{infotext_name(entry)}' is {describe(family)} but the base model '{base.name}' is "
                f"{describe(base.family)}; an SDXL base needs an SDXL refiner (e.g. sd_xl_refiner_1.0)"
            )
        key = ("refiner", str(entry.path or entry.name), *base.key)
        shared = {"text_encoder_2": base.pipe.text_encoder_2, "vae": base.pipe.vae}
        return self._get(key, lambda: self._load(entry, None, key, family=family, shared=shared))

    def img2img(self, loaded: LoadedModel) -> Any:
        """An img2img pipeline sharing every module (and memory) with ``loaded``."""
        if loaded.family is ModelFamily.SDXL_REFINER:
            return loaded.pipe
        return self._derived(loaded, "img2img", _IMG2IMG_CLASS)

    def inpaint(self, loaded: LoadedModel) -> Any:
        """An inpaint pipeline sharing every module with ``loaded`` (for ADetailer)."""
        if loaded.family in (ModelFamily.SD15_INPAINT, ModelFamily.SDXL_INPAINT):
            return loaded.pipe
        return self._derived(loaded, "inpaint", _INPAINT_CLASS)

    def base_of(self, refiner: LoadedModel) -> LoadedModel | None:
        """The resident base model ``refiner`` was loaded for (it shares its ``text_encoder_2``)."""
        if refiner.key[:1] != ("refiner",):
            return None
        return self._models.get(tuple(refiner.key[2:]))

    def family_of(self, model: str) -> ModelFamily:
        """The family of checkpoint ``model`` from its header or config (nothing is loaded)."""
        return self._family(self._resolve_checkpoint(model))

    def set_attention_slicing(self, on: bool) -> None:
        """Attention slicing on (or off) for every resident pipeline and those loaded later."""
        if on == self.attention_slicing:
            return
        self.attention_slicing = on
        for loaded in self._models.values():
            # ``derived`` also holds non-pipeline state (the prompt encoders' caches).
            for pipe in (loaded.pipe, *loaded.derived.values()):
                if hasattr(pipe, "enable_attention_slicing"):
                    _slice_attention(pipe, on)

    def set_memory_mode(self, mode: MemoryMode) -> None:
        """Place pipelines by ``mode`` from now on. Resident ones are dropped (and load again on
        their next use): an offloaded pipeline cannot simply be moved back, nor the reverse."""
        if mode is self.memory_mode:
            return
        log.info("memory mode %s -> %s: resident pipelines are reloaded", self.memory_mode, mode)
        self.memory_mode = mode
        self.clear()

    def resident(self) -> list[str]:
        """Names of the resident models, least recently used first."""
        return [m.name for m in self._models.values()]

    def clear(self) -> None:
        self._models.clear()
        self._used.clear()
        free_device_memory(self.device)

    # -- ResidentPool (the memory budget) --------------------------------------------------
    def resident_bytes(self) -> int:
        return sum(m.size_bytes for m in self._models.values())

    def oldest_use(self) -> int | None:
        return self._used[next(iter(self._models))] if self._models else None

    def evict_oldest(self) -> None:
        """Drop the least recently used model; a base takes its refiners with it."""
        key, old = self._models.popitem(last=False)
        self._used.pop(key, None)
        log.info("evicting %s to make room (budget %.1f GiB)", old.name, self.budget_bytes / 2**30)
        if key and key[0] != "refiner":
            for other in [k for k in self._models if k[0] == "refiner" and k[2:] == key]:
                del self._models[other]
                self._used.pop(other, None)

    # -- loading ---------------------------------------------------------------------------
    def _resolve_checkpoint(self, name: str) -> ModelEntry:
        if not name.strip():
            checkpoints = self.catalog.checkpoints()
            if not checkpoints:
                raise MissingModelError("no checkpoint is installed: put one in models/Stable-diffusion")
            return checkpoints[0]
        return self.catalog.resolve_checkpoint(name)

    def _family(self, entry: ModelEntry) -> ModelFamily:
        if entry.path is None:
            return ModelFamily.SDXL if "xl" in entry.name.lower() else ModelFamily.SD15
        return detect_family(entry.path)

    def _get(self, key: tuple[str, ...], load: Callable[[], LoadedModel]) -> LoadedModel:
        loaded = self._models.get(key)
        if loaded is None:
            loaded = load()
            self._models[key] = loaded
        self._models.move_to_end(key)
        self._used[key] = self.budget.stamp()
        return loaded

    def _load(
        self,
        entry: ModelEntry,
        vae_entry: ModelEntry | None,
        key: tuple[str, ...],
        *,
        family: ModelFamily | None = None,
        shared: dict[str, Any] | None = None,
    ) -> LoadedModel:
        family = family or self._family(entry)
        if family not in _TXT2IMG_CLASS:
            raise ModelError(f"'{infotext_name(entry)}' is {describe(family)}, which is not supported yet")
        if entry.path is not None and entry.path.is_file():
            check_loadable_checkpoint(entry.path)
        self.budget.make_room(_estimate_bytes(entry.path))
        extra: dict[str, Any] = dict(shared or {})
        if vae_entry is not None:
            extra["vae"] = self._load_vae(vae_entry, family, entry)
        log.info("loading %s (%s) on %s", entry.name, describe(family), self.device.describe())
        pipe = self._load_pipeline(entry, family, extra)
        self.loads += 1
        pipe.set_progress_bar_config(disable=True)
        self._place(pipe)
        if self.attention_slicing:
            _slice_attention(pipe, True)
        model_file = entry.path if entry.path is not None and entry.path.is_file() else None
        vae_file = vae_entry.path if vae_entry and vae_entry.path and vae_entry.path.is_file() else None
        return LoadedModel(
            key=key,
            entry=entry,
            family=family,
            pipe=pipe,
            model_hash=self._hasher(model_file) if model_file else None,
            vae_entry=vae_entry,
            vae_hash=self._hasher(vae_file) if vae_file else None,
            size_bytes=_pipeline_bytes(pipe),
            scheduler_config=dict(pipe.scheduler.config),
        )

    def _load_pipeline(self, entry: ModelEntry, family: ModelFamily, extra: dict[str, Any]) -> Any:
        cls = _diffusers_class(_TXT2IMG_CLASS[family])
        dtype = self.device.dtype
        if family in (ModelFamily.SD15, ModelFamily.SD15_INPAINT):
            extra.setdefault("safety_checker", None)
            extra.setdefault("requires_safety_checker", False)
        if entry.path is not None and entry.path.is_file():
            from .single_file import load_single_file

            return load_single_file(entry.path, family.value, cls, dtype, **extra)
        if entry.path is not None:
            try:
                return cls.from_pretrained(str(entry.path), **_dtype_kwarg(dtype), **extra)
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load '{entry.name}': {exc}") from exc
        return _from_hub(cls, entry.name, dtype, extra)

    def _load_vae(self, vae_entry: ModelEntry, family: ModelFamily, model: ModelEntry) -> Any:
        """An external VAE, refused with a clear message when it does not fit the model's family."""
        autoencoder = _diffusers_class("AutoencoderKL")
        assert vae_entry.path is not None
        try:
            if vae_entry.path.is_file():
                check_loadable_checkpoint(vae_entry.path)
                from .single_file import config_folder

                vae = autoencoder.from_single_file(
                    str(vae_entry.path),
                    config=str(config_folder(family.value)),
                    subfolder="vae",
                    torch_dtype=self.device.dtype,
                    local_files_only=True,
                )
            else:
                vae = autoencoder.from_pretrained(str(vae_entry.path), torch_dtype=self.device.dtype)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"VAE '{vae_entry.name}' does not load as a {describe(family)} VAE: {exc}"
            ) from exc
        _check_vae_fits(vae.config, _native_vae_config(model, family), vae_entry.name, family)
        return vae

    def _derived(self, loaded: LoadedModel, kind: str, classes: dict[ModelFamily, str]) -> Any:
        if kind not in loaded.derived:
            if loaded.family not in classes:
                raise ModelError(f"'{loaded.name}' ({describe(loaded.family)}) cannot be used for {kind}")
            cls = _diffusers_class(classes[loaded.family])
            pipe = cls.from_pipe(loaded.pipe)
            pipe.set_progress_bar_config(disable=True)  # from_pipe does not inherit it
            if self.attention_slicing:
                _slice_attention(pipe, True)
            loaded.derived[kind] = pipe
        return loaded.derived[kind]

    def _place(self, pipe: Any) -> None:
        if not self.device.is_cuda or self.memory_mode is MemoryMode.GPU:
            pipe.to(self.device.device)
        elif self.memory_mode is MemoryMode.MODEL_OFFLOAD:
            pipe.enable_model_cpu_offload(device=self.device.device)
        else:
            pipe.enable_sequential_cpu_offload(device=self.device.device)
        if self.compile_unet and self.device.is_cuda:
            # Regional compilation: the repeated transformer blocks compile once and are reused,
            # which takes seconds instead of minutes for the whole UNet. Attention is SDPA already.
            pipe.unet.compile_repeated_blocks(fullgraph=True)


def _slice_attention(pipe: Any, on: bool) -> None:
    if on:
        pipe.enable_attention_slicing()
    else:
        pipe.disable_attention_slicing()


_VAE_KEYS = ("latent_channels", "block_out_channels", "scaling_factor")


def _native_vae_config(model: ModelEntry, family: ModelFamily) -> dict[str, Any]:
    """The VAE config the model was made with: its own folder's, else the family's shipped one."""
    import json

    folder = model.path if model.path is not None and model.path.is_dir() else None
    if folder is None:
        from .single_file import config_folder

        folder = config_folder(family.value)
    path = folder / "vae" / "config.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}


def _check_vae_fits(vae_config: Any, native: dict[str, Any], name: str, family: ModelFamily) -> None:
    for key in _VAE_KEYS:
        expected, got = native.get(key), vae_config.get(key) if hasattr(vae_config, "get") else None
        if expected is None or got is None:
            continue
        if key == "scaling_factor":
            mismatch = abs(float(got) - float(expected)) > 1e-4
        else:
            mismatch = list(got) != list(expected) if isinstance(expected, list) else got != expected
        if mismatch:
            raise ModelError(
                f"VAE '{name}' does not fit this {describe(family)} model: its {key} is {got}, "
                f"the model's is {expected}; choose a VAE made for {describe(family)} or none"
            )


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """diffusers 0.42 renamed pipelines' ``torch_dtype`` to ``dtype`` (the old name warns)."""
    import diffusers.utils

    return {"dtype": dtype} if hasattr(diffusers.utils, "_resolve_dtype") else {"torch_dtype": dtype}


def _from_hub(cls: Any, repo_id: str, dtype: Any, extra: dict[str, Any]) -> Any:
    """A hub id: the local HF cache first; then a download (with tqdm progress) unless offline."""
    try:
        return cls.from_pretrained(repo_id, local_files_only=True, **_dtype_kwarg(dtype), **extra)
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        raise MissingModelError(
            f"'{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; download it once "
            "with network access, or put a checkpoint in models/Stable-diffusion"
        )
    log.info("downloading %s into the Hugging Face cache", repo_id)
    try:
        return cls.from_pretrained(repo_id, **_dtype_kwarg(dtype), **extra)
    except Exception as exc:
        raise ModelError(
            f"could not download '{repo_id}' ({type(exc).__name__}: {exc}); check the name and your network, "
            "or put a checkpoint in models/Stable-diffusion"
        ) from exc


def _estimate_bytes(path: Path | None) -> int:
    if path is None:
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*.safetensors"))


def _pipeline_bytes(pipe: Any) -> int:
    return sum(module_bytes(component) for component in pipe.components.values())
