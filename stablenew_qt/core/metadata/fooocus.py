"""Fooocus: the JSON it writes into the ``parameters`` chunk (or EXIF UserComment) when its
metadata scheme is "fooocus" (``fooocus_scheme`` says so; the "a1111" scheme is plain A1111
text and is read by :mod:`.a1111`).

Fooocus encodes each entry of ``full_prompt`` (the typed prompt after its styles and its GPT-2
"Fooocus V2" expansion) separately and concatenates them, which is A1111's ``BREAK``; so the
prompt restored is the ``full_prompt`` entries joined by ``BREAK``, and the styles are named in
a note. Its sampler and scheduler names are ComfyUI's.
"""

from __future__ import annotations

import re

from .draft import Draft, GenerationSettings, as_float, as_int, as_text, show
from .names import COMFY_SAMPLERS, COMFY_SCHEDULERS, model_stem

_RESOLUTION = re.compile(r"\(\s*'?(\d{2,5})'?\s*,\s*'?(\d{2,5})'?\s*\)")
_LORA_COMBINED = re.compile(r"^(?:(True|False) : )?(.+?) : (-?\d+(?:\.\d+)?)$")
#: Fooocus settings that change the image but have no A1111 counterpart.
_NOTED = ("sharpness", "adm_guidance", "adaptive_cfg", "refiner_swap_method", "freeu", "overwrite_switch")
_PERFORMANCE_NOTE = "Fooocus's {} performance preset works through a LoRA and few steps; both are restored"


def is_fooocus(data: dict[str, object], scheme: str | None) -> bool:
    """True for Fooocus's own JSON scheme."""
    version = data.get("version")
    return (
        scheme == "fooocus"
        or data.get("metadata_scheme") == "fooocus"
        or (isinstance(version, str) and version.startswith("Fooocus"))
        or {"guidance_scale", "base_model", "full_prompt"} <= data.keys()
    )


def read_fooocus(data: dict[str, object], source: str) -> GenerationSettings:
    """Settings from Fooocus's JSON metadata."""
    draft = Draft("Fooocus", source)
    draft.top["prompt"] = _prompt(draft, data.get("full_prompt"), data.get("prompt"))
    draft.top["negative_prompt"] = _prompt(
        draft, data.get("full_negative_prompt"), data.get("negative_prompt")
    )
    t2i = draft.txt2img
    steps, cfg = as_int(data.get("steps")), as_float(data.get("guidance_scale"))
    if steps is not None:
        t2i["steps"] = steps
    if cfg is not None:
        t2i["cfg_scale"] = cfg
    if "seed" in data:
        draft.set_seed(data["seed"])
    _sampler(draft, data)
    _resolution(draft, data.get("resolution"))
    _models(draft, data)
    _loras(draft, data)
    clip_skip = as_int(data.get("clip_skip"))
    if clip_skip is not None and clip_skip > 1:
        t2i["clip_skip"] = clip_skip
    styles = as_text(data.get("styles"))
    if styles and styles.strip("[] "):
        draft.note(
            f"Fooocus styles {styles} are already part of the restored prompt; no style is applied here"
        )
    for key in _NOTED:
        if key in data and data[key] not in (None, "", "None"):
            draft.note(f"Fooocus's {key.replace('_', ' ')} ({show(data[key])}) has no equivalent here")
    performance = as_text(data.get("performance"))
    if performance and performance not in ("Speed", "Quality"):
        draft.note(_PERFORMANCE_NOTE.format(performance))
    return draft.finish()


def _prompt(draft: Draft, full: object, typed: object) -> str:
    if isinstance(full, list) and full and all(isinstance(p, str) for p in full):
        pieces = [p.strip() for p in full if isinstance(p, str) and p.strip()]
        if len(pieces) > 1:
            draft.note("Fooocus encodes its styled prompt in pieces; they are joined with A1111's BREAK")
        return " BREAK ".join(pieces)
    return typed if isinstance(typed, str) else ""


def _sampler(draft: Draft, data: dict[str, object]) -> None:
    name, schedule = as_text(data.get("sampler")), as_text(data.get("scheduler"))
    sampler = COMFY_SAMPLERS.get(name) if name else None
    scheduler = COMFY_SCHEDULERS.get(schedule) if schedule else None
    if name and sampler is None:
        draft.note(f"Fooocus sampler {name!r} has no A1111 equivalent; the default sampler is used")
    if schedule and scheduler is None:
        draft.note(f"Fooocus scheduler {schedule!r} has no A1111 equivalent; Automatic is used")
    draft.set_sampler(draft.txt2img, sampler, scheduler)


def _resolution(draft: Draft, value: object) -> None:
    match = _RESOLUTION.search(value) if isinstance(value, str) else None
    if match:
        draft.txt2img.update(width=int(match[1]), height=int(match[2]))
    elif isinstance(value, list | tuple) and len(value) == 2:
        width, height = as_int(value[0]), as_int(value[1])
        if width and height:
            draft.txt2img.update(width=width, height=height)


def _models(draft: Draft, data: dict[str, object]) -> None:
    base = as_text(data.get("base_model"))
    if base:
        draft.txt2img["model"] = model_stem(base)
    refiner = as_text(data.get("refiner_model"))
    if refiner and refiner != "None":
        switch = as_float(data.get("refiner_switch"))
        draft.txt2img.update(refiner_enabled=True, refiner_model_name=model_stem(refiner))
        if switch is not None:
            draft.txt2img["refiner_switch_at"] = switch
    vae = as_text(data.get("vae"))
    if vae and vae not in ("Default (model)", "None"):
        draft.txt2img["vae"] = model_stem(vae)


def _loras(draft: Draft, data: dict[str, object]) -> None:
    loras = data.get("loras")
    if isinstance(loras, list) and loras:
        for item in loras:
            if isinstance(item, list | tuple) and len(item) >= 2 and isinstance(item[0], str):
                weight = as_float(item[1])
                if weight is not None:
                    draft.add_lora(item[0], weight)
        return
    for key in sorted(k for k in data if k.startswith("lora_combined_")):
        match = _LORA_COMBINED.match(str(data[key]))
        if match and match[1] != "False" and match[2] != "None":
            draft.add_lora(match[2], float(match[3]))
