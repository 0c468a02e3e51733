"""The words the window uses for each RunConfig field, so messages name what the user sees.

"input_image_path: … set input_image_path" reads to a user as "Input image: … set Input image";
"txt2img.width: must be a multiple of 8" as "Width (txt2img): must be a multiple of 8" (issue 17,
item 9). One table, :data:`FIELD_LABELS`, for the window and the CLI; a path it does not list is
shown in words made from its last part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import ConfigProblem

#: RunConfig path -> the label the window shows next to that knob.
FIELD_LABELS: dict[str, str] = {
    "prompt": "Prompt",
    "negative_prompt": "Negative prompt",
    "seed": "Seed",
    "batch_size": "Batch size",
    "batch_count": "Batch count",
    "subseed": "Variation seed",
    "subseed_strength": "Variation strength",
    "seed_resize_from_w": "Resize seed from width",
    "seed_resize_from_h": "Resize seed from height",
    "rng_source": "RNG source",
    "eta_noise_seed_delta": "Eta noise seed delta",
    "emphasis": "Emphasis mode",
    "input_image_path": "Input image",
    "txt2img.enabled": "txt2img",
    "txt2img.model": "Model (txt2img)",
    "txt2img.vae": "VAE",
    "txt2img.sampler": "Sampler",
    "txt2img.scheduler": "Schedule",
    "txt2img.steps": "Steps",
    "txt2img.cfg_scale": "CFG",
    "txt2img.width": "Width",
    "txt2img.height": "Height",
    "txt2img.clip_skip": "Clip skip",
    "txt2img.refiner_enabled": "Use a refiner",
    "txt2img.refiner_model_name": "Refiner model",
    "txt2img.refiner_switch_at": "Switch at",
    "txt2img.hires_enabled": "Hires fix",
    "txt2img.hires_upscaler_name": "Hires upscaler",
    "txt2img.hires_upscale_factor": "Upscale by",
    "txt2img.hires_resize_width": "Resize width to",
    "txt2img.hires_resize_height": "Resize height to",
    "txt2img.hires_steps": "Hires steps",
    "txt2img.hires_denoise": "Hires denoise",
    "txt2img.hires_checkpoint": "Hires checkpoint",
    "txt2img.hires_sampler": "Hires sampler",
    "txt2img.hires_scheduler": "Hires schedule",
    "txt2img.hires_prompt": "Hires prompt",
    "txt2img.hires_negative_prompt": "Hires negative prompt",
    "img2img.enabled": "img2img",
    "img2img.model": "Model (img2img)",
    "img2img.denoise": "Denoise (img2img)",
    "img2img.steps": "Steps (img2img)",
    "img2img.cfg_scale": "CFG (img2img)",
    "img2img.sampler": "Sampler (img2img)",
    "img2img.prompt": "Prompt override",
    "img2img.negative_prompt": "Negative override",
    "img2img.noise_multiplier": "Noise multiplier",
    "img2img.width": "Width (img2img)",
    "img2img.height": "Height (img2img)",
    "img2img.resize_mode": "Resize mode",
    "img2img.mask_path": "Mask",
    "img2img.mask_blur": "Mask blur",
    "img2img.masked_content": "Masked content",
    "img2img.inpaint_area": "Inpaint area",
    "img2img.only_masked_padding": "Only masked padding",
    "upscale.enabled": "Upscale",
    "upscale.upscale_model": "Upscaler",
    "upscale.upscale_factor": "Scale by",
    "adetailer.enabled": "ADetailer",
    "adetailer.units": "ADetailer units",
}
_UNIT = re.compile(r"^adetailer\.units\.(\d+)\.(\w+)$")
_LEADING_PATH = re.compile(r"^([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*): ")
# Longest first, so "txt2img.hires_steps" is replaced before "txt2img.steps" could match part of it.
_PATHS = re.compile(
    r"(?<![\w.])("
    + "|".join(re.escape(p) for p in sorted(FIELD_LABELS, key=len, reverse=True))
    + r")(?![\w.])"
)


def field_label(path: str) -> str:
    """The label for ``path``: from :data:`FIELD_LABELS`, "ADetailer unit 2: Detector" for a
    unit's field, else words made from its last part ("hires_cfg_scale" -> "Hires cfg scale")."""
    if path in FIELD_LABELS:
        return FIELD_LABELS[path]
    unit = _UNIT.match(path)
    if unit:
        return f"ADetailer unit {int(unit.group(1)) + 1}: {_words(unit.group(2).removeprefix('adetailer_'))}"
    return _words(path.rsplit(".", 1)[-1]) if path else ""


def in_user_words(problem: ConfigProblem) -> str:
    """``problem`` as the window says it: the field's label, and labels for paths in the message."""
    message = _PATHS.sub(_label_of, problem.message)
    return f"{field_label(problem.field)}: {message}" if problem.field else message


def all_in_user_words(problems: Iterable[ConfigProblem]) -> str:
    """One line per problem, in the window's words."""
    return "\n".join(in_user_words(p) for p in problems)


def message_in_user_words(text: str) -> str:
    """A run's error text (``str(ConfigError)`` and the like, one problem per line, each maybe
    "<config path>: …") in the window's words: a leading config path becomes its label and known
    paths inside the message become theirs. Lines that do not start with a config path keep their
    words (only the known paths in them are replaced)."""
    lines = []
    for line in text.split("\n"):
        head = _LEADING_PATH.match(line)
        if head and _is_config_path(head.group(1)):
            lines.append(f"{field_label(head.group(1))}: {_PATHS.sub(_label_of, line[head.end() :])}")
        else:
            lines.append(_PATHS.sub(_label_of, line))
    return "\n".join(lines)


def _label_of(match: re.Match[str]) -> str:
    return FIELD_LABELS[match.group(1)]


def _is_config_path(path: str) -> bool:
    return path in FIELD_LABELS or bool(_UNIT.match(path)) or "_" in path or "." in path


def _words(name: str) -> str:
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]
