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

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..config import RunConfig
from ..errors import ConfigProblem
from ..prompt_parser import extract_extra_networks
from .catalog import ExtraNetworksCatalog
from .lora_info import NetworkFamily
from .requests import check_loras, hypernetwork_warnings, ignored_dyn_warnings, lora_requests

__all__ = ["PromptUse", "check_config_networks", "prompt_uses"]

_SEP = re.compile(r"\s*\[SEP\]\s*")  # ADetailer's per-detection prompt separator


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
            field = f"adetailer.units.{index}"
            for name, text, main in (
                ("adetailer_prompt", unit.adetailer_prompt, config.prompt),
                ("adetailer_negative_prompt", unit.adetailer_negative_prompt, config.negative_prompt),
            ):
                uses.append(PromptUse(f"{field}.{name}", text, model))
                if model != own and _uses_main(text):  # the main prompt's LoRAs on its checkpoint
                    uses.append(PromptUse(f"{field}.{name}", main, model))
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
    return list(dict.fromkeys(problems)), list(dict.fromkeys(warnings))


def _uses_main(unit_prompt: str) -> bool:
    """Whether an ADetailer unit prompt takes in the main prompt (a blank ``[SEP]`` part or
    ``[PROMPT]``), and with it the main prompt's LoRA tags."""
    return "[PROMPT]" in unit_prompt or any(not part.strip() for part in _SEP.split(unit_prompt))
