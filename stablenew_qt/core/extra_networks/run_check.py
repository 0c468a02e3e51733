"""Which prompts a run uses, and the check of their extra-network tags before anything loads.

:func:`prompt_uses` lists every prompt the enabled denoising stages of a RunConfig will encode
(prompt and negative, the hires prompts, the img2img override, active ADetailer units' prompts)
with the checkpoint that encodes it. :func:`check_config_networks` resolves their LoRA tags
against the catalog (missing names with the closest ones, pickle or damaged files, unsupported
types, and, where ``family_of`` knows the checkpoint's family, LoRAs of another family) and
collects the hypernetwork/``dyn`` warnings. Pure Python: the engine supplies the checkpoint
family from headers; the window can pass ``lambda _model: None`` to check names only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..config import RunConfig
from ..errors import ConfigProblem
from ..prompt_parser import extract_extra_networks
from .catalog import ExtraNetworksCatalog
from .lora_info import NetworkFamily
from .requests import LORA_TAG_NAMES, check_loras, hypernetwork_warnings, ignored_dyn_warnings, lora_requests

__all__ = ["PromptUse", "check_config_networks", "prompt_uses"]


@dataclass(frozen=True)
class PromptUse:
    """One prompt a run will encode: the config field it comes from, its text, and the checkpoint
    (name as configured, "" for the first installed) whose base pipeline runs it."""

    field: str
    text: str
    model: str


def prompt_uses(config: RunConfig) -> list[PromptUse]:
    """Every prompt ``config``'s enabled denoising stages will use, with its checkpoint."""
    t2i, i2i, ad = config.txt2img, config.img2img, config.adetailer
    uses: list[PromptUse] = []
    if t2i.enabled:
        uses += [
            PromptUse("prompt", config.prompt, t2i.model),
            PromptUse("negative_prompt", config.negative_prompt, t2i.model),
        ]
        if t2i.hires_enabled:
            uses += [
                PromptUse("txt2img.hires_prompt", t2i.hires_prompt, t2i.model),
                PromptUse("txt2img.hires_negative_prompt", t2i.hires_negative_prompt, t2i.model),
            ]
    if i2i.enabled:
        model = i2i.model or t2i.model
        uses += [
            PromptUse("img2img.prompt", config.prompt if i2i.prompt is None else i2i.prompt, model),
            PromptUse(
                "img2img.negative_prompt",
                config.negative_prompt if i2i.negative_prompt is None else i2i.negative_prompt,
                model,
            ),
        ]
    if ad.enabled:
        own = t2i.model if t2i.enabled else (i2i.model or t2i.model)
        for index, unit in enumerate(ad.units):
            if not unit.active:
                continue
            model = own
            own_checkpoint = (unit.adetailer_checkpoint or "").strip()
            if unit.adetailer_use_checkpoint and own_checkpoint not in ("", "Use same checkpoint", "None"):
                model = own_checkpoint
            uses += [
                PromptUse(f"adetailer.units.{index}.adetailer_prompt", unit.adetailer_prompt, model),
                PromptUse(
                    f"adetailer.units.{index}.adetailer_negative_prompt",
                    unit.adetailer_negative_prompt,
                    model,
                ),
            ]
    return [use for use in uses if "<" in use.text]


def check_config_networks(
    config: RunConfig,
    catalog: ExtraNetworksCatalog,
    family_of: Callable[[str], NetworkFamily | None],
) -> tuple[list[ConfigProblem], list[str]]:
    """The problems (one per bad tag, its field the config field) and warnings of ``config``'s
    extra-network tags. ``family_of(model)`` is the LoRA family of checkpoint ``model``, or None
    when unknown (then the family is not checked). Reads the catalog's scan, never weights."""
    warnings: list[str] = []
    problems: list[ConfigProblem] = []
    uses = prompt_uses(config)
    families: dict[str, NetworkFamily | None] = {}
    for use in uses:
        _text, tags = extract_extra_networks(use.text)
        warnings += hypernetwork_warnings(tags) + ignored_dyn_warnings(tags)
        requests, bad = lora_requests(tags)
        problems += [ConfigProblem(use.field, p.message) for p in bad]
        if not requests:
            continue
        if use.model not in families:
            families[use.model] = family_of(use.model)
        _resolved, found = check_loras(requests, catalog, families[use.model], use.model)
        problems += [ConfigProblem(use.field, p.message) for p in found]
    if not problems:
        warnings += _per_pass_warnings(config, uses)
    return list(dict.fromkeys(problems)), list(dict.fromkeys(warnings))


#: Prompts whose LoRA tags are checked but not applied on their own yet: the stage applies the
#: LoRAs of its main prompt (see docs/extra-networks.md, "In runs").
_STAGE_PROMPT_ONLY = ("txt2img.hires_", "adetailer.units.")


def _per_pass_warnings(config: RunConfig, uses: Sequence[PromptUse]) -> list[str]:
    main = _lora_set(config.prompt) | _lora_set(config.negative_prompt)
    return [
        f"{use.field}: its own LoRA tags are not applied yet; this pass uses the LoRAs of the main prompt"
        for use in uses
        if use.field.startswith(_STAGE_PROMPT_ONLY) and _lora_set(use.text) - main
    ]


def _lora_set(text: str) -> set[str]:
    return {tag.text for tag in extract_extra_networks(text)[1] if tag.name in LORA_TAG_NAMES}
