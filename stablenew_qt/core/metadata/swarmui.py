"""SwarmUI: ``{"sui_image_params": {...}, "sui_extra_data": {...}}`` JSON in the ``parameters``
chunk (or EXIF UserComment). Parameter ids are SwarmUI's parameter names lower-cased without
spaces (``cfgscale``, ``negativeprompt``); values may be strings; sampler and scheduler names
are ComfyUI's. SwarmUI's "Refine / Upscale" group is its refiner and hires fix in one: with a
refiner model it is the refiner (switching at 1 − control percentage), with an upscale it is
hires fix (denoising at the control percentage).
"""

from __future__ import annotations

from typing import Any

from .draft import Draft, GenerationSettings, as_float, as_int, as_text, show
from .names import COMFY_SAMPLERS, COMFY_SCHEDULERS, model_stem

_UPSCALE_METHODS = {
    "pixel-lanczos": "Lanczos",
    "pixel-nearest-exact": "Nearest",
    "latent-bilinear": "Latent",
    "latent-bicubic": "Latent (bicubic)",
    "latent-nearest-exact": "Latent (nearest-exact)",
}
_HANDLED = frozenset(
    {
        "prompt",
        "negativeprompt",
        "model",
        "seed",
        "steps",
        "cfgscale",
        "width",
        "height",
        "sampler",
        "scheduler",
        "vae",
        "loras",
        "loraweights",
        "clipstopatlayer",
        "refinermodel",
        "refinercontrolpercentage",
        "refinercontrol",
        "refinerupscale",
        "refinerupscalemethod",
        "refinersteps",
        "refinermethod",
        "batchsize",
        "images",
        "initimagecreativity",
        "aspectratio",
        "swarm_version",
        "date",
        "generation_time",
        "automaticvae",
        "wildcardseed",
        "imageformat",
        "nopreviews",
        "original_prompt",
        "used_wildcards",
        "donotsave",
    }
)


def read_swarmui(data: dict[str, Any], source: str) -> GenerationSettings:
    """Settings from SwarmUI's JSON metadata."""
    params = data.get("sui_image_params")
    params = params if isinstance(params, dict) else {}
    draft = Draft("SwarmUI", source)
    draft.top.update(
        prompt=as_text(params.get("prompt")) or "",
        negative_prompt=as_text(params.get("negativeprompt")) or "",
    )
    t2i = draft.txt2img
    _core(draft, params)
    model = as_text(params.get("model"))
    if model:
        t2i["model"] = model_stem(model)
    vae = as_text(params.get("vae"))
    if vae and vae not in ("None", "Automatic"):
        t2i["vae"] = model_stem(vae)
    layer = as_int(params.get("clipstopatlayer"))
    if layer is not None and layer < -1:
        t2i["clip_skip"] = -layer
    _loras(draft, params.get("loras"), params.get("loraweights"))
    _refine(draft, params)
    batch = as_int(params.get("batchsize"))
    if batch and batch > 1:
        draft.top["batch_size"] = batch
    if params.get("initimagecreativity") is not None:
        draft.note("SwarmUI img2img: its init image is not stored; choose one and turn on img2img")
    rest = [k for k in params if k not in _HANDLED]
    for key in rest[:15]:
        draft.note(f"SwarmUI's {key} ({show(params[key])}) has no equivalent here")
    return draft.finish()


def _core(draft: Draft, params: dict[str, Any]) -> None:
    t2i = draft.txt2img
    for key, field, convert in (("steps", "steps", as_int), ("cfgscale", "cfg_scale", as_float)):
        value = convert(params.get(key))
        if value is not None:
            t2i[field] = value
    width, height = as_int(params.get("width")), as_int(params.get("height"))
    if width and height:
        t2i.update(width=width, height=height)
    if "seed" in params:
        draft.set_seed(params["seed"])
    name, schedule = as_text(params.get("sampler")), as_text(params.get("scheduler"))
    sampler = COMFY_SAMPLERS.get(name) if name else None
    scheduler = COMFY_SCHEDULERS.get(schedule) if schedule else None
    if name and sampler is None:
        draft.note(f"SwarmUI sampler {name!r} has no A1111 equivalent; the default sampler is used")
    if schedule and scheduler is None:
        draft.note(f"SwarmUI scheduler {schedule!r} has no A1111 equivalent; Automatic is used")
    draft.set_sampler(t2i, sampler, scheduler)


def _loras(draft: Draft, names: object, weights: object) -> None:
    name_list = names.split(",") if isinstance(names, str) else names if isinstance(names, list) else []
    weight_list = (
        weights.split(",") if isinstance(weights, str) else weights if isinstance(weights, list) else []
    )
    for index, name in enumerate(name_list):
        if isinstance(name, str) and name.strip():
            weight = as_float(weight_list[index]) if index < len(weight_list) else None
            draft.add_lora(name.strip(), 1.0 if weight is None else weight)


def _refine(draft: Draft, params: dict[str, Any]) -> None:
    t2i = draft.txt2img
    control = as_float(params.get("refinercontrolpercentage", params.get("refinercontrol")))
    upscale = as_float(params.get("refinerupscale")) or 1.0
    refiner = as_text(params.get("refinermodel"))
    separate = bool(refiner) and refiner != "(Use Base)" and model_stem(refiner or "") != t2i.get("model")
    if separate and refiner:
        t2i.update(refiner_enabled=True, refiner_model_name=model_stem(refiner))
        if control is not None and 0 < control < 1:
            t2i["refiner_switch_at"] = round(1 - control, 4)
        if params.get("refinermethod", "PostApply") == "PostApply":
            draft.note(
                "SwarmUI's PostApply refiner repaints the finished image; here the refiner takes over mid-way"
            )
    if upscale > 1:
        method = as_text(params.get("refinerupscalemethod")) or "pixel-lanczos"
        name = _UPSCALE_METHODS.get(method) or (
            model_stem(method.removeprefix("model-")) if method.startswith("model-") else None
        )
        if name is None:
            draft.note(f"SwarmUI upscale method {method!r} has no equivalent here; Lanczos is used")
        t2i.update(hires_enabled=True, hires_upscale_factor=upscale, hires_upscaler_name=name or "Lanczos")
        if control is not None and not separate:
            t2i["hires_denoise"] = control
        steps = as_int(params.get("refinersteps"))
        if steps:
            t2i["hires_steps"] = steps
