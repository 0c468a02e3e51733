"""A1111-style ``parameters`` text: A1111 itself, Forge, SD.Next, Fooocus's "a1111" scheme, Civitai.

The text is read exactly as :func:`~stablenew_qt.core.infotext.infotext_to_config` reads it
(stage-semantics §6.1). Before that, names only other programs write are translated (SD.Next's
sampler labels and ``Refiner start``, Fooocus's ``Lora weights``) and sampler or schedule names
with no equivalent are dropped with a note, so they do not cost the rest of the settings. Every
key that still has no RunConfig field is named in a note.
"""

from __future__ import annotations

import re

from ..config import RunConfig
from ..errors import ConfigError, ConfigProblem
from ..infotext_parse import (
    EMPHASIS_MODES,
    RNG_SOURCES,
    SAME_SAMPLER,
    SAME_SCHEDULER,
    ParsedInfotext,
    infotext_to_config,
    is_mapped_key,
    parse_infotext,
)
from ..samplers import SAMPLERS, SCHEDULERS, split_legacy_sampler
from .draft import GenerationSettings, show
from .names import SDNEXT_SAMPLERS, lora_tag, with_tags

#: Keys that record where an image came from rather than how it looks: no note for them.
_INFORMATIONAL = frozenset(
    {
        "Model hash",
        "VAE hash",
        "Version",
        "Lora hashes",
        "TI hashes",
        "Hashes",
        "App",
        "Backend",
        "Operations",
        "Pipeline",
        "Index",
        "Civitai resources",
        "Civitai metadata",
        "Created Date",
        "Hires size",
        "Raw prompt",
        "Raw negative prompt",
        "Lora weights",
        "ADetailer version",
        "Init image hash",
        "Init image size",
    }
)
_SAMPLER_KEYS = (
    ("Sampler", "Schedule type"),
    ("Img2img sampler", "Img2img schedule type"),
    ("Hires sampler", "Hires schedule type"),
)
#: Keys whose value must be one of a few names: (key, accepted names, what is used instead).
_CHOICE_KEYS = (
    ("RNG", RNG_SOURCES, "GPU"),
    ("Emphasis", EMPHASIS_MODES, "Original"),
)
_HIRES_KEYS = ("Hires upscale", "Hires resize", "Hires steps", "Hires upscaler", "Denoising strength")
_FOOOCUS_LORA = re.compile(r"\s*([^,:]+?)\s*:\s*(-?\d+(?:\.\d+)?)\s*(?:,|$)")
_MAX_NAMED_KEYS = 20


def generator_of(params: dict[str, str]) -> str:
    """Which program wrote an A1111-style parameter line, from its ``App`` and ``Version`` keys."""
    version = params.get("Version", "")
    if params.get("App") == "SD.Next":
        return "SD.Next"
    if re.match(r"f\d", version) or "forge" in version.lower():
        return "Forge"
    for prefix, name in (("Fooocus", "Fooocus"), ("stablenew-qt", "StableNew Qt"), ("ComfyUI", "ComfyUI")):
        if version.startswith(prefix):
            return name
    if "Civitai resources" in params or "Civitai metadata" in params:
        return "Civitai"
    return "A1111"


def read_a1111_text(text: str, source: str) -> GenerationSettings:
    """Settings from A1111-style parameters text. Raises ConfigError when a value is malformed
    (naming its key) or when the text has a parameter line but no key this app knows."""
    parsed = parse_infotext(text)
    if not parsed.params:
        if not parsed.prompt.strip():
            raise ConfigError("its parameters text is empty")
        prompt_only = RunConfig.from_dict(
            {"prompt": parsed.prompt, "negative_prompt": parsed.negative_prompt}
        )
        note = "only a prompt was stored (no settings line): the other settings keep their defaults"
        return GenerationSettings(prompt_only, "A1111", (note,), source)
    generator = generator_of(parsed.params)
    notes: list[str] = []
    params = _prepared(dict(parsed.params), generator, notes)
    prompt = parsed.prompt
    if generator == "Fooocus" and "Lora weights" in params:
        prompt = with_tags(prompt, _fooocus_loras(params["Lora weights"]))
        notes.append("LoRAs are kept as <lora:name:weight> tags in the prompt, as A1111 writes them")
    try:
        config = infotext_to_config(ParsedInfotext(prompt, parsed.negative_prompt, params))
    except ConfigError as exc:
        lead = ConfigProblem("", "its generation parameters cannot be used:")
        raise ConfigError([lead, *exc.problems]) from None
    notes += _unmapped(params)
    return GenerationSettings(config, generator, tuple(notes), source)


def _prepared(params: dict[str, str], generator: str, notes: list[str]) -> dict[str, str]:
    """Translate other programs' keys into A1111's; drop sampler names that have no equivalent."""
    if params.get("Second pass") == "False":
        for key in _HIRES_KEYS:
            params.pop(key, None)
        notes.append("SD.Next's second pass was off, so its hires keys are not used")
    start = params.pop("Refiner start", None)
    if start is not None and "Refiner" in params and "Refiner switch at" not in params:
        params["Refiner switch at"] = start
    for sampler_key, schedule_key in _SAMPLER_KEYS:
        _check_sampler(params, sampler_key, generator, notes)
        schedule = params.get(schedule_key)
        if schedule is not None and schedule not in (*SCHEDULERS, SAME_SCHEDULER):
            del params[schedule_key]
            notes.append(
                f"{generator}'s schedule type {schedule!r} has no equivalent here; Automatic is used"
            )
    for key, choices, default in _CHOICE_KEYS:
        value = params.get(key)
        if value is not None and value not in choices:
            del params[key]
            notes.append(f"{generator}'s {key} {value!r} has no equivalent here; {default} is used")
    return params


def _check_sampler(params: dict[str, str], key: str, generator: str, notes: list[str]) -> None:
    if key not in params or params[key] == SAME_SAMPLER:
        return
    written = params[key]
    name, legacy_schedule = split_legacy_sampler(written)
    name = SDNEXT_SAMPLERS.get(name, name)
    if name in SAMPLERS:
        params[key] = f"{name} {legacy_schedule}" if legacy_schedule else name
        return
    del params[key]
    default = {
        "Sampler": "the default sampler is used",
        "Hires sampler": "the first pass's sampler is used",
    }.get(key, "the txt2img sampler is used")
    notes.append(f"{generator}'s sampler {written!r} has no equivalent here; {default}")


def _fooocus_loras(weights: str) -> list[str]:
    return [lora_tag(name, float(weight)) for name, weight in _FOOOCUS_LORA.findall(weights)]


def _unmapped(params: dict[str, str]) -> list[str]:
    keys = [k for k in params if not is_mapped_key(k) and k not in _INFORMATIONAL]
    notes = [f"'{key}: {show(params[key])}' has no equivalent here" for key in keys[:_MAX_NAMED_KEYS]]
    if len(keys) > _MAX_NAMED_KEYS:
        rest = keys[_MAX_NAMED_KEYS:]
        notes.append(f"{len(rest)} more keys have no equivalent here: {', '.join(rest)[:300]}")
    return notes
