"""txt2img: SD1.x or SDXL, with the SDXL refiner and hires fix inside the stage (A1111 semantics).

Every pass is one A1111 sampling run (``ksampling.sample`` through ``engine.denoise``), with the
prompts encoded by A1111's prompt encoder (weights, BREAK, long prompts, prompt editing, clip skip).

1. Load the base model (and the refiner) from the cache.
2. Encode the prompts (the first pass's steps; the refiner with its own encoder and aesthetic ids).
3. First pass at the first-pass size, from A1111's noise for the seeds (variation seed, RNG source).
4. Refiner without hires: A1111's switch inside the same run at ``refiner_switch_at``.
5. Hires fix: upscale (latent, or decode - pixel upscaler - encode), then the second pass with
   fresh noise for the same seeds, ``fixed_steps`` (A1111 runs exactly the hires steps), the hires
   sampler/schedule/prompts when set (a hires prompt that differs brings its own LoRAs for that
   pass: ``pass_loras``, the main prompt's restored after); with a refiner, A1111's default
   "second pass" mode switches inside that pass only.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ...core.config import RunConfig, Txt2ImgConfig
from ...core.executor import StageInfo, StagePayload, StageResult
from ...core.sizes import hires_cover_size, hires_target_size
from .. import denoise
from ..context import EngineContext
from ..errors import ModelError
from ..extra_networks_run import pass_loras, strip_tags
from ..family import ModelFamily, describe
from ..ksampling import RefinerSwitch
from ..pipelines import LoadedModel
from ..progress import StepReporter
from ..sampling import LATENT_MODES, centre_crop_latents, upscale_latents


@dataclass(frozen=True)
class _Models:
    base: LoadedModel
    refiner: LoadedModel | None


@dataclass(frozen=True)
class _Prompts:
    prompts: tuple[str, ...]
    negatives: tuple[str, ...]


def total_steps(cfg: Txt2ImgConfig) -> int:
    """Denoising steps the whole stage runs (first pass, then the hires pass if on)."""
    if not cfg.hires_enabled or cfg.hires_denoise <= 0:
        return cfg.steps
    return cfg.steps + denoise.img2img_step_count(cfg.hires_steps or cfg.steps, cfg.hires_denoise, True)


def hires_sampler(cfg: Txt2ImgConfig) -> tuple[str, str]:
    """The hires pass's sampler and schedule: its own when set, else the first pass's."""
    return cfg.hires_sampler or cfg.sampler, cfg.hires_scheduler or cfg.scheduler


def run(ctx: EngineContext, payload: StagePayload, reporter: StepReporter) -> StageResult:
    config = payload.config
    cfg = config.txt2img
    # 1. models
    models = _load_models(ctx, cfg)
    base = models.base
    reporter.make_preview = ctx.previewer(base.family.value)
    count = len(payload.seeds)
    prompts = _Prompts((payload.prompt,) * count, (payload.negative_prompt,) * count)
    size = (cfg.width, cfg.height)
    # 2. conditioning over A1111's total steps of the first pass's sampler
    steps = denoise.schedule_steps(cfg.sampler, cfg.steps)
    options = denoise.conditioning_options(config, cfg.clip_skip)
    conds = denoise.conds_for(ctx, base, options, prompts.prompts, prompts.negatives, size, steps)
    # 3./4. first pass, with the refiner switch inside it when there is no hires pass
    refiner = None
    if models.refiner is not None and not cfg.hires_enabled:
        refiner = _refiner_switch(ctx, config, models.refiner, prompts, size, steps, None)
    latents = denoise.run_pass(
        denoise.denoiser_for(base),
        config,
        cfg.sampler,
        cfg.scheduler,
        cfg.steps,
        conds,
        denoise.noise_for(config, base, payload.seeds, size),
        cfg_scale=cfg.cfg_scale,
        reporter=reporter,
        label="txt2img",
        refiner=refiner,
    )
    # 5. hires fix
    params: dict[str, Any] = {}
    if models.refiner and models.refiner.model_hash:
        params["Refiner hash"] = models.refiner.model_hash
    if cfg.hires_enabled:
        images, hires_model = _hires(ctx, config, models, payload, latents, reporter)
        if hires_model is not base and hires_model.model_hash:
            params["Hires checkpoint hash"] = hires_model.model_hash
    else:
        images = _decode(ctx, base, latents, size)
    info = StageInfo(
        model_name=base.name,
        model_hash=base.model_hash,
        vae_name=base.vae_entry.name if base.vae_entry else None,
        vae_hash=base.vae_hash,
        params=params,
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


def _hires_model(ctx: EngineContext, cfg: Txt2ImgConfig, base: LoadedModel) -> LoadedModel:
    """The hires pass's model: A1111's "Hires checkpoint" (with the run's VAE), else the base.
    Its latents must be the first pass's kind, so another family is refused."""
    if not cfg.hires_checkpoint or cfg.hires_checkpoint == cfg.model:
        return base
    model = ctx.cache.base(cfg.hires_checkpoint, cfg.vae)
    if model.family is not base.family:
        raise ModelError(
            f"hires checkpoint '{model.name}' is {describe(model.family)} but the first pass's "
            f"'{base.name}' is {describe(base.family)}: choose a hires checkpoint of the same family"
        )
    return model


def _refiner_switch(
    ctx: EngineContext,
    config: RunConfig,
    refiner: LoadedModel,
    prompts: _Prompts,
    size: tuple[int, int],
    steps: int,
    hires_steps: int | None,
) -> RefinerSwitch:
    """The refiner's model and conds (its one text encoder, aesthetic-score ids) and the switch."""
    options = denoise.conditioning_options(config, config.txt2img.clip_skip)
    conds = denoise.conds_for(
        ctx, refiner, options, prompts.prompts, prompts.negatives, size, steps, hires_steps
    )
    return RefinerSwitch(denoise.denoiser_for(refiner, refiner=True), conds, config.txt2img.refiner_switch_at)


def _decode(
    ctx: EngineContext, loaded: LoadedModel, latents: Any, size: tuple[int, int]
) -> list[Image.Image]:
    ctx.tile_vae_for(loaded.pipe, *size)
    return denoise.vae_decode(loaded.pipe, latents)


def _hires(
    ctx: EngineContext,
    config: RunConfig,
    models: _Models,
    payload: StagePayload,
    first: Any,
    reporter: StepReporter,
) -> tuple[list[Image.Image], LoadedModel]:
    """Upscale the first pass and run the second pass (spec §2.2-2.4). Returns the images and
    the model the second pass ran on (A1111's "Hires checkpoint", which then also decodes; the
    first pass is decoded by its own model before the switch, as A1111 does)."""
    cfg = config.txt2img
    target_w, target_h = hires_target_size(cfg)
    cover_w, cover_h = hires_cover_size(cfg)
    target = (target_w, target_h)
    first_model = models.base
    if cfg.hires_upscaler_name in LATENT_MODES:
        latents = upscale_latents(first, cfg.hires_upscaler_name, (cover_h // 8, cover_w // 8))
        init = centre_crop_latents(latents, target_w, target_h)
        if cfg.hires_denoise <= 0:
            return _decode(ctx, first_model, init, target), first_model
        base = _hires_model(ctx, cfg, first_model)
    else:
        name = cfg.hires_upscaler_name
        upscaled = [
            _pixel_upscale(ctx, im, name, (cover_w, cover_h), target, reporter)
            for im in _decode(ctx, first_model, first, (cfg.width, cfg.height))
        ]
        if cfg.hires_denoise <= 0:
            return upscaled, first_model
        base = _hires_model(ctx, cfg, first_model)
        ctx.tile_vae_for(base.pipe, target_w, target_h)
        init = denoise.vae_encode(base.pipe, upscaled, target)
    # the second pass: A1111 encodes its prompts with the hires steps
    sampler, schedule = hires_sampler(cfg)
    steps = cfg.hires_steps or cfg.steps
    first_steps = denoise.schedule_steps(cfg.sampler, cfg.steps)
    hires_steps = denoise.schedule_steps(sampler, steps)
    count = len(payload.seeds)
    tagged = hires_prompts(config)
    prompts = _Prompts(
        (strip_tags(cfg.hires_prompt) if cfg.hires_prompt else payload.prompt,) * count,
        (strip_tags(cfg.hires_negative_prompt) if cfg.hires_negative_prompt else payload.negative_prompt,)
        * count,
    )
    # A1111 activates the hires prompt's own networks for this pass when it differs, and the
    # networks of the pass on the hires checkpoint when it has one
    loras: AbstractContextManager[None] = nullcontext()
    if tagged != (config.prompt, config.negative_prompt) or base is not first_model:
        loras = pass_loras(ctx, base, *tagged)
    with loras:
        options = denoise.conditioning_options(config, cfg.clip_skip)
        conds = denoise.conds_for(
            ctx, base, options, prompts.prompts, prompts.negatives, target, first_steps, hires_steps
        )
        refiner = None
        if models.refiner is not None:  # A1111's default: the refiner switch in the second pass only
            refiner = _refiner_switch(ctx, config, models.refiner, prompts, target, first_steps, hires_steps)
        latents = denoise.run_pass(
            denoise.denoiser_for(base),
            config,
            sampler,
            schedule,
            steps,
            conds,
            denoise.noise_for(config, base, payload.seeds, target),
            cfg_scale=cfg.cfg_scale,
            reporter=reporter,
            label="hires",
            refiner=refiner,
            init_latents=init,
            denoise=cfg.hires_denoise,
            fixed_steps=True,
        )
    return _decode(ctx, base, latents, target), base


def hires_prompts(config: RunConfig) -> tuple[str, str]:
    """The hires pass's prompt and negative with their tags: its own when set, else the main
    ones (the top-level prompts keep their tags in the config the stage gets)."""
    cfg = config.txt2img
    return cfg.hires_prompt or config.prompt, cfg.hires_negative_prompt or config.negative_prompt


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
