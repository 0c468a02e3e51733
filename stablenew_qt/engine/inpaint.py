"""Everything an img2img inpaint pass needs besides sampling, as A1111 1.10 prepares it.

The img2img stage calls, per image::

    job = prepare_inpaint(image, mask, cfg)                 # pixels: mask, crop, fill, overlay
    latents = encode(job.image)                             # the stage's VAE encode (scaled)
    inputs = inpaint_latents(job, latents, noise=..., encode=..., inpainting_model=...)
    out = sample(..., init_latents=inputs.init_latents, mask=inputs.mask,
                 image_conditioning=inputs.image_conditioning)
    result = finish_inpaint(job, decoded_pil)               # paste back through the blurred mask

Steps (A1111 ``StableDiffusionProcessingImg2Img.init``, stage-semantics §1.4):

1. The mask as A1111's ``create_binary_mask`` (an RGBA mask with real transparency: its alpha,
   thresholded; else grey), resized to the image when its size differs; inverted for "inpaint
   not masked"; Gaussian-blurred (:func:`~.adetailer.masks.blur_mask`, shared with ADetailer).
2. "only masked": crop region of the blurred mask + padding, grown to the processing aspect;
   image and mask cropped and "resize and fill"-ed to the processing size; the overlay mask is the
   full-size blurred mask. "whole picture": image and mask resized with the resize mode; the
   overlay mask is the blurred mask doubled and clipped.
3. Masked content other than "original" ("fill", and, as A1111 does, "latent noise" and "latent
   nothing" before their latents are replaced): the masked area is blur-filled from its
   surroundings (A1111 ``fill``).
4. Latent mask: the processed mask resized to the latent grid (Pillow's default filter), /255,
   rounded; 1 = repaint. "latent noise" / "latent nothing" replace the masked latents.
5. 9-channel models: ``image_conditioning`` = [mask at latent size (nearest), latents of the image
   with the masked area set to 0 in [-1, 1]] (A1111 ``inpainting_image_conditioning``, weight 1).
6. :func:`finish_inpaint`: the decoded image is composited into the original through the overlay
   mask (A1111 ``apply_overlay``), so pixels where the blurred mask is 0 keep their bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from ..core.config import Img2ImgConfig
from ..core.img2img_geometry import (
    Region,
    alpha_mask,
    binary_mask,
    crop_region,
    expand_to_aspect,
    just_resize,
    outpaint_canvas,
    paste_back,
    processing_size,
    resize_fill,
    resize_image,
)
from .adetailer.masks import blur_mask

if TYPE_CHECKING:
    import torch

#: Latents (scaled, [1, 4, h/8, w/8]) of an RGB tensor in [-1, 1] shaped [1, 3, H, W].
VaeEncode = Callable[["torch.Tensor"], "torch.Tensor"]


class EmptyMask(ValueError):
    """The mask selects no pixel: there is nothing to inpaint."""


@dataclass(frozen=True)
class InpaintJob:
    """The pixel side of one inpaint pass.

    ``image`` is what gets VAE-encoded (processing size; ``fill`` applied unless masked content
    is "original");
    ``mask`` the processed blurred mask ("L", processing size) the latent mask comes from;
    ``original`` and ``overlay_mask`` are what :func:`finish_inpaint` composites onto (the full
    image for "only masked", the resized image otherwise); ``region`` is the "only masked" crop
    in ``original``'s pixels (None: whole picture).
    """

    image: Image.Image
    mask: Image.Image
    original: Image.Image
    overlay_mask: Image.Image
    region: Region | None
    masked_content: str


@dataclass(frozen=True)
class InpaintLatents:
    """What :func:`~.ksampling.sample` takes for an inpaint pass."""

    init_latents: torch.Tensor
    mask: torch.Tensor
    image_conditioning: torch.Tensor | None


def source_mask(image: Image.Image, mask: Image.Image | None, cfg: Img2ImgConfig) -> Image.Image:
    """The unblurred "L" mask at the image's size from the config's mask source (file or alpha).

    A mask of another size is resized to the image ("just resize"), as A1111 does.
    """
    if cfg.mask_from_alpha:
        out = alpha_mask(image)
    elif mask is not None:
        out = binary_mask(mask)
    else:
        out = Image.new("L", image.size)
    return just_resize(out, *image.size)


def prepare_inpaint(image: Image.Image, mask: Image.Image | None, cfg: Img2ImgConfig) -> InpaintJob:
    """Steps 1-3 for one image. ``image`` may carry alpha (used by ``mask_from_alpha``; it is
    then flattened on white, as A1111's default img2img background); ``mask`` is the opened
    ``mask_path`` file or None. Raises :class:`EmptyMask` when nothing would be repainted."""
    user = source_mask(image, mask, cfg)
    rgb = _flatten(image)
    if cfg.outpaint.any:
        o = cfg.outpaint
        canvas = outpaint_canvas(rgb, o.left, o.right, o.top, o.bottom)
        rgb = canvas.image
        grown = Image.new("L", rgb.size)
        grown.paste(user, canvas.box[:2])
        user = Image.fromarray(np.maximum(np.asarray(grown), np.asarray(canvas.mask)))
    if cfg.mask_mode == "inpaint not masked":
        user = ImageOps.invert(user)
    if user.getbbox() is None:
        raise EmptyMask("the mask selects no pixel: there is nothing to inpaint")
    blurred = blur_mask(user, cfg.mask_blur)
    width, height = processing_size(cfg.width, cfg.height, rgb.size)
    if cfg.inpaint_area == "only masked":
        region = crop_region(blurred, cfg.only_masked_padding)
        if region is not None:
            region = expand_to_aspect(region, width, height, rgb.size)
            work_mask = resize_fill(blurred.crop(region), width, height)
            work = resize_fill(rgb.crop(region), width, height)
            return _job(work, work_mask, rgb, blurred, region, cfg)
    mode = "just resize" if cfg.resize_mode == "latent upscale" else cfg.resize_mode
    work, work_mask = resize_image(mode, rgb, width, height), resize_image(mode, blurred, width, height)
    doubled = Image.fromarray(np.clip(np.asarray(work_mask, np.int32) * 2, 0, 255).astype(np.uint8))
    return _job(work, work_mask, work, doubled, None, cfg)


def _job(
    work: Image.Image,
    work_mask: Image.Image,
    original: Image.Image,
    overlay: Image.Image,
    region: Region | None,
    cfg: Img2ImgConfig,
) -> InpaintJob:
    if cfg.masked_content != "original":  # A1111 fills for the latent choices too (inpainting_fill != 1)
        work = fill(work, work_mask)
    return InpaintJob(work, work_mask, original, overlay, region, cfg.masked_content)


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


#: A1111 ``fill``'s blur passes: (Gaussian radius, how many times the blurred layer is laid on).
_FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's masked content "fill": paint the masked area from its surroundings.

    The unmasked part (alpha = 255 - mask, premultiplied) is blurred at decreasing radii and the
    blurred layers are alpha-composited on top of each other, ending with the sharp unmasked
    image; colour bleeds into the hole from its edges, far colours from the big radii.
    """
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    out = Image.new("RGBA", image.size)
    for radius, repeats in _FILL_PASSES:
        layer = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(layer)
    return out.convert("RGB")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB image as A1111 feeds the VAE: [1, 3, H, W] float32 in [-1, 1]."""
    import torch

    array = np.asarray(image.convert("RGB"), np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None] * 2.0 - 1.0


def latent_mask(job: InpaintJob, latent_hw: tuple[int, int]) -> torch.Tensor:
    """A1111's ``latmask``: the processed mask resized to the latent grid (Pillow's default
    filter, via RGB as A1111 does), /255 and rounded; [1, 1, h, w], 1 = repaint."""
    import torch

    small = job.mask.convert("RGB").resize((latent_hw[1], latent_hw[0]))
    values = np.around(np.asarray(small, np.float32)[..., 0] / 255.0)
    return torch.from_numpy(values)[None, None]


def inpaint_latents(
    job: InpaintJob,
    init_latents: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    encode: VaeEncode | None = None,
    inpainting_model: bool = False,
) -> InpaintLatents:
    """Steps 4-5: the latent mask, the masked-content latents and the 9-channel conditioning.

    ``init_latents`` are the stage's encoding of ``job.image``. ``noise`` (latent-shaped, from the
    image's seed) is needed for "latent noise"; ``encode`` for an ``inpainting_model``.
    """
    mask = latent_mask(job, tuple(init_latents.shape[-2:])).to(init_latents)  # type: ignore[arg-type]
    latents = init_latents
    if job.masked_content == "latent noise":
        if noise is None:
            raise ValueError('masked content "latent noise" needs the image\'s seed noise')
        latents = init_latents * (1 - mask) + noise.to(init_latents) * mask
    elif job.masked_content == "latent nothing":
        latents = init_latents * (1 - mask)
    conditioning = None
    if inpainting_model:
        if encode is None:
            raise ValueError("a 9-channel inpainting model needs encode= for its image conditioning")
        conditioning = image_conditioning(job, latents, encode)
    return InpaintLatents(latents, mask, conditioning)


def image_conditioning(job: InpaintJob, latents: torch.Tensor, encode: VaeEncode) -> torch.Tensor:
    """A1111 ``inpainting_image_conditioning`` with mask weight 1: [rounded mask at latent size
    (nearest), latents of the image whose masked pixels are 0 in [-1, 1]]; [1, 5, h, w]."""
    return masked_image_conditioning(to_tensor(job.image), job.mask, latents, encode)


def masked_image_conditioning(
    pixels: torch.Tensor, mask: Image.Image, latents: torch.Tensor, encode: VaeEncode
) -> torch.Tensor:
    """:func:`image_conditioning` from ``pixels`` ([1, 3, H, W] in [-1, 1]) and an "L" ``mask``
    (LANCZOS-resized to H x W when its size differs); ``latents`` give the latent size and dtype.
    Shared by the img2img stage and ADetailer."""
    import torch

    size = (pixels.shape[-1], pixels.shape[-2])
    grey = mask.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.LANCZOS)
    pixel_mask = torch.round(torch.from_numpy(np.asarray(grey, np.float32) / 255.0))[None, None]
    masked = encode(pixels * (1.0 - pixel_mask.to(pixels))).to(latents)
    small = torch.nn.functional.interpolate(pixel_mask, size=tuple(latents.shape[-2:])).to(latents)
    return torch.cat([small.expand(masked.shape[0], -1, -1, -1), masked], dim=1)


def finish_inpaint(job: InpaintJob, decoded: Image.Image) -> Image.Image:
    """Step 6: composite the decoded processing-size image into the original through the overlay
    mask (A1111 ``apply_overlay``); unmasked pixels keep their original bytes."""
    region = job.region or (0, 0, *job.original.size)
    return paste_back(job.original, decoded, job.overlay_mask, region)
