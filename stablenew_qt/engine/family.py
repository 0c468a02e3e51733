"""Which Stable Diffusion family a checkpoint belongs to, decided without loading any weights.

A diffusers folder is judged by its ``model_index.json`` and ``unet/config.json``; a single-file
``.safetensors`` checkpoint by the tensor names and shapes in its header, which uses the original
(LDM/SGM) key layout. Neither path imports torch, so the GUI can label models at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..core.config import RunConfig
from ..core.errors import ConfigProblem, shorten
from ..core.files import FileRefused, regular_file_size
from .errors import MissingModelError, ModelError, UnreadableModelError
from .model_files import read_config_json, read_safetensors_header
from .safety import PICKLE_SUFFIXES, pickle_refusal

_UNET_INPUT_CONV = "model.diffusion_model.input_blocks.0.0.weight"
_SDXL_SECOND_ENCODER = "conditioner.embedders.1."
_SDXL_REFINER_ENCODER = "conditioner.embedders.0.model."
_SD1_ENCODER = "cond_stage_model.transformer."
_SD2_ENCODER = "cond_stage_model.model."
_SD2_CROSS_ATTENTION_DIM = 1024


class ModelFamily(StrEnum):
    """A checkpoint's architecture. ``SD2`` is recognised only so callers can refuse it clearly."""

    SD15 = "sd15"
    SD15_INPAINT = "sd15-inpaint"
    SDXL = "sdxl"
    SDXL_INPAINT = "sdxl-inpaint"
    SDXL_REFINER = "sdxl-refiner"
    SD2 = "sd2"

    @property
    def is_sdxl(self) -> bool:
        """True for the SDXL base, inpainting and refiner models (two text encoders, 1024 px)."""
        return self in (ModelFamily.SDXL, ModelFamily.SDXL_INPAINT, ModelFamily.SDXL_REFINER)

    @property
    def is_inpaint(self) -> bool:
        """True for the 9-channel inpainting UNets (latents + mask + masked-image latents)."""
        return self in (ModelFamily.SD15_INPAINT, ModelFamily.SDXL_INPAINT)


_DESCRIPTIONS: dict[ModelFamily, str] = {
    ModelFamily.SD15: "SD 1.5",
    ModelFamily.SD15_INPAINT: "SD 1.5 inpainting",
    ModelFamily.SDXL: "SDXL base",
    ModelFamily.SDXL_INPAINT: "SDXL inpainting",
    ModelFamily.SDXL_REFINER: "SDXL refiner",
    ModelFamily.SD2: "SD 2.x",
}

_INPAINT_VARIANT: dict[ModelFamily, ModelFamily] = {
    ModelFamily.SD15: ModelFamily.SD15_INPAINT,
    ModelFamily.SDXL: ModelFamily.SDXL_INPAINT,
    ModelFamily.SD2: ModelFamily.SD2,  # refused by callers anyway
}

# Families that share a latent space and text conditioning, so one can refine the other's latents.
_LINEAGE: dict[ModelFamily, str] = {
    ModelFamily.SD15: "sd1",
    ModelFamily.SD15_INPAINT: "sd1",
    ModelFamily.SDXL: "sdxl",
    ModelFamily.SDXL_INPAINT: "sdxl",
    ModelFamily.SDXL_REFINER: "sdxl",
    ModelFamily.SD2: "sd2",
}


def describe(family: ModelFamily) -> str:
    """A short human name for ``family``, e.g. ``"SDXL base"`` or ``"SD 1.5 inpainting"``."""
    return _DESCRIPTIONS[family]


def family_is_compatible(base: ModelFamily, refiner: ModelFamily) -> bool:
    """Whether ``refiner`` can continue denoising latents made by ``base``.

    Both must come from the same line (SD 1.x with SD 1.x, SDXL with SDXL, SD 2 with SD 2); the
    refiner may not be an inpainting model (it would need a mask) and the base may not be a refiner.
    Whether a given pair is *supported* (for example an SD 1.x UNet swap) is the caller's decision.
    """
    if refiner.is_inpaint or base is ModelFamily.SDXL_REFINER:
        return False
    return _LINEAGE[base] == _LINEAGE[refiner]


def detect_family(path: Path) -> ModelFamily:
    """Detect the family of a diffusers folder or a single-file ``.safetensors`` checkpoint.

    Reads only configs or the safetensors header, never weights, and checks them strictly first
    (``model_files``). Raises ModelError for a missing path, a pickle checkpoint (see ``safety``),
    or anything that is not a recognisable SD model; its subclass UnreadableModelError for a
    malformed header or config.
    """
    if path.is_dir():
        return _family_of_folder(path)
    if not os.path.lexists(path):
        raise MissingModelError(f"model not found: {shorten(str(path))}", path)
    try:
        regular_file_size(path)
    except FileRefused as exc:
        raise UnreadableModelError(f"model {shorten(str(path))!r} cannot be used: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _family_of_shapes(path.name, safetensors_shapes(path))
    if suffix in PICKLE_SUFFIXES:
        raise ModelError(pickle_refusal(path))
    raise ModelError(
        f"{shorten(path.name)} is not a checkpoint: expected a .safetensors file or a diffusers folder"
    )


def family_label(path: Path) -> str:
    """The family of a checkpoint as a listing shows it: ``"sdxl"``, ``"unreadable: <reason>"``
    for a malformed file, ``"unknown (<reason>)"`` for a readable file of another kind."""
    try:
        return detect_family(path).value
    except UnreadableModelError as exc:
        return f"unreadable: {exc}"
    except ModelError as exc:
        return f"unknown ({exc})"


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a ``.safetensors`` header, without reading any tensor data.

    The header is checked strictly first (:func:`~.model_files.read_safetensors_header`).
    """
    return {name: info.shape for name, info in read_safetensors_header(path).items()}


def _family_of_shapes(name: str, shapes: dict[str, tuple[int, ...]]) -> ModelFamily:
    keys = shapes.keys()

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has(_SDXL_SECOND_ENCODER):
        family = ModelFamily.SDXL
    elif has(_SDXL_REFINER_ENCODER):
        family = ModelFamily.SDXL_REFINER
    elif has(_SD1_ENCODER):
        family = ModelFamily.SD15
    elif has(_SD2_ENCODER):
        family = ModelFamily.SD2
    else:
        raise ModelError(_unrecognised(name, shapes))
    conv = shapes.get(_UNET_INPUT_CONV)
    if conv is None or len(conv) < 2:
        raise ModelError(
            f"{name} has {describe(family)} text encoder weights but no UNet ({_UNET_INPUT_CONV} is "
            "missing); it is not a full checkpoint"
        )
    return _with_channels(name, family, conv[1])


def _with_channels(name: str, family: ModelFamily, in_channels: int) -> ModelFamily:
    if in_channels == 4:
        return family
    if in_channels == 9 and family in _INPAINT_VARIANT:
        return _INPAINT_VARIANT[family]
    raise ModelError(
        f"{name} is a {describe(family)} model whose UNet takes {in_channels} input channels; only "
        "4 (normal) and 9 (inpainting) are supported (8 is instruct-pix2pix, for example)"
    )


def _unrecognised(name: str, shapes: dict[str, tuple[int, ...]]) -> str:
    prefixes = sorted({k.split(".", 1)[0] for k in shapes})
    found = ", ".join(prefixes[:8]) + (", ..." if len(prefixes) > 8 else "") if prefixes else "no tensors"
    hint = ""
    if any("lora" in k.lower() for k in shapes):
        hint = "; it looks like a LoRA, which is not a checkpoint"
    elif prefixes and set(prefixes) <= {"encoder", "decoder", "quant_conv", "post_quant_conv"}:
        hint = "; it looks like a VAE: put it in the VAE folder"
    return (
        f"{name} is not a recognised Stable Diffusion checkpoint: found {len(shapes)} tensors with "
        f"top-level names {found}, but none of the SD 1.x, SD 2 or SDXL text encoder keys{hint}"
    )


def _family_of_folder(folder: Path) -> ModelFamily:
    index = _read_json(folder, "model_index.json")
    unet_config = _read_json(folder, "unet/config.json", index)
    has_te = _has_component(index, "text_encoder")
    has_te2 = _has_component(index, "text_encoder_2")
    if has_te2 and (not has_te or bool(index.get("requires_aesthetics_score", False))):
        family = ModelFamily.SDXL_REFINER
    elif has_te and has_te2:
        family = ModelFamily.SDXL
    elif has_te:
        sd2 = unet_config.get("cross_attention_dim") == _SD2_CROSS_ATTENTION_DIM
        family = ModelFamily.SD2 if sd2 else ModelFamily.SD15
    else:
        raise ModelError(
            f"{folder.name}: model_index.json lists no text encoder (pipeline "
            f"{shorten(index.get('_class_name', 'unknown'), 60)}); it is not an SD 1.x or SDXL pipeline"
        )
    channels = unet_config.get("in_channels", 4)  # read_config_json checked it is a whole number
    return _with_channels(folder.name, family, channels if isinstance(channels, int) else 4)


def _has_component(index: dict[str, Any], name: str) -> bool:
    # model_index.json stores ["library", "Class"], or [null, null] for an absent component.
    value = index.get(name)
    return isinstance(value, list) and len(value) == 2 and value[1] is not None


def _read_json(folder: Path, relative: str, index: dict[str, Any] | None = None) -> dict[str, Any]:
    path = folder / relative
    if not path.exists():
        pipeline = shorten(index.get("_class_name", "unknown"), 60) if index is not None else ""
        what = f" (pipeline {pipeline})" if pipeline else ""
        raise ModelError(
            f"{shorten(folder.name)}: {relative} is missing{what}; expected an SD 1.x or SDXL "
            "diffusers folder"
        )
    return read_config_json(path, f"{folder.name}/{relative}")


def model_family_problems(family_of: Callable[[str], ModelFamily], config: RunConfig) -> list[ConfigProblem]:
    """The txt2img refiner and hires checkpoint that cannot work with the base model, found from
    the files' headers before anything loads (the stage would refuse them only after loading the
    base). A name ``family_of`` cannot resolve is left to the stage, which reports it."""
    t2i = config.txt2img
    if not t2i.enabled:
        return []
    base = _known_family(family_of, t2i.model)
    if base is None:
        return []
    problems: list[ConfigProblem] = []
    if t2i.refiner_enabled and t2i.refiner_model_name:
        refiner = _known_family(family_of, t2i.refiner_model_name)
        name = shorten(t2i.refiner_model_name)
        if refiner is not None and refiner is not ModelFamily.SDXL_REFINER:
            message = (
                f"'{name}' is {describe(refiner)}, not an SDXL refiner: choose an SDXL refiner "
                "(e.g. sd_xl_refiner_1.0) with an SDXL base, or turn the refiner off"
            )
            problems.append(ConfigProblem("txt2img.refiner_model_name", message))
        elif refiner is not None and base is not ModelFamily.SDXL:
            message = (
                f"'{name}' is an SDXL refiner, but the base model is {describe(base)}: an SDXL "
                "refiner works only after an SDXL base; choose one, or turn the refiner off"
            )
            problems.append(ConfigProblem("txt2img.refiner_model_name", message))
    if t2i.hires_enabled and t2i.hires_checkpoint and t2i.hires_checkpoint != t2i.model:
        hires = _known_family(family_of, t2i.hires_checkpoint)
        if hires is not None and hires is not base:
            problems.append(
                ConfigProblem(
                    "txt2img.hires_checkpoint",
                    f"'{shorten(t2i.hires_checkpoint)}' is {describe(hires)} but the first pass's model is "
                    f"{describe(base)}: choose a hires checkpoint of the same family",
                )
            )
    return problems


def _known_family(family_of: Callable[[str], ModelFamily], name: str) -> ModelFamily | None:
    try:
        return family_of(name)
    except (ModelError, OSError, ValueError):  # missing or unreadable: the stage reports it
        return None
