"""ADetailer: find faces (hands, people...) with YOLO and repaint each with an inpaint pass.

Per image, per active unit in order (each detecting on the image the previous unit left):

1. Detect with the unit's YOLO model and confidence.
2. Filter by area ratio, keep the top k, sort (global option).
3. Masks: offset, dilate/erode, merge / merge-and-invert.
4. Per mask j, in order (each result feeding the next): prompt part j (``[SKIP]`` skips), seed =
   image seed + j, blur the mask with A1111's kernel, crop the padded mask box expanded to the
   working aspect ratio, inpaint it at working size, paste back through the blurred mask so
   every pixel outside it is unchanged. The prompt part's LoRA tags (the main prompt's when it
   is blank or uses ``[PROMPT]``) are active for that inpaint only, on the checkpoint it runs on.

The inpaint step is one A1111 img2img sampling run (``ksampling.sample`` through
``engine.denoise``): the crop's VAE latents as ``init_latents``, A1111's latent mask (the crop's
blurred mask resized to latent size and rounded, 1 = repaint) blended in at every step and after
the run, and for a 9-channel inpainting UNet A1111's image conditioning (the rounded mask and the
latents of the crop with the masked pixels set to 0).

Spec: stage-semantics §1.3-1.5. Deviation: with "inpaint only masked" off, A1111 returns the
image at the processing size; we scale the result back so the image keeps its size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ...core.config import ADETAILER_SAME, ADetailerUnit, RunConfig
from ...core.executor import StageInfo, StagePayload, StageResult
from .. import denoise
from ..adetailer.crops import crop_region, expand_to_aspect, paste_back, resize_fill
from ..adetailer.masks import (
    PreparedMask,
    bbox_area,
    blur_mask,
    dynamic_denoise,
    filter_by_ratio,
    match_bbox_size,
    preprocess_masks,
    sort_detections,
    top_k,
    unit_negative_prompt,
    unit_prompts,
)
from ..context import EngineContext
from ..extra_networks_run import pass_loras, strip_tags
from ..inpaint import masked_image_conditioning
from ..pipelines import LoadedModel
from ..progress import StepReporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    """One unit's settings resolved against the run (A1111's "use same ..." fall-backs)."""

    unit: ADetailerUnit
    position: int  # the unit's tab index (0-based), for messages
    model: str
    vae: str | None
    sampler: str
    schedule: str
    steps: int
    cfg_scale: float
    clip_skip: int
    noise_multiplier: float
    size: tuple[int, int]
    prompt: str
    negative: str


def total_steps(config: RunConfig) -> int:
    """A first estimate (one inpaint per unit); the stage raises it as it finds detections."""
    return sum(_unit_steps(config, unit) for unit in config.adetailer.active_units)


def run(ctx: EngineContext, payload: StagePayload, reporter: StepReporter) -> StageResult:
    config = payload.config
    ad = config.adetailer
    units = [(i, u) for i, u in enumerate(ad.units) if u.active]
    reporter.total = 0
    notes: list[str] = []
    out = []
    subseeds = denoise.variation_seeds(config, len(payload.seeds)) or (0,) * len(payload.seeds)
    for index, (image, seed) in enumerate(zip(payload.images, payload.seeds, strict=True)):
        for number, (position, unit) in enumerate(units, start=1):
            reporter.check()
            job = _resolve(config, unit, position, payload, image.size)
            label = f"ADetailer {number}/{len(units)}"
            seeds = (seed, subseeds[index])
            image, note = _run_unit(ctx, config, job, image, seeds, reporter, label)
            if note:
                notes.append(f"image {index + 1}: {note}")
        out.append(image)
    for note in notes:
        log.info(note)
    return StageResult(tuple(out), StageInfo(notes=tuple(notes)))


def _unit_steps(config: RunConfig, unit: ADetailerUnit) -> int:
    steps = unit.adetailer_steps if unit.adetailer_use_steps else _run_steps(config)
    return denoise.img2img_step_count(steps, unit.adetailer_strength)


def _run_steps(config: RunConfig) -> int:
    return config.txt2img.steps if config.txt2img.enabled else config.img2img.steps


def _resolve(
    config: RunConfig, unit: ADetailerUnit, position: int, payload: StagePayload, image_size: tuple[int, int]
) -> _Job:
    t2i, i2i = config.txt2img, config.img2img
    own_model = t2i.model if t2i.enabled else (i2i.model or t2i.model)
    sampler = t2i.sampler if t2i.enabled else (i2i.sampler or t2i.sampler)
    schedule = t2i.scheduler if t2i.enabled else (i2i.scheduler or t2i.scheduler)
    if unit.adetailer_use_sampler:
        sampler = unit.adetailer_sampler
        schedule = schedule if unit.adetailer_scheduler == ADETAILER_SAME else unit.adetailer_scheduler
    cfg_scale = t2i.cfg_scale if t2i.enabled else i2i.cfg_scale
    # A1111 inpaints at the processing size: the FIRST-PASS size under hires fix.
    size = (t2i.width, t2i.height) if t2i.enabled else (image_size[0] // 8 * 8, image_size[1] // 8 * 8)
    if unit.adetailer_use_inpaint_width_height:
        size = (unit.adetailer_inpaint_width, unit.adetailer_inpaint_height)
    return _Job(
        unit=unit,
        position=position,
        model=_override(unit.adetailer_use_checkpoint, unit.adetailer_checkpoint, _SAME_CHECKPOINT)
        or own_model,
        vae=_override(unit.adetailer_use_vae, unit.adetailer_vae, _SAME_VAE) or t2i.vae,
        sampler=sampler,
        schedule=schedule,
        steps=unit.adetailer_steps if unit.adetailer_use_steps else _run_steps(config),
        cfg_scale=unit.adetailer_cfg_scale if unit.adetailer_use_cfg_scale else cfg_scale,
        clip_skip=unit.adetailer_clip_skip if unit.adetailer_use_clip_skip else t2i.clip_skip,
        # A1111's "Noise multiplier for img2img" applies to the extension's img2img too
        noise_multiplier=unit.adetailer_noise_multiplier
        if unit.adetailer_use_noise_multiplier
        else i2i.noise_multiplier,
        size=size,
        prompt=payload.prompt,
        negative=payload.negative_prompt,
    )


_SAME_CHECKPOINT = ("Use same checkpoint", "None")
_SAME_VAE = ("Use same VAE", "None")


def _override(enabled: bool, value: str | None, same: tuple[str, ...]) -> str | None:
    """A unit's own checkpoint/VAE when it asks for one; A1111's "Use same ..."/"None" mean none."""
    if not enabled or value is None or value.strip() in ("", *same):
        return None
    return value


def _run_unit(
    ctx: EngineContext,
    config: RunConfig,
    job: _Job,
    image: Image.Image,
    seeds: tuple[int, int],
    reporter: StepReporter,
    label: str,
) -> tuple[Image.Image, str | None]:
    """``seeds``: the image's seed and variation seed; mask j uses both + j (the extension's
    ``get_each_tab_seed``), or both unchanged with "same seed for each unit"."""
    ad = config.adetailer
    unit = job.unit
    # 1. detect
    detector = ctx.detector(unit.adetailer_model)
    detections = detector.predict(image, unit.adetailer_confidence, unit.adetailer_model_classes)
    # 2. filter, top k, sort
    detections = filter_by_ratio(
        detections, image.size, unit.adetailer_mask_min_ratio, unit.adetailer_mask_max_ratio
    )
    detections = top_k(detections, unit.adetailer_mask_k, unit.adetailer_mask_filter_method)
    detections = sort_detections(detections, image.size, ad.bbox_sortby)
    # 3. masks
    masks = preprocess_masks(
        detections,
        unit.adetailer_x_offset,
        unit.adetailer_y_offset,
        unit.adetailer_dilate_erode,
        unit.adetailer_mask_merge_invert,
    )
    if not masks:
        return image, f"{label} ({unit.adetailer_model}): nothing detected, image unchanged"
    # 4. inpaint each mask in order
    per_mask = _unit_job_steps(job)
    reporter.total += per_mask * len(masks)
    what = (detections[0].label if detections else "") or "detection"
    for j, prepared in enumerate(masks):
        prompt = unit_prompts(unit.adetailer_prompt, job.prompt, j)  # tags kept: see _inpaint
        if prompt is None or strip_tags(prompt).strip() == "[SKIP]":
            reporter.total -= per_mask
            continue
        negative = unit_negative_prompt(unit.adetailer_negative_prompt, job.negative, j)
        offset = 0 if ad.same_seed_for_each_unit else j
        mask_seeds = (seeds[0] + offset, seeds[1] + offset)
        step_label = f"{label}: {what} {j + 1} of {len(masks)}"
        image = _inpaint(
            ctx, config, job, image, prepared, prompt, negative, mask_seeds, reporter, step_label
        )
    found = f"{len(masks)} mask(s) from {len(detections)} detection(s)"
    return image, f"{label} ({unit.adetailer_model}): {found}"


def _unit_job_steps(job: _Job) -> int:
    return denoise.img2img_step_count(job.steps, job.unit.adetailer_strength)


def _inpaint(
    ctx: EngineContext,
    config: RunConfig,
    job: _Job,
    image: Image.Image,
    prepared: PreparedMask,
    prompt: str,
    negative: str,
    seeds: tuple[int, int],
    reporter: StepReporter,
    label: str,
) -> Image.Image:
    ad = config.adetailer
    unit = job.unit
    loaded = ctx.cache.base(job.model, job.vae)
    reporter.make_preview = ctx.previewer(loaded.family.value)
    width, height = job.size
    if not unit.adetailer_use_inpaint_width_height:
        width, height = match_bbox_size(
            ad.match_inpaint_bbox_size, prepared.bbox, (width, height), loaded.is_sdxl
        )
    ratio = bbox_area(prepared.bbox) / (image.width * image.height)
    # unclamped, as the extension passes it on: the loop caps it at 0.999 as A1111 does
    strength = dynamic_denoise(unit.adetailer_strength, ratio, ad.dynamic_denoise_power)
    blurred = blur_mask(prepared.mask, unit.adetailer_mask_blur)
    region = (
        crop_region(blurred, unit.adetailer_inpaint_only_masked_padding)
        if unit.adetailer_inpaint_only_masked
        else None
    )
    if region is not None:
        region = expand_to_aspect(region, width, height, image.size)
        crop_image = resize_fill(image.crop(region), width, height)
        crop_mask = resize_fill(blurred.crop(region), width, height)
    else:
        crop_image, crop_mask = (  # A1111 resize mode 0: LANCZOS for the image and the "L" mask
            image.resize((width, height), Image.Resampling.LANCZOS),
            blurred.resize((width, height), Image.Resampling.LANCZOS),
        )
    # the prompt's own LoRAs for this inpaint (ADetailer runs it as an A1111 img2img), on the
    # checkpoint it runs on; the stage's main LoRAs come back after
    with pass_loras(ctx, loaded, prompt, negative):
        texts = (strip_tags(prompt), strip_tags(negative))
        generated = _sample_inpaint(
            ctx, config, loaded, job, crop_image, crop_mask, texts, seeds, strength, reporter, label
        )
    if region is None:
        # Whole-image inpaint: scale back and composite with A1111's doubled overlay mask.
        overlay = blurred.point(lambda v: min(2 * v, 255))
        region = (0, 0, image.width, image.height)
        return paste_back(image, generated.resize(image.size, Image.Resampling.LANCZOS), overlay, region)
    return paste_back(image, generated, blurred, region)


def _sample_inpaint(
    ctx: EngineContext,
    config: RunConfig,
    loaded: LoadedModel,
    job: _Job,
    image: Image.Image,
    mask: Image.Image,
    prompts: tuple[str, str],
    seeds: tuple[int, int],
    strength: float,
    reporter: StepReporter,
    label: str,
) -> Image.Image:
    """One A1111 inpaint run on the working-size crop ``image`` with its blurred ``mask``."""
    if strength <= 0:
        return image
    size = (image.width // 8 * 8, image.height // 8 * 8)
    pipe = loaded.pipe
    ctx.tile_vae_for(pipe, *size)
    pixels = denoise.pixels_to_tensor(pipe, [image], size)
    init = denoise.vae_encode_tensor(pipe, pixels)
    latent_mask = inpaint_latent_mask(mask, init.shape[-1], init.shape[-2]).to(init)
    model = denoise.denoiser_for(loaded)
    image_cond = inpaint_image_conditioning(pipe, pixels, mask, init) if model.needs_image_cond else None
    options = denoise.conditioning_options(config, job.clip_skip)
    conds = denoise.conds_for(
        ctx,
        loaded,
        options,
        (prompts[0],),
        (prompts[1],),
        size,
        denoise.schedule_steps(job.sampler, job.steps),
    )
    seed, subseed = seeds
    subseeds = (subseed,) if config.subseed_strength > 0 else ()
    latents = denoise.run_pass(
        model,
        config,
        job.sampler,
        job.schedule,
        job.steps,
        conds,
        denoise.noise_for(config, loaded, (seed,), size, subseeds),
        cfg_scale=job.cfg_scale,
        reporter=reporter,
        label=label,
        init_latents=init,
        denoise=strength,
        noise_multiplier=job.noise_multiplier,
        mask=latent_mask,
        image_conditioning=image_cond,
    )
    result = denoise.vae_decode(pipe, latents)[0]
    return result if result.size == image.size else result.resize(image.size, Image.Resampling.LANCZOS)


def inpaint_latent_mask(mask: Image.Image, width: int, height: int) -> Any:
    """A1111's ``latmask``: the mask as RGB resized to the latent size (Pillow's default bicubic),
    its first channel / 255 rounded to 0 or 1 (1 = repaint), ``[1, 1, h, w]``."""
    import numpy as np
    import torch

    small = mask.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    values = np.around(np.asarray(small, dtype=np.float32)[:, :, 0] / 255.0)
    return torch.from_numpy(values)[None, None]


def inpaint_image_conditioning(pipe: Any, pixels: Any, mask: Image.Image, init: Any) -> Any:
    """A1111's ``inpainting_image_conditioning`` for a 9-channel UNet (``[1, 5, h, w]``), as the
    img2img stage builds it (:func:`~..inpaint.masked_image_conditioning`)."""
    return masked_image_conditioning(pixels, mask, init, lambda px: denoise.vae_encode_tensor(pipe, px))
