"""Reading A1111-style infotext back: the grammar both directions share, the parser, and the
mapping of its keys onto a RunConfig.

Builders live in :mod:`stablenew_qt.core.infotext`, which also re-exports everything public here.
Format and parsing rules: stage-semantics §6.1; ADetailer keys: §1.1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import ADETAILER_SAME, ADetailerUnit, RunConfig
from .errors import ConfigError
from .samplers import split_legacy_sampler

NEGATIVE_PREFIX = "Negative prompt:"

#: One ``key: value`` pair of the parameter line. A key starts with a word character and holds
#: words, spaces, dashes and slashes; a value is a JSON string or runs to the next comma. Keys are
#: bounded (A1111's are under 50 characters) and no pattern starts with whitespace, so a long
#: prompt line costs linear, not quadratic, time.
PAIR_PATTERN = re.compile(
    r"""
    (?P<key>\w[\w \-/]{1,63}):\s*
    (?P<value>"(?:\\.|[^\\"])+"|[^,]*)
    (?:,|$)
    """,
    re.VERBOSE,
)

#: A1111's rule: the last line is the parameter line only if it holds at least this many pairs.
MIN_PARAMETER_PAIRS = 3


@dataclass(frozen=True)
class AdKey:
    """One per-unit ADetailer infotext key (stage-semantics §1.1), in the extension's order.

    The key is written only when ``gate`` (another field of the unit) is truthy, if a gate is
    given, and only when the value differs from ``dropped_at``, if that is given.
    """

    key: str
    field: str
    gate: str | None = None
    dropped_at: object = None


ADETAILER_KEYS: tuple[AdKey, ...] = (
    AdKey("ADetailer model", "adetailer_model"),
    AdKey("ADetailer model classes", "adetailer_model_classes", dropped_at=""),
    AdKey("ADetailer prompt", "adetailer_prompt", dropped_at=""),
    AdKey("ADetailer negative prompt", "adetailer_negative_prompt", dropped_at=""),
    AdKey("ADetailer confidence", "adetailer_confidence"),
    AdKey("ADetailer method to decide top k masks", "adetailer_mask_filter_method", gate="adetailer_mask_k"),
    AdKey("ADetailer mask only top k", "adetailer_mask_k", gate="adetailer_mask_k"),
    AdKey("ADetailer mask min ratio", "adetailer_mask_min_ratio", dropped_at=0.0),
    AdKey("ADetailer mask max ratio", "adetailer_mask_max_ratio", dropped_at=1.0),
    AdKey("ADetailer x offset", "adetailer_x_offset", dropped_at=0),
    AdKey("ADetailer y offset", "adetailer_y_offset", dropped_at=0),
    AdKey("ADetailer dilate erode", "adetailer_dilate_erode"),
    AdKey("ADetailer mask merge invert", "adetailer_mask_merge_invert", dropped_at="None"),
    AdKey("ADetailer mask blur", "adetailer_mask_blur"),
    AdKey("ADetailer denoising strength", "adetailer_strength"),
    AdKey("ADetailer inpaint only masked", "adetailer_inpaint_only_masked"),
    AdKey(
        "ADetailer inpaint padding",
        "adetailer_inpaint_only_masked_padding",
        gate="adetailer_inpaint_only_masked",
    ),
    AdKey(
        "ADetailer use inpaint width height",
        "adetailer_use_inpaint_width_height",
        gate="adetailer_use_inpaint_width_height",
    ),
    AdKey("ADetailer inpaint width", "adetailer_inpaint_width", gate="adetailer_use_inpaint_width_height"),
    AdKey("ADetailer inpaint height", "adetailer_inpaint_height", gate="adetailer_use_inpaint_width_height"),
    AdKey("ADetailer use separate steps", "adetailer_use_steps", gate="adetailer_use_steps"),
    AdKey("ADetailer steps", "adetailer_steps", gate="adetailer_use_steps"),
    AdKey("ADetailer use separate CFG scale", "adetailer_use_cfg_scale", gate="adetailer_use_cfg_scale"),
    AdKey("ADetailer CFG scale", "adetailer_cfg_scale", gate="adetailer_use_cfg_scale"),
    AdKey("ADetailer use separate checkpoint", "adetailer_use_checkpoint", gate="adetailer_use_checkpoint"),
    AdKey("ADetailer checkpoint", "adetailer_checkpoint", gate="adetailer_use_checkpoint"),
    AdKey("ADetailer use separate VAE", "adetailer_use_vae", gate="adetailer_use_vae"),
    AdKey("ADetailer VAE", "adetailer_vae", gate="adetailer_use_vae"),
    AdKey("ADetailer use separate sampler", "adetailer_use_sampler", gate="adetailer_use_sampler"),
    AdKey("ADetailer sampler", "adetailer_sampler", gate="adetailer_use_sampler"),
    AdKey(
        "ADetailer scheduler", "adetailer_scheduler", gate="adetailer_use_sampler", dropped_at=ADETAILER_SAME
    ),
    AdKey(
        "ADetailer use separate noise multiplier",
        "adetailer_use_noise_multiplier",
        gate="adetailer_use_noise_multiplier",
    ),
    AdKey("ADetailer noise multiplier", "adetailer_noise_multiplier", gate="adetailer_use_noise_multiplier"),
    AdKey("ADetailer use separate CLIP skip", "adetailer_use_clip_skip", gate="adetailer_use_clip_skip"),
    AdKey("ADetailer CLIP skip", "adetailer_clip_skip", gate="adetailer_use_clip_skip"),
)
_ADETAILER_BY_KEY = {k.key: k for k in ADETAILER_KEYS}
# ADetailerConfig.units allows at most this many; checked here so "model 99999th" cannot allocate.
_MAX_ADETAILER_UNITS = 15
_ADETAILER_KEY = re.compile(r"(?P<base>ADetailer .+?)(?: (?P<n>[1-9]\d{0,3})(?:st|nd|rd|th))?")
_HIRES_KEYS = (
    "Hires upscale",
    "Hires resize",
    "Hires steps",
    "Hires upscaler",
    "Hires checkpoint",
    "Hires sampler",
    "Hires schedule type",
    "Hires prompt",
    "Hires negative prompt",
)
#: The run-wide seed, RNG and emphasis keys (A1111 1.10's ``create_infotext`` and prompt encoder).
_SEED_KEYS = ("Variation seed", "Variation seed strength", "Seed resize from", "RNG", "ENSD", "Emphasis")
#: Settings > Sampler parameters (A1111's ``infotext_to_setting_name_mapping``).
_SAMPLER_SETTING_KEYS = (
    "Eta",
    "Eta DDIM",
    "Sigma churn",
    "Sigma tmin",
    "Sigma tmax",
    "Sigma noise",
    "SGM noise multiplier",
    "Discard penultimate sigma",
)
RNG_SOURCES = ("GPU", "CPU", "NV")
EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")
#: A1111's "Hires checkpoint" value for "the first pass's".
SAME_CHECKPOINT = "Use same checkpoint"
#: A1111's "Hires sampler" / "Hires schedule type" values for "the first pass's".
SAME_SAMPLER = "Use same sampler"
SAME_SCHEDULER = "Use same scheduler"
_IMG2IMG_KEYS = (
    "Img2img denoising strength",
    "Img2img steps",
    "Img2img CFG scale",
    "Img2img model",
    "Img2img sampler",
    "Img2img schedule type",
    "Img2img prompt",
    "Img2img negative prompt",
)
_POSTPROCESS_KEYS = ("Postprocess upscale by", "Postprocess upscaler")
_INPAINT_KEYS = ("Mask blur", "Mask mode", "Masked content", "Inpaint area", "Masked area padding")
_BASE_KEYS = ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model", "VAE", "Clip skip")
_KNOWN_KEYS = frozenset(
    (
        *_BASE_KEYS,
        "Denoising strength",
        *_HIRES_KEYS,
        "Refiner",
        "Refiner switch at",
        *_IMG2IMG_KEYS,
        *_POSTPROCESS_KEYS,
        *_SEED_KEYS,
        *_SAMPLER_SETTING_KEYS,
        "Noise multiplier",
        *_INPAINT_KEYS,
    )
)
_REFINER_HASH = re.compile(r"\s*\[[0-9A-Fa-f]+\]$")
_SIZE = re.compile(r"\s*(\d{1,6})\s*x\s*(\d{1,6})\s*")
_SEED_RESIZE = re.compile(r"\s*(-?\d{1,6})\s*x\s*(-?\d{1,6})\s*")


def ordinal_suffix(index: int) -> str:
    """The key suffix of ADetailer unit ``index`` (0-based): ``""``, ``" 2nd"``, ``" 3rd"``, ``" 4th"``..."""
    if index == 0:
        return ""
    n = index + 1
    ending = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f" {n}{ending}"


# -- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedInfotext:
    """An infotext split into its prompt, negative prompt and ``key: value`` parameters.

    ``params`` keep the order of the parameter line; values are unquoted strings.
    """

    prompt: str
    negative_prompt: str
    params: dict[str, str]


def parse_infotext(text: str) -> ParsedInfotext:
    """Split an A1111/StableNew infotext into prompt, negative prompt and parameters.

    A1111's rules: the last line is the parameter line only if it holds at least three
    ``key: value`` pairs (otherwise it belongs to the prompt); the first line starting with
    ``Negative prompt:`` and every line after it form the negative prompt; JSON-quoted values are
    unquoted; a repeated key keeps its first position and its last value. Never raises: text with
    no parameter line comes back as a prompt with empty ``params``. Unlike A1111, lines are not
    stripped, so prompts keep their inner whitespace; ``\\r\\n`` line ends are read as ``\\n``.
    """
    *lines, last = text.replace("\r\n", "\n").strip().split("\n")
    pairs = PAIR_PATTERN.findall(last)
    if len(pairs) < MIN_PARAMETER_PAIRS:
        lines.append(last)
        pairs = []
    prompt, negative = _split_prompts(lines)
    return ParsedInfotext(prompt, negative, {key.strip(): _unquote(value) for key, value in pairs})


def _split_prompts(lines: list[str]) -> tuple[str, str]:
    for i, line in enumerate(lines):
        if line.startswith(NEGATIVE_PREFIX):
            first = line[len(NEGATIVE_PREFIX) :].removeprefix(" ")
            return "\n".join(lines[:i]), "\n".join([first, *lines[i + 1 :]])
    return "\n".join(lines), ""


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            unquoted = json.loads(value)
        except json.JSONDecodeError:
            return value
        return unquoted if isinstance(unquoted, str) else value
    return value


# -- values ------------------------------------------------------------------------------------


def _as_int(key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        pass
    number = _as_float(key, raw, "a whole number")
    if not number.is_integer():
        raise ConfigError(f"{key}: {raw!r} is not a whole number")
    return int(number)


def _as_float(key: str, raw: str, kind: str = "a number") -> float:
    try:
        number = float(raw)
    except ValueError:
        raise ConfigError(f"{key}: {raw!r} is not {kind}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}: {raw!r} is not {kind}")
    return number


def _as_bool(key: str, raw: str) -> bool:
    if raw not in ("True", "False"):
        raise ConfigError(f"{key}: {raw!r} is not True or False")
    return raw == "True"


def _as_size(key: str, raw: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(raw)
    if match is None:
        raise ConfigError(f"{key}: {raw!r} is not a size like 512x768")
    return int(match[1]), int(match[2])


def _as_str(key: str, raw: str) -> str:
    return raw


def _choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def convert(key: str, raw: str) -> str:
        if raw not in choices:
            raise ConfigError(f"{key}: {raw!r} is not one of {', '.join(choices)}")
        return raw

    return convert


_Converter = Callable[[str, str], Any]


def _take(params: Mapping[str, str], spec: Mapping[str, tuple[str, _Converter]]) -> dict[str, Any]:
    """The config fields of ``spec`` (infotext key -> (field, converter)) present in ``params``."""
    return {field: convert(key, params[key]) for key, (field, convert) in spec.items() if key in params}


def _sampler_fields(
    params: Mapping[str, str], sampler_key: str, schedule_key: str, default_schedule: str | None
) -> dict[str, Any]:
    """Sampler and scheduler fields; legacy combined names ("DPM++ 2M Karras") are split."""
    fields: dict[str, Any] = {}
    legacy: str | None = None
    if sampler_key in params:
        fields["sampler"], legacy = split_legacy_sampler(params[sampler_key])
    schedule = params.get(schedule_key) or legacy or (default_schedule if fields else None)
    if schedule is not None:
        fields["scheduler"] = schedule
    return fields


# -- infotext -> RunConfig ---------------------------------------------------------------------

_SAMPLING: dict[str, tuple[str, _Converter]] = {
    "Steps": ("steps", _as_int),
    "CFG scale": ("cfg_scale", _as_float),
}
_HIRES: dict[str, tuple[str, _Converter]] = {
    "Hires upscale": ("hires_upscale_factor", _as_float),
    "Hires steps": ("hires_steps", _as_int),
    "Hires upscaler": ("hires_upscaler_name", _as_str),
    "Denoising strength": ("hires_denoise", _as_float),
}
_IMG2IMG_AFTER_TXT2IMG: dict[str, tuple[str, _Converter]] = {
    "Img2img denoising strength": ("denoise", _as_float),
    "Img2img steps": ("steps", _as_int),
    "Img2img CFG scale": ("cfg_scale", _as_float),
    "Img2img model": ("model", _as_str),
}
_IMG2IMG_PROMPTS: dict[str, tuple[str, _Converter]] = {
    "Img2img prompt": ("prompt", _as_str),
    "Img2img negative prompt": ("negative_prompt", _as_str),
}
_HIRES_PROMPTS: dict[str, tuple[str, _Converter]] = {
    "Hires prompt": ("hires_prompt", _as_str),
    "Hires negative prompt": ("hires_negative_prompt", _as_str),
}
_RUN_WIDE: dict[str, tuple[str, _Converter]] = {
    "Variation seed": ("subseed", _as_int),
    "Variation seed strength": ("subseed_strength", _as_float),
    "RNG": ("rng_source", _choice(RNG_SOURCES)),
    "ENSD": ("eta_noise_seed_delta", _as_int),
    "Emphasis": ("emphasis", _choice(EMPHASIS_MODES)),
}
_SAMPLER_SETTINGS: dict[str, tuple[str, _Converter]] = {
    "Eta DDIM": ("eta", _as_float),
    "Eta": ("eta", _as_float),  # k-diffusion's wins when both are given (it is applied after)
    "Sigma churn": ("s_churn", _as_float),
    "Sigma tmin": ("s_tmin", _as_float),
    "Sigma tmax": ("s_tmax", _as_float),
    "Sigma noise": ("s_noise", _as_float),
    "SGM noise multiplier": ("sgm_noise_multiplier", _as_bool),
    "Discard penultimate sigma": ("always_discard_next_to_last_sigma", _as_bool),
}
_POSTPROCESS: dict[str, tuple[str, _Converter]] = {
    "Postprocess upscale by": ("upscale_factor", _as_float),
    "Postprocess upscaler": ("upscale_model", _as_str),
}


def infotext_to_config(text: str | ParsedInfotext) -> RunConfig:
    """Map an infotext (ours or A1111's) back onto a RunConfig; keys it does not know are ignored.

    A ``Denoising strength`` without hires keys marks an A1111 img2img image: the result then has
    img2img as its first stage (and needs an ``input_image_path`` before it can run). Raises only
    ConfigError: for text with no parameter line, for malformed values (naming the key), and for
    values RunConfig refuses (for example a size that is not a multiple of 8).
    """
    if not isinstance(text, str | ParsedInfotext):
        raise ConfigError(f"an infotext must be text, not {type(text).__name__}")
    parsed = parse_infotext(text) if isinstance(text, str) else text
    params = parsed.params
    if not any(key in _KNOWN_KEYS or _adetailer_key(key) for key in params):
        raise ConfigError(
            "no generation parameters found: expected a last line like "
            "'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512'"
        )
    data: dict[str, Any] = {"prompt": parsed.prompt, "negative_prompt": parsed.negative_prompt}
    if "Seed" in params:
        data["seed"] = _as_int("Seed", params["Seed"])
    data.update(_take(params, _RUN_WIDE))
    if "Seed resize from" in params:
        data["seed_resize_from_w"], data["seed_resize_from_h"] = _seed_resize(params["Seed resize from"])
    data["sampler_settings"] = _take(params, _SAMPLER_SETTINGS)
    img2img_first = "Denoising strength" in params and not _has_any(params, _HIRES_KEYS)
    data["txt2img"] = _txt2img_section(params, img2img_first)
    data["img2img"] = _img2img_section(params, img2img_first)
    data["upscale"] = (
        {"enabled": True, **_take(params, _POSTPROCESS)} if _has_any(params, _POSTPROCESS) else {}
    )
    data["adetailer"] = _adetailer_section(params)
    return RunConfig.from_dict(data)


def _has_any(params: Mapping[str, str], keys: Mapping[str, object] | tuple[str, ...]) -> bool:
    return any(key in params for key in keys)


def _txt2img_section(params: Mapping[str, str], img2img_first: bool) -> dict[str, Any]:
    section: dict[str, Any] = {"enabled": "Steps" in params and not img2img_first}
    if section["enabled"]:
        section.update(_take(params, {**_SAMPLING, "Model": ("model", _as_str)}))
        section.update(_sampler_fields(params, "Sampler", "Schedule type", "Automatic"))
        if "Size" in params:
            section["width"], section["height"] = _as_size("Size", params["Size"])
    section.update(_take(params, {"VAE": ("vae", _as_str), "Clip skip": ("clip_skip", _as_int)}))
    if _has_any(params, _HIRES_KEYS):
        section.update(hires_enabled=True, **_take(params, {**_HIRES, **_HIRES_PROMPTS}))
        section.update(_hires_sampler_fields(params))
        checkpoint = params.get("Hires checkpoint")
        if checkpoint is not None and checkpoint != SAME_CHECKPOINT:
            section["hires_checkpoint"] = _REFINER_HASH.sub("", _as_str("Hires checkpoint", checkpoint))
        if "Hires resize" in params:
            width, height = _as_size("Hires resize", params["Hires resize"])
            section.update(hires_resize_width=width, hires_resize_height=height)
    if "Refiner" in params:
        section.update(refiner_enabled=True, refiner_model_name=_REFINER_HASH.sub("", params["Refiner"]))
    section.update(_take(params, {"Refiner switch at": ("refiner_switch_at", _as_float)}))
    return section


def _img2img_section(params: Mapping[str, str], img2img_first: bool) -> dict[str, Any]:
    if img2img_first:
        base: dict[str, tuple[str, _Converter]] = {
            **_SAMPLING,
            "Denoising strength": ("denoise", _as_float),
            "Model": ("model", _as_str),
        }
        fields = {**_take(params, base), **_sampler_fields(params, "Sampler", "Schedule type", "Automatic")}
    elif _has_any(params, _IMG2IMG_KEYS):
        fields = {
            **_take(params, _IMG2IMG_AFTER_TXT2IMG),
            **_sampler_fields(params, "Img2img sampler", "Img2img schedule type", None),
        }
    else:
        return {}
    fields.update(_take(params, {"Noise multiplier": ("noise_multiplier", _as_float)}))
    return {"enabled": True, **fields, **_take(params, _IMG2IMG_PROMPTS), **_inpaint_fields(params)}


def _lower_text(key: str, raw: str) -> str:
    return _as_str(key, raw).lower()


_INPAINT: dict[str, tuple[str, _Converter]] = {
    "Mask blur": ("mask_blur", _as_int),
    "Mask mode": ("mask_mode", _lower_text),
    "Masked content": ("masked_content", _lower_text),
    "Inpaint area": ("inpaint_area", _lower_text),
    "Masked area padding": ("only_masked_padding", _as_int),
}


def _inpaint_fields(params: Mapping[str, str]) -> dict[str, Any]:
    """A1111's inpaint keys onto img2img settings (the mask itself is never in an infotext)."""
    return _take(params, _INPAINT)


def _seed_resize(raw: str) -> tuple[int, int]:
    """``Seed resize from``; A1111's API wrote ``-1x-1`` for "off" (a side <= 0 is off)."""
    match = _SEED_RESIZE.fullmatch(raw)
    if match is None:
        raise ConfigError(f"Seed resize from: {raw!r} is not a size like 512x768")
    width, height = int(match[1]), int(match[2])
    return (width, height) if width > 0 and height > 0 else (0, 0)


def _hires_sampler_fields(params: Mapping[str, str]) -> dict[str, Any]:
    """``Hires sampler`` / ``Hires schedule type``; A1111's "Use same ..." values mean None."""
    same = {
        k: v
        for k, v in params.items()
        if (k, v) in (("Hires sampler", SAME_SAMPLER), ("Hires schedule type", SAME_SCHEDULER))
    }
    kept = {k: v for k, v in params.items() if k not in same}
    fields = _sampler_fields(kept, "Hires sampler", "Hires schedule type", None)
    return {f"hires_{name}": value for name, value in fields.items()}


def is_mapped_key(key: str) -> bool:
    """True when :func:`infotext_to_config` maps this infotext key onto a RunConfig field."""
    return key in _KNOWN_KEYS or _adetailer_key(key) is not None


def _adetailer_key(key: str) -> tuple[AdKey, int] | None:
    """The ADetailer key and 0-based unit index that an infotext key names, if it names one."""
    match = _ADETAILER_KEY.fullmatch(key)
    if match is None or match["base"] not in _ADETAILER_BY_KEY:
        return None
    return _ADETAILER_BY_KEY[match["base"]], int(match["n"] or 1) - 1


def _adetailer_section(params: Mapping[str, str]) -> dict[str, Any]:
    units: dict[int, dict[str, Any]] = {}
    for key, raw in params.items():
        found = _adetailer_key(key)
        if found is None:
            continue
        spec, index = found
        if index >= _MAX_ADETAILER_UNITS:
            raise ConfigError(f"{key}: ADetailer has at most {_MAX_ADETAILER_UNITS} units")
        units.setdefault(index, {})[spec.field] = _adetailer_value(spec.field)(key, raw)
    if not units:
        return {}
    # Units the infotext does not mention were off; "None" keeps later units at their index.
    unit_list = [{"adetailer_model": "None", **units.get(i, {})} for i in range(max(units) + 1)]
    enabled = any("adetailer_model" in unit for unit in units.values())
    return {"enabled": enabled, "units": unit_list}


def _adetailer_value(field: str) -> _Converter:
    annotation = ADetailerUnit.model_fields[field].annotation
    converters: dict[object, _Converter] = {bool: _as_bool, int: _as_int, float: _as_float}
    return converters.get(annotation, _as_str)
