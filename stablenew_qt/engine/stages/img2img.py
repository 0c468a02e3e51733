"""img2img on the previous stage's images (or the input image), as A1111's img2img tab runs it.

1. Load the model (img2img's own, or txt2img's).
2. Encode the prompts over A1111's total steps of the pass's sampler (img2img's, else txt2img's).
3. VAE-encode the images at their size (rounded down to a multiple of 8) and run A1111's
   ``int(min(denoise, 0.999) * steps) + 1`` steps of a ``steps`` schedule from fresh noise for
   the img2img seeds, scaled by the "Noise multiplier"; denoise 0 leaves the images unchanged.
"""

from __future__ import annotations

from ...core.config import RunConfig
from ...core.executor import StageInfo, StagePayload, StageResult
from .. import denoise
from ..context import EngineContext
from ..errors import ModelError
from ..family import ModelFamily, describe
from ..progress import StepReporter


def total_steps(config: RunConfig) -> int:
    return denoise.img2img_step_count(config.img2img.steps, config.img2img.denoise)


def run(ctx: EngineContext, payload: StagePayload, reporter: StepReporter) -> StageResult:
    config = payload.config
    i2i, t2i = config.img2img, config.txt2img
    # 1. model
    loaded = ctx.cache.base(i2i.model or t2i.model, t2i.vae if not i2i.model else None)
    if loaded.family not in (ModelFamily.SD15, ModelFamily.SDXL, ModelFamily.SDXL_REFINER):
        raise ModelError(
            f"'{loaded.name}' is {describe(loaded.family)}: choose an SD1.x or SDXL model for img2img"
        )
    reporter.make_preview = ctx.previewer(loaded.family.value)
    width, height = payload.images[0].size
    info = StageInfo(
        model_name=loaded.name, model_hash=loaded.model_hash, params={"Size": f"{width}x{height}"}
    )
    if i2i.denoise <= 0:
        return StageResult(tuple(payload.images), info)
    # 2. conditioning
    sampler, schedule = i2i.sampler or t2i.sampler, i2i.scheduler or t2i.scheduler
    count = len(payload.images)
    size = (width // 8 * 8, height // 8 * 8)
    options = denoise.conditioning_options(config, t2i.clip_skip)
    conds = denoise.conds_for(
        ctx,
        loaded,
        options,
        (payload.prompt,) * count,
        (payload.negative_prompt,) * count,
        size,
        denoise.schedule_steps(sampler, i2i.steps),
    )
    # 3. encode and sample
    pipe = loaded.pipe
    ctx.tile_vae_for(pipe, *size)
    init = denoise.vae_encode(pipe, payload.images, size)
    latents = denoise.run_pass(
        denoise.denoiser_for(loaded),
        config,
        sampler,
        schedule,
        i2i.steps,
        conds,
        denoise.noise_for(config, loaded, payload.seeds, size),
        cfg_scale=i2i.cfg_scale,
        reporter=reporter,
        label="img2img",
        init_latents=init,
        denoise=i2i.denoise,
        noise_multiplier=i2i.noise_multiplier,
    )
    images = denoise.vae_decode(pipe, latents)
    images = [im if im.size == (width, height) else im.resize((width, height)) for im in images]
    return StageResult(tuple(images), info)
