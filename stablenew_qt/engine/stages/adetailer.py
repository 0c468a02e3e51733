"""ADetailer: find faces (hands, people...) with YOLO and repaint each with an inpaint pass.

Per image, per active unit in order (each detecting on the image the previous unit left):

1. Detect with the unit's YOLO model and confidence.
2. Filter by area ratio, keep the top k, sort (global option).
3. Masks: offset, dilate/erode, merge / merge-and-invert.
4. Per mask j, in order (each result feeding the next): prompt part j (``[SKIP]`` skips), seed =
   image seed + j, blur the mask with A1111's kernel, crop the padded mask box expanded to the
   working aspect ratio, inpaint it at working size, paste back through the blurred mask so
   every pixel outside it is unchanged.

Spec: stage-semantics §1.3-1.5. Deviation: with "inpaint only masked" off, A1111 returns the
image at the processing size; we scale the result back so the image keeps its size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ...core.config import ADETAILER_SAME, ADetailerConfig, ADetailerUnit, RunConfig
from ...core.executor import StageInfo, StagePayload, StageResult
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
from ..progress import StepReporter
from ..sampling import diffusers_clip_skip, expected_steps, generators, img2img_schedule, negative_or_none
from ..schedulers import make_scheduler

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
    for index, (image, seed) in enumerate(zip(payload.images, payload.seeds, strict=True)):
        for number, (position, unit) in enumerate(units, start=1):
            reporter.check()
            job = _resolve(config, unit, position, payload, image.size)
            label = f"ADetailer {number}/{len(units)}"
            image, note = _run_unit(ctx, ad, job, image, seed, reporter, label)
            if note:
                notes.append(f"image {index + 1}: {note}")
        out.append(image)
    for note in notes:
        log.info(note)
    return StageResult(tuple(out), StageInfo(notes=tuple(notes)))


def _unit_steps(config: RunConfig, unit: ADetailerUnit) -> int:
    steps = unit.adetailer_steps if unit.adetailer_use_steps else _run_steps(config)
    n, strength = img2img_schedule(steps, unit.adetailer_strength)
    return expected_steps(n, strength)


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
    ad: ADetailerConfig,
    job: _Job,
    image: Image.Image,
    seed: int,
    reporter: StepReporter,
    label: str,
) -> tuple[Image.Image, str | None]:
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
        prompt = unit_prompts(unit.adetailer_prompt, job.prompt, j)
        if prompt is None:
            reporter.total -= per_mask
            continue
        negative = unit_negative_prompt(unit.adetailer_negative_prompt, job.negative, j)
        mask_seed = seed if ad.same_seed_for_each_unit else seed + j
        step_label = f"{label}: {what} {j + 1} of {len(masks)}"
        image = _inpaint(ctx, ad, job, image, prepared, prompt, negative, mask_seed, reporter, step_label)
    found = f"{len(masks)} mask(s) from {len(detections)} detection(s)"
    return image, f"{label} ({unit.adetailer_model}): {found}"


def _unit_job_steps(job: _Job) -> int:
    n, strength = img2img_schedule(job.steps, job.unit.adetailer_strength)
    return expected_steps(n, strength)


def _inpaint(
    ctx: EngineContext,
    ad: ADetailerConfig,
    job: _Job,
    image: Image.Image,
    prepared: PreparedMask,
    prompt: str,
    negative: str,
    seed: int,
    reporter: StepReporter,
    label: str,
) -> Image.Image:
    unit = job.unit
    loaded = ctx.cache.base(job.model, job.vae)
    pipe = ctx.cache.inpaint(loaded)
    pipe.scheduler = make_scheduler(loaded.scheduler_config, job.sampler, job.schedule)
    reporter.make_preview = ctx.previewer(loaded.family.value)
    width, height = job.size
    if not unit.adetailer_use_inpaint_width_height:
        width, height = match_bbox_size(
            ad.match_inpaint_bbox_size, prepared.bbox, (width, height), loaded.is_sdxl
        )
    ratio = bbox_area(prepared.bbox) / (image.width * image.height)
    # unclamped, as the extension passes it on: img2img_schedule caps it at 0.999 as A1111 does
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
    generated = _call_inpaint(
        pipe, job, crop_image, crop_mask, prompt, negative, seed, strength, reporter, label
    )
    if region is None:
        # Whole-image inpaint: scale back and composite with A1111's doubled overlay mask.
        overlay = blurred.point(lambda v: min(2 * v, 255))
        region = (0, 0, image.width, image.height)
        return paste_back(image, generated.resize(image.size, Image.Resampling.LANCZOS), overlay, region)
    return paste_back(image, generated, blurred, region)


def _call_inpaint(
    pipe: Any,
    job: _Job,
    image: Image.Image,
    mask: Image.Image,
    prompt: str,
    negative: str,
    seed: int,
    strength: float,
    reporter: StepReporter,
    label: str,
) -> Image.Image:
    steps, diffusers_strength = img2img_schedule(job.steps, strength)
    negative_prompt = negative_or_none(negative)
    extra: dict[str, Any] = {}
    clip_skip = diffusers_clip_skip(job.clip_skip)
    if clip_skip is not None:
        extra["clip_skip"] = clip_skip
    result: Image.Image = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        image=image,
        mask_image=mask,
        width=image.width,
        height=image.height,
        num_inference_steps=steps,
        strength=diffusers_strength,
        guidance_scale=job.cfg_scale,
        generator=generators([seed]),
        callback_on_step_end=reporter.callback(label),
        callback_on_step_end_tensor_inputs=["latents"],
        **extra,
    ).images[0]
    reporter.check()
    return result if result.size == image.size else result.resize(image.size, Image.Resampling.LANCZOS)
