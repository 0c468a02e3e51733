"""txt2img: SD1.x or SDXL, with the SDXL refiner and hires fix inside the stage (A1111 semantics).

1. Load the base model (and the refiner) from the cache.
2. Build the scheduler from the A1111 sampler and schedule names.
3. First pass at the first-pass size: to pixels, or to latents when hires (latent mode) or the
   refiner continues from it.
4. Refiner without hires: the SDXL "ensemble of experts" hand-off at ``refiner_switch_at``.
5. Hires fix: upscale (latent or pixel), then a second img2img pass with A1111's step parity;
   with a refiner, A1111's default "second pass" mode uses it inside that pass only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from ...core.config import Txt2ImgConfig
from ...core.executor import StageInfo, StagePayload, StageResult
from ...core.sizes import hires_cover_size, hires_target_size
from ..context import EngineContext
from ..errors import ModelError
from ..family import ModelFamily, describe
from ..pipelines import LoadedModel
from ..progress import StepReporter
from ..sampling import (
    LATENT_MODES,
    centre_crop_latents,
    diffusers_clip_skip,
    expected_steps,
    generators,
    hires_schedule,
    negative_or_none,
    upscale_latents,
)
from ..schedulers import make_scheduler


@dataclass(frozen=True)
class _Models:
    base: LoadedModel
    refiner: LoadedModel | None


def total_steps(cfg: Txt2ImgConfig) -> int:
    """Denoising steps the whole stage runs (first pass, then the hires pass if on)."""
    if not cfg.hires_enabled or cfg.hires_denoise <= 0:
        return cfg.steps
    n, strength = hires_schedule(cfg.hires_steps or cfg.steps, cfg.hires_denoise)
    return cfg.steps + expected_steps(n, strength)


def run(ctx: EngineContext, payload: StagePayload, reporter: StepReporter) -> StageResult:
    cfg = payload.config.txt2img
    # 1. models
    models = _load_models(ctx, cfg)
    base = models.base
    reporter.make_preview = ctx.previewer(base.family.value)
    # 2. scheduler: a fresh object per call, from the model's own config (pipelines made with
    #    from_pipe share the base's scheduler object, and the last job replaced it)
    base.pipe.scheduler = make_scheduler(base.scheduler_config, cfg.sampler, cfg.scheduler)
    common = _common_args(payload, cfg)
    # 3./4. first pass, with the refiner hand-off when there is no hires pass
    if models.refiner is not None and not cfg.hires_enabled:
        images = _base_then_refiner(ctx, models, common, cfg, reporter)
    else:
        want_latents = cfg.hires_enabled and cfg.hires_upscaler_name in LATENT_MODES
        ctx.tile_vae_for(base.pipe, cfg.width, cfg.height)
        first = base.pipe(
            **common,
            num_inference_steps=cfg.steps,
            width=cfg.width,
            height=cfg.height,
            output_type="latent" if want_latents else "pil",
            callback_on_step_end=reporter.callback("txt2img"),
            callback_on_step_end_tensor_inputs=["latents"],
        ).images
        reporter.check()
        # 5. hires fix
        images = _hires(ctx, models, common, cfg, first, reporter) if cfg.hires_enabled else list(first)
    info = StageInfo(
        model_name=base.name,
        model_hash=base.model_hash,
        vae_name=base.vae_entry.name if base.vae_entry else None,
        vae_hash=base.vae_hash,
        params={"Refiner hash": models.refiner.model_hash}
        if models.refiner and models.refiner.model_hash
        else {},
    )
    return StageResult(tuple(images), info)


def _load_models(ctx: EngineContext, cfg: Txt2ImgConfig) -> _Models:
    base = ctx.cache.base(cfg.model, cfg.vae)
    if base.family not in (ModelFamily.SD15, ModelFamily.SDXL):
        raise ModelError(
            f"'{base.name}' is {describe(base.family)}: choose an SD1.x or SDXL base model for txt2img"
        )
    refiner = ctx.cache.refiner(cfg.refiner_model_name or "", base) if cfg.refiner_enabled else None
    return _Models(base, refiner)


def _common_args(payload: StagePayload, cfg: Txt2ImgConfig) -> dict[str, Any]:
    return {
        "prompt": payload.prompt,
        "negative_prompt": negative_or_none(payload.negative_prompt),
        "guidance_scale": cfg.cfg_scale,
        "num_images_per_prompt": len(payload.seeds),
        "generator": generators(payload.seeds),
        "clip_skip": diffusers_clip_skip(cfg.clip_skip),
    }


def _refiner_args(common: dict[str, Any]) -> dict[str, Any]:
    # The refiner has no first text encoder, so clip skip does not apply to it.
    return {k: v for k, v in common.items() if k != "clip_skip"}


def _base_then_refiner(
    ctx: EngineContext, models: _Models, common: dict[str, Any], cfg: Txt2ImgConfig, reporter: StepReporter
) -> list[Image.Image]:
    """SDXL ensemble of experts: base to ``denoising_end``, refiner from ``denoising_start``."""
    assert models.refiner is not None
    refiner = models.refiner.pipe
    refiner.scheduler = make_scheduler(models.base.scheduler_config, cfg.sampler, cfg.scheduler)
    latents = models.base.pipe(
        **common,
        num_inference_steps=cfg.steps,
        width=cfg.width,
        height=cfg.height,
        denoising_end=cfg.refiner_switch_at,
        output_type="latent",
        callback_on_step_end=reporter.callback("txt2img"),
        callback_on_step_end_tensor_inputs=["latents"],
    ).images
    reporter.check()
    ctx.tile_vae_for(refiner, cfg.width, cfg.height)
    images = refiner(
        **{**_refiner_args(common), "generator": generators_like(common)},
        image=latents,
        num_inference_steps=cfg.steps,
        denoising_start=cfg.refiner_switch_at,
        callback_on_step_end=reporter.callback("refiner"),
        callback_on_step_end_tensor_inputs=["latents"],
    ).images
    reporter.check()
    return list(images)


def generators_like(common: dict[str, Any]) -> list[Any]:
    """Fresh generators with the same seeds (A1111 re-seeds each pass)."""
    return generators([g.initial_seed() for g in common["generator"]])


def _hires(
    ctx: EngineContext,
    models: _Models,
    common: dict[str, Any],
    cfg: Txt2ImgConfig,
    first: Any,
    reporter: StepReporter,
) -> list[Image.Image]:
    """Upscale the first pass and run the second pass (spec §2.2-2.4)."""
    target_w, target_h = hires_target_size(cfg)
    cover_w, cover_h = hires_cover_size(cfg)
    base = models.base
    if cfg.hires_upscaler_name in LATENT_MODES:
        latents = upscale_latents(first, cfg.hires_upscaler_name, (cover_h // 8, cover_w // 8))
        init: Any = centre_crop_latents(latents, target_w, target_h)
    else:
        name = cfg.hires_upscaler_name
        init = [
            _pixel_upscale(ctx, im, name, (cover_w, cover_h), (target_w, target_h), reporter) for im in first
        ]
    if cfg.hires_denoise <= 0:
        return _decode_unchanged(base, init)
    steps, strength = hires_schedule(cfg.hires_steps or cfg.steps, cfg.hires_denoise)
    img2img = ctx.cache.img2img(base)
    img2img.scheduler = make_scheduler(base.scheduler_config, cfg.sampler, cfg.scheduler)
    ctx.tile_vae_for(img2img, target_w, target_h)
    args = {**common, "generator": generators_like(common), "num_images_per_prompt": 1}
    args["prompt"] = [common["prompt"]] * len(args["generator"])
    args["negative_prompt"] = (
        [common["negative_prompt"]] * len(args["generator"]) if common["negative_prompt"] else None
    )
    refiner = models.refiner
    if refiner is None:
        return list(_hires_pass(img2img, args, init, steps, strength, None, "pil", reporter).images)
    # Refiner in the hires pass ("second pass", A1111's default).
    switch = cfg.refiner_switch_at
    refiner.pipe.scheduler = make_scheduler(base.scheduler_config, cfg.sampler, cfg.scheduler)
    ctx.tile_vae_for(refiner.pipe, target_w, target_h)
    refiner_args = {**_refiner_args(args), "generator": generators_like(common)}
    if cfg.hires_denoise <= 1 - switch:
        # The pass starts below the switch point: the refiner runs all of it.
        return list(
            _hires_pass(refiner.pipe, refiner_args, init, steps, strength, None, "pil", reporter).images
        )
    latents = _hires_pass(img2img, args, init, steps, strength, switch, "latent", reporter).images
    images = refiner.pipe(
        **refiner_args,
        image=latents,
        num_inference_steps=steps,
        denoising_start=switch,
        callback_on_step_end=reporter.callback("refiner"),
        callback_on_step_end_tensor_inputs=["latents"],
    ).images
    reporter.check()
    return list(images)


def _hires_pass(
    pipe: Any,
    args: dict[str, Any],
    init: Any,
    steps: int,
    strength: float,
    denoising_end: float | None,
    output_type: str,
    reporter: StepReporter,
) -> Any:
    extra = {"denoising_end": denoising_end} if denoising_end is not None else {}
    out = pipe(
        **args,
        image=init,
        num_inference_steps=steps,
        strength=strength,
        output_type=output_type,
        callback_on_step_end=reporter.callback("hires"),
        callback_on_step_end_tensor_inputs=["latents"],
        **extra,
    )
    reporter.check()
    return out


def _pixel_upscale(
    ctx: EngineContext,
    image: Image.Image,
    name: str,
    cover: tuple[int, int],
    target: tuple[int, int],
    reporter: StepReporter,
) -> Image.Image:
    """Upscale to the covering size (A1111 ``resize_image`` mode 0), then centre-crop to the
    target the way A1111 crops the latents (whole latent pixels, extra on the bottom/right)."""
    upscaler = ctx.upscaler(name)
    scale = max(cover[0] / image.width, cover[1] / image.height)
    upscaled = upscaler.upscale(image, scale, reporter.check)
    if upscaled.size != cover:
        upscaled = upscaled.resize(cover, Image.Resampling.LANCZOS)
    left = (cover[0] - target[0]) // 8 // 2 * 8
    top = (cover[1] - target[1]) // 8 // 2 * 8
    return upscaled.crop((left, top, left + target[0], top + target[1]))


def _decode_unchanged(base: LoadedModel, init: Any) -> list[Image.Image]:
    """Hires with denoise 0: the upscaled first pass, decoded if it is still latents."""
    if isinstance(init, list):
        return init
    pipe = base.pipe
    vae = pipe.vae
    decoded = vae.decode(init.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return list(pipe.image_processor.postprocess(decoded, output_type="pil"))
