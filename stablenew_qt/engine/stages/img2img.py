"""img2img on the previous stage's images (or the input image), as A1111's img2img tab runs it,
inpaint and outpaint included.

1. Load the model (img2img's own, or txt2img's): SD1.x or SDXL, base, refiner or 9-channel inpainting.
2. Bring the images to the processing size (``width``/``height``, 0 = the image's own side floored
   to 8) with the resize mode, or, for an inpaint pass (mask file, the input's alpha, outpaint),
   prepare mask, crop and masked content; VAE-encode them (:mod:`.inpaint_pass`).
3. Encode the prompts over A1111's total steps of the pass's sampler (img2img's, else txt2img's).
4. Run A1111's ``int(min(denoise, 0.999) * steps) + 1`` steps of a ``steps`` schedule from fresh
   noise for the img2img seeds, scaled by the "Noise multiplier"; an inpaint pass blends the kept
   latents back at every step (and a 9-channel model gets its image conditioning).
5. Decode; an inpaint pass pastes the result back through the blurred mask, so every pixel the
   blurred mask does not touch keeps its bytes. Denoise 0 samples nothing: the prepared images go on.
"""

from __future__ import annotations

from ...core.config import RunConfig
from ...core.executor import StageInfo, StagePayload, StageResult
from .. import denoise
from ..context import EngineContext
from ..errors import ModelError
from ..family import ModelFamily, describe
from ..progress import StepReporter
from . import inpaint_pass


def total_steps(config: RunConfig) -> int:
    return denoise.img2img_step_count(config.img2img.steps, config.img2img.denoise)


def run(ctx: EngineContext, payload: StagePayload, reporter: StepReporter) -> StageResult:
    config = payload.config
    i2i, t2i = config.img2img, config.txt2img
    # 1. model
    loaded = ctx.cache.base(i2i.model or t2i.model, t2i.vae if not i2i.model else None)
    if loaded.family is ModelFamily.SD2:
        raise ModelError(
            f"'{loaded.name}' is {describe(loaded.family)}: choose an SD1.x or SDXL model for img2img"
        )
    reporter.make_preview = ctx.previewer(loaded.family.value)
    model = denoise.denoiser_for(loaded)
    # 2. pixels and latents
    pipe = loaded.pipe
    ctx.tile_vae_for(pipe, *inpaint_pass.work_size(config, payload.images[0].size))
    inputs = inpaint_pass.prepare(loaded, config, payload.images, payload.seeds, nine=model.needs_image_cond)
    width, height = inputs.size
    info = StageInfo(
        model_name=loaded.name, model_hash=loaded.model_hash, params={"Size": f"{width}x{height}"}
    )
    if i2i.denoise <= 0:
        return StageResult(tuple(inputs.unchanged), info)
    # 3. conditioning
    sampler, schedule = i2i.sampler or t2i.sampler, i2i.scheduler or t2i.scheduler
    count = len(payload.images)
    conds = denoise.conds_for(
        ctx,
        loaded,
        denoise.conditioning_options(config, t2i.clip_skip),
        (payload.prompt,) * count,
        (payload.negative_prompt,) * count,
        inputs.size,
        denoise.schedule_steps(sampler, i2i.steps),
    )
    # 4. sample
    latents = denoise.run_pass(
        model,
        config,
        sampler,
        schedule,
        i2i.steps,
        conds,
        denoise.noise_for(config, loaded, payload.seeds, inputs.size),
        cfg_scale=i2i.cfg_scale,
        reporter=reporter,
        label="img2img",
        init_latents=inputs.init_latents,
        denoise=i2i.denoise,
        noise_multiplier=i2i.noise_multiplier,
        mask=inputs.mask,
        image_conditioning=inputs.image_conditioning,
    )
    # 5. decode (and paste back)
    return StageResult(tuple(inputs.finish(denoise.vae_decode(pipe, latents))), info)
