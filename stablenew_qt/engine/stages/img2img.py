"""img2img on the previous stage's images (or the input image), with A1111's step parity.

1. Load the model (img2img's own, or txt2img's) and derive its img2img pipeline (``from_pipe``).
2. Build the scheduler (img2img's sampler, else txt2img's).
3. Run ``int(min(denoise, 0.999) * steps) + 1`` steps of a ``steps`` schedule, as A1111 does.
"""

from __future__ import annotations

from ...core.config import RunConfig
from ...core.executor import StageInfo, StagePayload, StageResult
from ..context import EngineContext
from ..errors import ModelError
from ..family import ModelFamily, describe
from ..progress import StepReporter
from ..sampling import diffusers_clip_skip, expected_steps, generators, img2img_schedule, negative_or_none
from ..schedulers import make_scheduler


def total_steps(config: RunConfig) -> int:
    steps, strength = img2img_schedule(config.img2img.steps, config.img2img.denoise)
    return expected_steps(steps, strength)


def run(ctx: EngineContext, payload: StagePayload, reporter: StepReporter) -> StageResult:
    config = payload.config
    i2i, t2i = config.img2img, config.txt2img
    # 1. model and pipeline
    loaded = ctx.cache.base(i2i.model or t2i.model, t2i.vae if not i2i.model else None)
    if loaded.family not in (ModelFamily.SD15, ModelFamily.SDXL, ModelFamily.SDXL_REFINER):
        raise ModelError(
            f"'{loaded.name}' is {describe(loaded.family)}: choose an SD1.x or SDXL model for img2img"
        )
    pipe = ctx.cache.img2img(loaded)
    reporter.make_preview = ctx.previewer(loaded.family.value)
    # 2. scheduler
    pipe.scheduler = make_scheduler(
        loaded.scheduler_config, i2i.sampler or t2i.sampler, i2i.scheduler or t2i.scheduler
    )
    # 3. sample
    steps, strength = img2img_schedule(i2i.steps, i2i.denoise)
    width, height = payload.images[0].size
    ctx.tile_vae_for(pipe, width, height)
    count = len(payload.images)
    negative = negative_or_none(payload.negative_prompt)
    kwargs = (
        {} if loaded.family is ModelFamily.SDXL_REFINER else {"clip_skip": diffusers_clip_skip(t2i.clip_skip)}
    )
    images = pipe(
        prompt=[payload.prompt] * count,
        negative_prompt=[negative] * count if negative else None,
        image=list(payload.images),
        num_inference_steps=steps,
        strength=strength,
        guidance_scale=i2i.cfg_scale,
        generator=generators(payload.seeds),
        callback_on_step_end=reporter.callback("img2img"),
        callback_on_step_end_tensor_inputs=["latents"],
        **kwargs,
    ).images
    reporter.check()
    images = [im if im.size == (width, height) else im.resize((width, height)) for im in images]
    info = StageInfo(
        model_name=loaded.name,
        model_hash=loaded.model_hash,
        params={"Size": f"{width}x{height}"},
    )
    return StageResult(tuple(images), info)
