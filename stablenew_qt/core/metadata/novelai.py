"""NovelAI: the ``Comment`` chunk's JSON (with ``Description``, ``Software: NovelAI``, ``Source``),
in PNG text or, for images whose text chunks were stripped, in the alpha channel's stealth data.

``prompt``/``uc`` are the prompts (V4's ``v4_prompt`` adds character prompts, which A1111 cannot
place; they are noted), ``scale`` the CFG scale, ``sampler`` and ``noise_schedule`` the sampler
and schedule. Emphasis is rewritten for A1111 (:mod:`.nai_emphasis`). NovelAI's models are not
published, so the checkpoint is left for the user to choose; for its SD1-based models A1111's own
NovelAI reader sets clip skip 2, and so does this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .draft import Draft, GenerationSettings, as_float, as_int, as_text, show
from .nai_emphasis import novelai_to_a1111
from .names import NOVELAI_SAMPLERS, NOVELAI_SCHEDULES
from .sources import json_object

_NOTED = {
    "sm": "SMEA",
    "sm_dyn": "SMEA DYN",
    "dynamic_thresholding": "dynamic thresholding",
    "decrisper": "decrisper",
    "variety_plus": "variety+",
}


def is_novelai(chunks: Mapping[str, str]) -> bool:
    """True for NovelAI's text chunks (its Software tag, or a Comment shaped like its JSON)."""
    if chunks.get("Software", "").startswith("NovelAI"):
        return True
    comment = json_object(chunks.get("Comment"))
    return comment is not None and "uc" in comment and ("scale" in comment or "sampler" in comment)


def read_novelai(chunks: Mapping[str, str], size: tuple[int, int] | None, source: str) -> GenerationSettings:
    """Settings from NovelAI's chunks; ``size`` is the image's, for Comments without one."""
    comment = json_object(chunks.get("Comment"))
    if comment is None:
        raise ConfigError("its Comment chunk is not NovelAI's JSON settings")
    draft = Draft("NovelAI", source)
    _prompts(draft, comment, chunks.get("Description", ""))
    t2i = draft.txt2img
    steps, scale = as_int(comment.get("steps")), as_float(comment.get("scale"))
    if steps is not None:
        t2i["steps"] = steps
    if scale is not None:
        t2i["cfg_scale"] = scale
    if "seed" in comment:
        draft.set_seed(comment["seed"])
    _sampler(draft, comment)
    width, height = as_int(comment.get("width")), as_int(comment.get("height"))
    if not (width and height) and size:
        width, height = size
    if width and height:
        t2i.update(width=width, height=height)
    _model(draft, chunks.get("Source", ""))
    _extras(draft, comment)
    return draft.finish()


def _prompts(draft: Draft, comment: dict[str, Any], description: str) -> None:
    prompt = _caption(comment.get("v4_prompt")) or as_text(comment.get("prompt")) or description
    negative = _caption(comment.get("v4_negative_prompt")) or as_text(comment.get("uc")) or ""
    (prompt, p_emph), (negative, n_emph) = novelai_to_a1111(prompt), novelai_to_a1111(negative)
    draft.top.update(prompt=prompt, negative_prompt=negative)
    if p_emph or n_emph:
        draft.note(
            "NovelAI's {braces} and [brackets] (×/÷1.05 each) are rewritten as A1111 weights (text:1.05)"
        )
    characters = _characters(comment.get("v4_prompt"))
    if characters:
        draft.note(f"NovelAI character prompts are not placed here: {' | '.join(characters)[:300]}")


def _caption(v4: object) -> str | None:
    caption = v4.get("caption") if isinstance(v4, dict) else None
    return as_text(caption.get("base_caption")) if isinstance(caption, dict) else None


def _characters(v4: object) -> list[str]:
    caption = v4.get("caption") if isinstance(v4, dict) else None
    chars = caption.get("char_captions") if isinstance(caption, dict) else None
    found = (
        [as_text(c.get("char_caption")) for c in chars if isinstance(c, dict)]
        if isinstance(chars, list)
        else []
    )
    return [c for c in found if c]


def _sampler(draft: Draft, comment: dict[str, Any]) -> None:
    name, schedule = as_text(comment.get("sampler")), as_text(comment.get("noise_schedule"))
    sampler = NOVELAI_SAMPLERS.get(name) if name else None
    if name and sampler is None:
        fallback = "Euler a" if name.startswith("nai_smea") else None
        draft.note(f"NovelAI sampler {name!r} has no A1111 equivalent; {fallback or 'the default'} is used")
        sampler = fallback
    scheduler = NOVELAI_SCHEDULES.get(schedule) if schedule else None
    if schedule and scheduler is None:
        draft.note(f"NovelAI noise schedule {schedule!r} has no A1111 equivalent; Automatic is used")
    draft.set_sampler(draft.txt2img, sampler, scheduler)


def _model(draft: Draft, source: str) -> None:
    draft.note(
        f"made with NovelAI's own model ({source or 'unknown'}), which is not published: choose a checkpoint"
    )
    if source.startswith("Stable Diffusion") and "XL" not in source:
        draft.txt2img["clip_skip"] = 2
        draft.top["eta_noise_seed_delta"] = 31337
        draft.note(
            "NovelAI's SD1-based models ran with clip skip 2 and eta noise seed delta 31337 (both set)"
        )


def _extras(draft: Draft, comment: dict[str, Any]) -> None:
    for key, label in _NOTED.items():
        if comment.get(key) is True:
            draft.note(f"NovelAI's {label} has no equivalent here")
    for key, neutral in (("cfg_rescale", 0.0), ("uncond_scale", 1.0)):
        value = as_float(comment.get(key))
        if value is not None and value != neutral:
            draft.note(f"NovelAI's {key.replace('_', ' ')} {show(value)} has no equivalent here")
    strength = as_float(comment.get("strength"))
    if strength is not None and "image" in str(comment.get("request_type", "")).lower():
        moved = {
            k: draft.txt2img.pop(k)
            for k in ("steps", "cfg_scale", "sampler", "scheduler")
            if k in draft.txt2img
        }
        draft.txt2img["enabled"] = False
        draft.img2img.update(enabled=True, denoise=strength, **moved)
        draft.note("NovelAI img2img: choose the input image (its noise setting has no equivalent here)")
