"""How each X/Y/Z axis changes a RunConfig, as small functions over its JSON dict.

Axis values change a plain ``config.model_dump(mode="json")`` dict; the caller validates the result
with ``RunConfig.from_dict`` once every axis of a cell is applied. Working on the dict keeps the
appliers independent of RunConfig's classes, so a field added to RunConfig needs one new entry in
:mod:`.axes`, nothing else.

Three kinds of function live here:

- *resolvers* turn a typed value into the canonical one when the sweep is built (``"euler a"`` →
  ``"Euler a"``, ``"sd15"`` → ``"sd15-model.safetensors"``) and raise ValueError with the allowed
  names otherwise;
- *appliers* write a resolved value into the dict;
- *checks* look at a finished cell's dict and say why an axis would have no effect there
  (hires steps with hires fix off), so a sweep never silently renders identical cells.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ..config import ADETAILER_SAME
from ..samplers import BUILTIN_PIXEL_UPSCALERS, LATENT_UPSCALERS, SAMPLERS, SCHEDULERS, split_legacy_sampler
from .values import AxisValue

Data = dict[str, Any]

_CHECKSUM = re.compile(r"\s*\[[0-9a-fA-F]+\]\s*$")
_CHECKPOINT_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf")
#: VAE axis values meaning "the checkpoint's own VAE" (A1111 1.10 ``find_vae``).
VAE_AUTOMATIC = ("automatic", "auto", "none")


@dataclass(frozen=True)
class SweepContext:
    """Names the resolvers check axis values against. ``None`` means "not known here": values are
    then used as typed and a wrong name fails only when its cell runs."""

    checkpoints: tuple[str, ...] | None = None
    vaes: tuple[str, ...] | None = None
    #: Model upscalers by file stem (models/ESRGAN); the latent and built-in ones are always allowed.
    upscalers: tuple[str, ...] | None = None
    adetailer_models: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AxisApplication:
    """What an applier needs besides the value: every value of its axis (Prompt S/R searches for
    the first one, as A1111 does)."""

    values: tuple[AxisValue, ...]


Resolver = Callable[[AxisValue, SweepContext], AxisValue]
Applier = Callable[[Data, AxisValue, AxisApplication], None]
Check = Callable[[Data], str | None]


# --- helpers -----------------------------------------------------------------------------------


def _choose(value: str, names: Sequence[str], what: str) -> str:
    """``value`` matched case-insensitively against ``names``; ValueError lists the closest ones."""
    by_lower = {name.lower(): name for name in names}
    found = by_lower.get(value.strip().lower())
    if found is not None:
        return found
    close = difflib.get_close_matches(value, list(names), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown {what} {value!r}{hint} Valid: {', '.join(names)}")


def first_stage(data: Data) -> Data:
    """The section of the first sampling stage: the one whose values A1111's base keys report."""
    section: Data = (
        data["txt2img"] if data["txt2img"]["enabled"] or not data["img2img"]["enabled"] else data["img2img"]
    )
    return section


def _stem(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    for extension in _CHECKPOINT_EXTENSIONS:
        if base.lower().endswith(extension):
            return base[: -len(extension)]
    return base


def match_checkpoint(name: str, known: Sequence[str]) -> str | None:
    """A1111's ``get_closet_checkpoint_match``: an exact name or file stem, else the shortest known
    name containing ``name``, else the same without a trailing ``[hash]``."""
    if not name:
        return None
    for candidate in known:
        if name in (candidate, _stem(candidate)):
            return candidate
    for search in (name, _CHECKSUM.sub("", name)):
        found = sorted((c for c in known if search in c), key=len)
        if found:
            return found[0]
    return None


# --- resolvers ---------------------------------------------------------------------------------


def resolve_sampler(value: AxisValue, _context: SweepContext) -> AxisValue:
    name = str(value)
    sampler, schedule = split_legacy_sampler(name)
    canonical = _choose(sampler, SAMPLERS, "sampler")
    return f"{canonical} {schedule}" if schedule else canonical


def resolve_schedule(value: AxisValue, _context: SweepContext) -> AxisValue:
    return _choose(str(value), SCHEDULERS, "schedule type")


def resolve_checkpoint(value: AxisValue, context: SweepContext) -> AxisValue:
    name = str(value)
    if context.checkpoints is None:
        return name
    found = match_checkpoint(name, context.checkpoints)
    if found is None:
        listed = ", ".join(context.checkpoints) or "(none installed)"
        raise ValueError(f"unknown checkpoint {name!r}; installed: {listed}")
    return found


def resolve_checkpoint_or_none(value: AxisValue, context: SweepContext) -> AxisValue:
    return "None" if str(value) in ("", "None", "none") else resolve_checkpoint(value, context)


def resolve_vae(value: AxisValue, context: SweepContext) -> AxisValue:
    name = str(value).strip()
    if name.lower() in VAE_AUTOMATIC:
        return "Automatic"
    if context.vaes is None:
        return name
    # A1111 falls back to Automatic for an unknown name; a sweep column that silently repeats
    # the checkpoint's own VAE is never what was meant, so we refuse it.
    return _choose(name, ["Automatic", "None", *context.vaes], "VAE")


def resolve_upscaler(value: AxisValue, context: SweepContext) -> AxisValue:
    builtin = [*LATENT_UPSCALERS, *BUILTIN_PIXEL_UPSCALERS]
    if context.upscalers is None:
        by_lower = {name.lower(): name for name in builtin}
        return by_lower.get(str(value).lower(), str(value))
    return _choose(str(value), [*builtin, *context.upscalers], "upscaler")


def resolve_adetailer_model(value: AxisValue, context: SweepContext) -> AxisValue:
    if str(value) == "None" or context.adetailer_models is None:
        return str(value)
    return _choose(str(value), ["None", *context.adetailer_models], "ADetailer model")


def resolve_adetailer_schedule(value: AxisValue, _context: SweepContext) -> AxisValue:
    return _choose(str(value), [ADETAILER_SAME, *SCHEDULERS], "ADetailer schedule type")


def resolve_bool_text(value: AxisValue, _context: SweepContext) -> AxisValue:
    return _choose(str(value), ["True", "False"], "value")


def resolve_size(value: AxisValue, _context: SweepContext) -> AxisValue:
    width, sep, height = str(value).partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise ValueError(f"{value!r} is not a size; write width x height, for example 512x768")
    return f"{int(width)}x{int(height)}"


# --- appliers ----------------------------------------------------------------------------------


def set_path(*path: str) -> Applier:
    """An applier that stores the value at ``data[path[0]][path[1]]...``."""

    def apply(data: Data, value: AxisValue, _app: AxisApplication) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def set_first_stage(key: str) -> Applier:
    """An applier that stores the value in the first sampling stage's ``key``."""

    def apply(data: Data, value: AxisValue, _app: AxisApplication) -> None:
        first_stage(data)[key] = value

    return apply


def set_unit(key: str, convert: Callable[[AxisValue], Any] = lambda v: v) -> Applier:
    """An applier for ADetailer's "1st" axes: the first unit's ``key``."""

    def apply(data: Data, value: AxisValue, _app: AxisApplication) -> None:
        data["adetailer"]["units"][0][key] = convert(value)

    return apply


def apply_sampler(data: Data, value: AxisValue, _app: AxisApplication) -> None:
    sampler, schedule = split_legacy_sampler(str(value))
    section = first_stage(data)
    section["sampler"] = sampler
    if schedule is not None:
        section["scheduler"] = schedule


def apply_steps(data: Data, value: AxisValue, _app: AxisApplication) -> None:
    first_stage(data)["steps"] = value


def apply_checkpoint(data: Data, value: AxisValue, _app: AxisApplication) -> None:
    if data["txt2img"]["enabled"] or data["img2img"]["model"] is None:
        data["txt2img"]["model"] = value
    else:
        data["img2img"]["model"] = value


def apply_vae(data: Data, value: AxisValue, _app: AxisApplication) -> None:
    data["txt2img"]["vae"] = None if str(value) in ("Automatic", "None") else value


def apply_denoising(data: Data, value: AxisValue, _app: AxisApplication) -> None:
    # A1111's one "Denoising" axis sets denoising_strength: on txt2img that is the hires pass's.
    t2i = data["txt2img"]
    if (t2i["enabled"] and t2i["hires_enabled"]) or not data["img2img"]["enabled"]:
        t2i["hires_denoise"] = value
    else:
        data["img2img"]["denoise"] = value


def apply_refiner_checkpoint(data: Data, value: AxisValue, _app: AxisApplication) -> None:
    t2i = data["txt2img"]
    t2i["refiner_enabled"] = str(value) != "None"
    t2i["refiner_model_name"] = None if str(value) == "None" else value


def apply_size(data: Data, value: AxisValue, _app: AxisApplication) -> None:
    width, _, height = str(value).partition("x")
    data["txt2img"]["width"], data["txt2img"]["height"] = int(width), int(height)


def apply_prompt_sr(data: Data, value: AxisValue, app: AxisApplication) -> None:
    """A1111's Prompt S/R: the axis's first value is searched in the prompt and the negative
    prompt and every occurrence replaced. Stage prompts that inherit the main prompt follow it;
    explicit overrides are left alone, as A1111 leaves an explicit hires prompt alone."""
    search = str(app.values[0])
    if search not in data["prompt"] and search not in data["negative_prompt"]:
        raise ValueError(f"Prompt S/R did not find {search!r} in the prompt or the negative prompt")
    data["prompt"] = data["prompt"].replace(search, str(value))
    data["negative_prompt"] = data["negative_prompt"].replace(search, str(value))


def _unit_prompt_text(unit_prompt: str, main_prompt: str) -> str:
    """ADetailer's effective unit prompt: each ``[SEP]`` part blank → the main prompt, and
    ``[PROMPT]`` inside a part → the main prompt (the engine's rule, written out)."""
    parts = re.split(r"\s*\[SEP\]\s*", unit_prompt)
    return " [SEP] ".join(part.replace("[PROMPT]", main_prompt) if part else main_prompt for part in parts)


def adetailer_prompt_sr(also_main: bool) -> Applier:
    """ADetailer's "[ADetailer] Prompt S/R (AD 1st[ and main prompt])": replace in the first unit's
    effective prompts (written out explicitly, as ADetailer then records them), optionally also
    in the main prompts."""

    def apply(data: Data, value: AxisValue, app: AxisApplication) -> None:
        search, replace = str(app.values[0]), str(value)
        unit = data["adetailer"]["units"][0]
        for unit_key, main_key in (
            ("adetailer_prompt", "prompt"),
            ("adetailer_negative_prompt", "negative_prompt"),
        ):
            text = _unit_prompt_text(unit[unit_key], data[main_key])
            unit[unit_key] = text.replace(search, replace)
        if also_main:
            data["prompt"] = data["prompt"].replace(search, replace)
            data["negative_prompt"] = data["negative_prompt"].replace(search, replace)

    return apply


def apply_nothing(_data: Data, _value: AxisValue, _app: AxisApplication) -> None:
    """The "Nothing" axis: one cell, no change."""


# --- checks ------------------------------------------------------------------------------------


def needs_hires(data: Data) -> str | None:
    t2i = data["txt2img"]
    return (
        None
        if t2i["enabled"] and t2i["hires_enabled"]
        else "has no effect: hires fix is off (txt2img.hires_enabled)"
    )


def needs_refiner(data: Data) -> str | None:
    t2i = data["txt2img"]
    return None if t2i["enabled"] and t2i["refiner_enabled"] else "has no effect: the refiner is off"


def needs_denoising_stage(data: Data) -> str | None:
    t2i, i2i = data["txt2img"], data["img2img"]
    if (t2i["enabled"] and t2i["hires_enabled"]) or i2i["enabled"]:
        return None
    return "has no effect: turn on hires fix or img2img"


def needs_variation_strength(data: Data) -> str | None:
    """A variation seed does nothing at strength 0 (A1111 would draw identical cells)."""
    if data["subseed_strength"] > 0:
        return None
    return "has no effect: the variation strength is 0 (set subseed_strength, or add a Var. strength axis)"


def needs_txt2img(data: Data) -> str | None:
    return None if data["txt2img"]["enabled"] else "has no effect: txt2img is off"


def needs_adetailer(gate: str | None = None) -> Check:
    """A check that ADetailer runs with its first unit active (and ``gate``, its ``use_`` switch, on)."""

    def check(data: Data) -> str | None:
        ad = data["adetailer"]
        unit = ad["units"][0]
        if not ad["enabled"]:
            return "has no effect: ADetailer is off"
        if gate is not None and not unit[gate]:
            return f"has no effect unless the first unit's {gate} is on"
        return None

    return check
