"""The X/Y/Z plot axis types: A1111's names, value kinds, costs and labels, and how each applies.

Each :class:`AxisType` is one row of a table keyed by A1111's own label (``"CFG Scale"``,
``"Checkpoint name"``; ADetailer's are ``"[ADetailer] ... 1st"``), so sweep files and infotext
``X Type`` values read the same in both programs. Adding an axis for a new RunConfig field is one
more row: its kind, an applier (usually :func:`~.appliers.set_path`) and, if it needs one, a check
that says when it has no effect.

``cost`` is A1111's: the costliest axis is varied in the outermost loop so its model loads once
(Checkpoint name and Refiner checkpoint 1.0, VAE 0.7, everything else 0).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum

from ..errors import ConfigError
from . import appliers as ap
from .appliers import Applier, Check, Resolver
from .values import AxisValue, ValueKind

__all__ = ["AXIS_TYPES", "AxisType", "LabelStyle", "axis_type", "format_label"]


class LabelStyle(Enum):
    """How A1111 labels an axis value in the grid legend."""

    WITH_NAME = "with_name"  # "CFG Scale: 7.0" (A1111's format_value_add_label)
    VALUE = "value"  # "Euler a" (format_value)
    BASENAME = "basename"  # file name without folders (format_remove_path)
    NOTHING = "nothing"  # "" (the Nothing axis)


@dataclass(frozen=True)
class AxisType:
    """One kind of X/Y/Z axis.

    ``apply`` writes a value into a RunConfig dict; ``resolve`` canonicalises a typed value when
    the sweep is built; ``check`` (on a finished cell) says why the axis would have no effect;
    ``is_seed`` marks the axes whose -1 values "Keep -1 for seeds" governs.
    """

    label: str
    kind: ValueKind
    apply: Applier
    cost: float = 0.0
    label_style: LabelStyle = LabelStyle.WITH_NAME
    resolve: Resolver | None = None
    check: Check | None = None
    is_seed: bool = False


def _by_label(*types: AxisType) -> dict[str, AxisType]:
    return {axis.label: axis for axis in types}


_INT, _FLOAT, _TEXT = ValueKind.INT, ValueKind.FLOAT, ValueKind.TEXT
_AD = "[ADetailer] "

#: Every axis type by A1111's label, in A1111's menu order (ADetailer's after A1111's).
AXIS_TYPES: dict[str, AxisType] = _by_label(
    AxisType("Nothing", _TEXT, ap.apply_nothing, label_style=LabelStyle.NOTHING),
    AxisType("Seed", _INT, ap.set_path("seed"), is_seed=True),
    AxisType("Var. seed", _INT, ap.set_path("subseed"), is_seed=True, check=ap.needs_variation_strength),
    AxisType("Var. strength", _FLOAT, ap.set_path("subseed_strength")),
    AxisType("Steps", _INT, ap.apply_steps),
    AxisType("Hires steps", _INT, ap.set_path("txt2img", "hires_steps"), check=ap.needs_hires),
    AxisType("CFG Scale", _FLOAT, ap.set_first_stage("cfg_scale")),
    AxisType("Prompt S/R", _TEXT, ap.apply_prompt_sr, label_style=LabelStyle.VALUE),
    AxisType("Sampler", _TEXT, ap.apply_sampler, label_style=LabelStyle.VALUE, resolve=ap.resolve_sampler),
    AxisType(
        "Checkpoint name",
        _TEXT,
        ap.apply_checkpoint,
        cost=1.0,
        label_style=LabelStyle.BASENAME,
        resolve=ap.resolve_checkpoint,
    ),
    AxisType("Schedule type", _TEXT, ap.set_first_stage("scheduler"), resolve=ap.resolve_schedule),
    AxisType("Clip skip", _INT, ap.set_path("txt2img", "clip_skip"), check=ap.needs_txt2img),
    AxisType("Denoising", _FLOAT, ap.apply_denoising, check=ap.needs_denoising_stage),
    AxisType(
        "Hires upscaler",
        _TEXT,
        ap.set_path("txt2img", "hires_upscaler_name"),
        resolve=ap.resolve_upscaler,
        check=ap.needs_hires,
    ),
    AxisType("VAE", _TEXT, ap.apply_vae, cost=0.7, resolve=ap.resolve_vae),
    AxisType(
        "Refiner checkpoint",
        _TEXT,
        ap.apply_refiner_checkpoint,
        cost=1.0,
        label_style=LabelStyle.BASENAME,
        resolve=ap.resolve_checkpoint_or_none,
        check=ap.needs_txt2img,
    ),
    AxisType(
        "Refiner switch at", _FLOAT, ap.set_path("txt2img", "refiner_switch_at"), check=ap.needs_refiner
    ),
    AxisType("Size", _TEXT, ap.apply_size, resolve=ap.resolve_size, check=ap.needs_txt2img),
    AxisType(
        f"{_AD}ADetailer model 1st",
        _TEXT,
        ap.set_unit("adetailer_model"),
        resolve=ap.resolve_adetailer_model,
        check=ap.needs_adetailer(),
    ),
    AxisType(
        f"{_AD}ADetailer prompt 1st", _TEXT, ap.set_unit("adetailer_prompt"), check=ap.needs_adetailer()
    ),
    AxisType(
        f"{_AD}ADetailer negative prompt 1st",
        _TEXT,
        ap.set_unit("adetailer_negative_prompt"),
        check=ap.needs_adetailer(),
    ),
    AxisType(f"{_AD}Prompt S/R (AD 1st)", _TEXT, ap.adetailer_prompt_sr(False), check=ap.needs_adetailer()),
    AxisType(
        f"{_AD}Prompt S/R (AD 1st and main prompt)",
        _TEXT,
        ap.adetailer_prompt_sr(True),
        check=ap.needs_adetailer(),
    ),
    AxisType(
        f"{_AD}Mask erosion / dilation 1st",
        _INT,
        ap.set_unit("adetailer_dilate_erode"),
        check=ap.needs_adetailer(),
    ),
    AxisType(
        f"{_AD}Inpaint denoising strength 1st",
        _FLOAT,
        ap.set_unit("adetailer_strength"),
        check=ap.needs_adetailer(),
    ),
    AxisType(
        f"{_AD}CFG scale 1st",
        _FLOAT,
        ap.set_unit("adetailer_cfg_scale"),
        check=ap.needs_adetailer("adetailer_use_cfg_scale"),
    ),
    AxisType(
        f"{_AD}Inpaint only masked 1st",
        _TEXT,
        ap.set_unit("adetailer_inpaint_only_masked", lambda v: v == "True"),
        resolve=ap.resolve_bool_text,
        check=ap.needs_adetailer(),
    ),
    AxisType(
        f"{_AD}Inpaint only masked padding 1st",
        _INT,
        ap.set_unit("adetailer_inpaint_only_masked_padding"),
        check=ap.needs_adetailer(),
    ),
    AxisType(
        f"{_AD}ADetailer sampler 1st",
        _TEXT,
        ap.set_unit("adetailer_sampler"),
        resolve=ap.resolve_sampler,
        check=ap.needs_adetailer("adetailer_use_sampler"),
    ),
    AxisType(
        f"{_AD}ADetailer scheduler 1st",
        _TEXT,
        ap.set_unit("adetailer_scheduler"),
        resolve=ap.resolve_adetailer_schedule,
        check=ap.needs_adetailer("adetailer_use_sampler"),
    ),
    AxisType(
        f"{_AD}noise multiplier 1st",
        _FLOAT,
        ap.set_unit("adetailer_noise_multiplier"),
        check=ap.needs_adetailer("adetailer_use_noise_multiplier"),
    ),
)

NOTHING = AXIS_TYPES["Nothing"]


def axis_type(label: str, field: str = "") -> AxisType:
    """The axis type called ``label`` (A1111's spelling; case and surrounding spaces are forgiven).

    Raises ConfigError naming ``field`` and suggesting the closest labels for an unknown one.
    """
    found = AXIS_TYPES.get(label) or {k.lower(): v for k, v in AXIS_TYPES.items()}.get(label.strip().lower())
    if found is not None:
        return found
    close = difflib.get_close_matches(label, list(AXIS_TYPES), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"unknown axis type {label!r}{hint} Axis types: {', '.join(AXIS_TYPES)}", field)


def format_label(axis: AxisType, typed: AxisValue) -> str:
    """The grid legend text of one value, as A1111 formats it (floats rounded to 8 places)."""
    value: AxisValue = round(typed, 8) if isinstance(typed, float) else typed
    if axis.label_style is LabelStyle.NOTHING:
        return ""
    if axis.label_style is LabelStyle.VALUE:
        return str(value)
    if axis.label_style is LabelStyle.BASENAME:
        return str(value).replace("\\", "/").rsplit("/", 1)[-1]
    return f"{axis.label}: {value}"
