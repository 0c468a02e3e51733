"""InvokeAI, all generations of its metadata.

- 3.x and later: ``invokeai_metadata``, a flat JSON object (``positive_prompt``, ``scheduler``,
  ``model: {name | model_name, base | base_model}``, ``loras: [{model | lora, weight}]``, refiner
  and high-resolution-fix keys). 3.0 betas wrote ``invokeai`` with ``positive_conditioning``.
- 2.x: ``sd-metadata``, JSON whose ``image`` object holds the settings; the negative prompt is
  the ``[bracketed]`` part of the prompt.
- 1.x: ``Dream``, a command line: ``"prompt [negative]" -s steps -S seed -W w -H h -C cfg -A sampler``.

InvokeAI's clip skip counts skipped layers (0 = none); A1111's counts from 1, so it is one more.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from ..samplers import AUTOMATIC_SCHEDULE
from .draft import Draft, GenerationSettings, as_float, as_int, as_text
from .names import INVOKEAI_LEGACY_SAMPLERS, INVOKEAI_SAMPLERS, model_stem

#: InvokeAI's optimal first-pass size per base model (its high-resolution fix starts there).
_OPTIMAL = {"sd-1": 512, "sd-2": 768, "sdxl": 1024, "sdxl-refiner": 1024}
_NEGATIVE = re.compile(r"\[(.+?)\]", re.DOTALL)
_COMPEL = re.compile(r"\)[-+]|\)\d|\w[+-]+(?=[\s,]|$)|\.(and|blend)\(")
_DREAM_OPTIONS = {
    "-s": "steps",
    "--steps": "steps",
    "-S": "seed",
    "--seed": "seed",
    "-W": "width",
    "--width": "width",
    "-H": "height",
    "--height": "height",
    "-C": "cfg_scale",
    "--cfg_scale": "cfg_scale",
    "-A": "sampler",
    "--sampler": "sampler",
    "-f": "strength",
    "--strength": "strength",
    "-I": "init_img",
    "--init_img": "init_img",
}


def read_invokeai_v3(data: dict[str, Any], source: str) -> GenerationSettings:
    """Settings from ``invokeai_metadata`` (InvokeAI 3 and later) or ``invokeai`` (3.0 betas)."""
    draft = Draft("InvokeAI", source)
    positive = data.get("positive_prompt", data.get("positive_conditioning"))
    negative = data.get("negative_prompt", data.get("negative_conditioning"))
    _prompts(draft, as_text(positive) or "", as_text(negative) or "")
    _common(draft, data, _scheduler_v3(draft, as_text(data.get("scheduler"))))
    base = _model(draft, data.get("model"))
    clip_skip = as_int(data.get("clip_skip"))
    if clip_skip is not None and clip_skip > 0:
        draft.txt2img["clip_skip"] = clip_skip + 1
    vae = _name(data.get("vae"))
    if vae:
        draft.txt2img["vae"] = model_stem(vae)
    loras = data.get("loras")
    for item in loras if isinstance(loras, list) else []:
        if isinstance(item, dict):
            name, weight = _name(item.get("model", item.get("lora"))), as_float(item.get("weight"))
            if name and weight is not None:
                draft.add_lora(name, weight)
    _refiner(draft, data)
    if data.get("hrf_enabled") is True:
        _hrf(draft, data, base)
    _extras(draft, data)
    return draft.finish()


def _common(draft: Draft, data: dict[str, Any], sampler: tuple[str | None, str | None]) -> None:
    mode = str(data.get("generation_mode", data.get("type", "txt2img")))
    img2img = any(word in mode for word in ("img2img", "l2l", "inpaint", "outpaint")) or bool(
        data.get("init_image")
    )
    section = draft.img2img if img2img else draft.txt2img
    steps, cfg = as_int(data.get("steps")), as_float(data.get("cfg_scale"))
    if steps is not None:
        section["steps"] = steps
    if cfg is not None:
        section["cfg_scale"] = cfg
    draft.set_sampler(section, *sampler)
    if "seed" in data:
        draft.set_seed(data["seed"])
    width, height = as_int(data.get("width")), as_int(data.get("height"))
    if width and height and not img2img:
        draft.txt2img.update(width=width, height=height)
    if img2img:
        draft.txt2img["enabled"] = False
        draft.img2img.update(enabled=True, denoise=as_float(data.get("strength")) or 0.75)
        init = as_text(data.get("init_image")) or as_text(data.get("init_img")) or "the input image"
        draft.note(f"img2img from {init}: choose it as the input image")
        if "inpaint" in mode or "outpaint" in mode:
            draft.note(f"InvokeAI's {mode} (with a mask) is restored as plain img2img")


def _scheduler_v3(draft: Draft, name: str | None) -> tuple[str | None, str | None]:
    """An InvokeAI 3 scheduler name: the sampler, plus Karras for the ``_k`` variants."""
    if not name:
        return None, None
    karras = name.endswith("_k")
    sampler = INVOKEAI_SAMPLERS.get(name.removesuffix("_k"))
    if sampler is None:
        draft.note(f"InvokeAI scheduler {name!r} has no A1111 equivalent; the default sampler is used")
        return None, None
    # Without _k, InvokeAI uses diffusers' default spacing: A1111's Uniform for samplers whose
    # Automatic schedule would be Karras or Exponential, Automatic (the model's own) otherwise.
    return sampler, "Karras" if karras else ("Uniform" if sampler in AUTOMATIC_SCHEDULE else "Automatic")


def _name(model: object) -> str | None:
    if isinstance(model, dict):
        return as_text(model.get("name")) or as_text(model.get("model_name"))
    return as_text(model)


def _model(draft: Draft, model: object) -> str | None:
    name = _name(model)
    section = draft.img2img if draft.img2img.get("enabled") else draft.txt2img
    if name:
        section["model"] = model_stem(name)
    base = model.get("base", model.get("base_model")) if isinstance(model, dict) else None
    return base if isinstance(base, str) else None


def _refiner(draft: Draft, data: dict[str, Any]) -> None:
    name = _name(data.get("refiner_model"))
    if not name:
        return
    draft.txt2img.update(refiner_enabled=True, refiner_model_name=model_stem(name))
    start = as_float(data.get("refiner_start"))
    if start is not None:
        draft.txt2img["refiner_switch_at"] = start
    own = [k for k in ("refiner_steps", "refiner_cfg_scale", "refiner_scheduler") if data.get(k) is not None]
    if own:
        draft.note(
            f"the refiner's own {', '.join(k.removeprefix('refiner_') for k in own)} are not used here"
        )


def _hrf(draft: Draft, data: dict[str, Any], base: str | None) -> None:
    """InvokeAI's high-resolution fix: the first pass at the model's optimal size (InvokeAI's
    own rule), then an upscale to the recorded size and a second pass at ``hrf_strength``."""
    width, height = as_int(data.get("width")), as_int(data.get("height"))
    if not (width and height):
        return
    first_w, first_h = _hrf_first_pass(_OPTIMAL.get(base or "", 1024), width, height)
    area_ratio = (width * height) / (first_w * first_h)
    method = as_text(data.get("hrf_method")) or "ESRGAN"
    upscaler = (
        ("RealESRGAN_x4plus" if area_ratio > 2 else "RealESRGAN_x2plus") if method == "ESRGAN" else "Lanczos"
    )
    if method != "ESRGAN":
        draft.note(f"InvokeAI's {method!r} resize for its high-resolution fix is done with Lanczos here")
    draft.txt2img.update(
        width=first_w,
        height=first_h,
        hires_enabled=True,
        hires_resize_width=width,
        hires_resize_height=height,
        hires_upscaler_name=upscaler,
        hires_steps=0,
    )
    strength = as_float(data.get("hrf_strength"))
    if strength is not None:
        draft.txt2img["hires_denoise"] = strength


def _hrf_first_pass(optimal: int, width: int, height: int) -> tuple[int, int]:
    aspect = width / height
    minimum, area = math.floor(optimal * 0.5), optimal * optimal
    if aspect > 1.0:
        first_h = max(minimum, math.sqrt(area / aspect))
        first_w = first_h * aspect
    else:
        first_w = max(minimum, math.sqrt(area * aspect))
        first_h = first_w / aspect
    return _round_to_8(min(width, first_w)), _round_to_8(min(height, first_h))


def _round_to_8(value: float) -> int:
    """InvokeAI's ``roundToMultiple(Math.floor(v), 8)`` (JavaScript rounds halves up)."""
    return max(64, math.floor(math.floor(value) / 8 + 0.5) * 8)


def _extras(draft: Draft, data: dict[str, Any]) -> None:
    for key in ("controlnets", "ipAdapters", "t2iAdapters"):
        if isinstance(data.get(key), list) and data[key]:
            draft.note(f"InvokeAI {key} ({len(data[key])}) have no equivalent here")
    if data.get("seamless_x") is True or data.get("seamless_y") is True:
        draft.note("InvokeAI's seamless tiling has no equivalent here")
    rescale = as_float(data.get("cfg_rescale_multiplier"))
    if rescale:
        draft.note(f"InvokeAI's CFG rescale multiplier {rescale} has no equivalent here")
    style = as_text(data.get("positive_style_prompt"))
    if style and style != draft.top.get("prompt"):
        draft.note("InvokeAI's separate SDXL style prompt is not used")


def _prompts(draft: Draft, positive: str, negative: str) -> None:
    draft.top.update(prompt=positive, negative_prompt=negative)
    if _COMPEL.search(positive + " " + negative):
        draft.note(
            "InvokeAI writes weights in Compel's syntax ((word)1.2, word+), which A1111 reads differently"
        )


def _split_negative(prompt: str) -> tuple[str, str]:
    """InvokeAI 1.x/2.x: the ``[bracketed]`` parts of a prompt are its negative prompt."""
    negatives = [m.strip().strip(",").strip() for m in _NEGATIVE.findall(prompt)]
    positive = " ".join(_NEGATIVE.sub(" ", prompt).split())
    return positive, ", ".join(n for n in negatives if n)


def read_invokeai_v2(data: dict[str, Any], source: str) -> GenerationSettings:
    """Settings from ``sd-metadata`` (InvokeAI 1.15 to 2.3)."""
    draft = Draft("InvokeAI", source)
    found = data.get("image")
    image: dict[str, Any] = found if isinstance(found, dict) else {}
    prompt = image.get("prompt")
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
        if len(prompt) > 1:
            draft.note("InvokeAI's weighted prompt blend is reduced to its first prompt")
        prompt = prompt[0].get("prompt")
    _prompts(draft, *_split_negative(as_text(prompt) or ""))
    sampler = as_text(image.get("sampler"))
    _common(
        draft, {**image, "generation_mode": image.get("type", "txt2img")}, _legacy_sampler(draft, sampler)
    )
    weights = as_text(data.get("model_weights"))
    if weights:
        (draft.img2img if draft.img2img.get("enabled") else draft.txt2img)["model"] = model_stem(weights)
    for key, label in (("hires_fix", "high-resolution fix"), ("seamless", "seamless tiling")):
        if image.get(key) is True:
            draft.note(f"InvokeAI's {label} has no equivalent here")
    if image.get("variations"):
        draft.note("InvokeAI's seed variations have no equivalent here")
    if image.get("postprocessing"):
        draft.note("InvokeAI's postprocessing (face restoration, upscaling) is not restored")
    return draft.finish()


def _legacy_sampler(draft: Draft, name: str | None) -> tuple[str | None, str | None]:
    if not name:
        return None, None
    modern = INVOKEAI_LEGACY_SAMPLERS.get(name)
    if modern is None:
        draft.note(f"InvokeAI sampler {name!r} has no A1111 equivalent; the default sampler is used")
        return None, None
    return _scheduler_v3(draft, modern)


def read_invokeai_dream(command: str, source: str) -> GenerationSettings:
    """Settings from a ``Dream`` command line (InvokeAI 1.x, "lstein" stable-diffusion)."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes
        words = command.split()
    prompt = words[0] if words and not words[0].startswith("-") else ""
    values, unknown = _dream_options(words[1:] if prompt else words)
    draft = Draft("InvokeAI", source)
    _prompts(draft, *_split_negative(prompt))
    data = {**values, "generation_mode": "img2img" if "init_img" in values else "txt2img"}
    _common(draft, data, _legacy_sampler(draft, as_text(values.get("sampler"))))
    if unknown:
        draft.note(f"Dream options with no equivalent here: {' '.join(unknown)[:200]}")
    return draft.finish()


def _dream_options(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """``-s 50``, ``-s50`` and ``--steps=50`` forms; unknown options (and their values) apart."""
    values: dict[str, str] = {}
    unknown: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("--") and "=" in word:
            key, value = word.split("=", 1)
            step = 1
        elif len(word) > 2 and not word.startswith("--") and word[:2] in _DREAM_OPTIONS:
            key, value, step = word[:2], word[2:], 1
        else:
            following = words[index + 1] if index + 1 < len(words) else ""
            takes_value = bool(following) and (not following.startswith("-") or _is_number(following))
            key, value, step = word, following if takes_value else "", 2 if takes_value else 1
        if key in _DREAM_OPTIONS:
            values[_DREAM_OPTIONS[key]] = value
        else:
            unknown += [word, value] if step == 2 else [word]
        index += step
    return values, unknown


def _is_number(word: str) -> bool:
    return as_float(word) is not None
