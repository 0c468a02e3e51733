"""The img2img stage's pixels in and out: size, resize mode, inpaint mask and outpaint, as A1111
1.10's img2img ``init`` prepares them and its ``apply_overlay`` finishes them.

:func:`prepare` turns the stage's images into what one ``ksampling.sample`` call takes
(:class:`PassInputs`); ``PassInputs.finish`` turns the decoded images into those the stage hands on.

- Plain img2img: each image brought to the processing size (``width``/``height``, 0 = the
  image's own side floored to 8) with the resize mode, VAE-encoded; "latent upscale" encodes the
  image at its own size and resizes the latents (bilinear) to the processing size instead.
- Inpaint (``mask_path``, ``mask_from_alpha``, ``outpaint``): one mask for every image of the
  batch; per image :func:`~..inpaint.prepare_inpaint` (mask, blur, crop, fill), the batch encoded
  at once, :func:`~..inpaint.inpaint_latents` (latent mask, latent noise/nothing, 9-channel
  conditioning), and :func:`~..inpaint.finish_inpaint` (paste back through the blurred mask).
- A 9-channel inpainting model in plain img2img gets A1111's conditioning without a mask (all
  repaint, masked image zero), so it runs instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from ...core.config import RunConfig
from ...core.errors import ConfigError
from ...core.images import load_input_image
from ...core.img2img_geometry import processing_size, resize_image
from ...core.inpaint_checks import MASK_FIELD
from .. import denoise
from ..inpaint import (
    EmptyMask,
    InpaintJob,
    finish_inpaint,
    image_conditioning,
    inpaint_latents,
    prepare_inpaint,
)
from ..ksampling import ImageNoise, NoiseSpec

if TYPE_CHECKING:
    import torch

    from ..pipelines import LoadedModel

Finish = Callable[[Sequence[Image.Image]], list[Image.Image]]


@dataclass(frozen=True)
class PassInputs:
    """One img2img pass's sampling inputs. ``size`` is the processing (width, height): the latent
    grid times 8 and SDXL's time ids. ``unchanged`` is what a pass with denoise 0 hands on."""

    size: tuple[int, int]
    init_latents: torch.Tensor
    mask: torch.Tensor | None
    image_conditioning: torch.Tensor | None
    finish: Finish
    unchanged: list[Image.Image]


def prepare(
    loaded: LoadedModel, config: RunConfig, images: Sequence[Image.Image], seeds: Sequence[int], *, nine: bool
) -> PassInputs:
    """The pass's inputs for ``images`` (all of one size); ``nine``: the UNet has 9 input channels."""
    if config.img2img.inpainting:
        return _inpaint(loaded, config, images, seeds, nine)
    return _plain(loaded, config, images, nine)


def work_size(config: RunConfig, image_size: tuple[int, int]) -> tuple[int, int]:
    """The processing (width, height) for an input of ``image_size`` (the outpaint canvas's)."""
    i2i, o = config.img2img, config.img2img.outpaint
    canvas = (image_size[0] + o.left + o.right, image_size[1] + o.top + o.bottom)
    return processing_size(i2i.width, i2i.height, canvas)


def _plain(loaded: LoadedModel, config: RunConfig, images: Sequence[Image.Image], nine: bool) -> PassInputs:
    import torch

    i2i, pipe = config.img2img, loaded.pipe
    rgb = [im.convert("RGB") for im in images]
    size = processing_size(i2i.width, i2i.height, rgb[0].size)
    if i2i.resize_mode == "latent upscale":
        own = (max(rgb[0].width // 8 * 8, 8), max(rgb[0].height // 8 * 8, 8))
        init = denoise.vae_encode(pipe, rgb, own)
        if own != size:  # A1111: the latents, not the pixels, go to the processing size
            init = torch.nn.functional.interpolate(init, size=(size[1] // 8, size[0] // 8), mode="bilinear")
        work = [resize_image("just resize", im, *size) for im in rgb]
    else:
        work = [resize_image(i2i.resize_mode, im, *size) for im in rgb]
        init = denoise.vae_encode(pipe, work, size)
    cond = None
    if nine:  # A1111 without a mask: the whole image is repainted, the masked image is all zero
        whole = InpaintJob(
            work[0], Image.new("L", size, 255), work[0], Image.new("L", size), None, "original"
        )
        cond = image_conditioning(whole, init, _encoder(pipe)).expand(init.shape[0], -1, -1, -1)
    return PassInputs(size, init, None, cond, list, work)


def open_mask(config: RunConfig) -> Image.Image | None:
    """The ``mask_path`` file, decoded (RGBA when it has transparency: its alpha is the mask)."""
    path = config.img2img.mask_path
    return None if path is None else load_input_image(path, MASK_FIELD, keep_alpha=True)


def _inpaint(
    loaded: LoadedModel, config: RunConfig, images: Sequence[Image.Image], seeds: Sequence[int], nine: bool
) -> PassInputs:
    import torch

    i2i, pipe = config.img2img, loaded.pipe
    mask = open_mask(config)
    try:
        jobs = [prepare_inpaint(image, mask, i2i) for image in images]
    except EmptyMask:
        field = MASK_FIELD if i2i.mask_path is not None else "img2img.mask_from_alpha"
        raise ConfigError(
            "the mask selects no pixel, so there is nothing to inpaint: paint the area to repaint "
            "white (or make it transparent with mask_from_alpha)",
            field,
        ) from None
    size = jobs[0].image.size
    latents = denoise.vae_encode(pipe, [job.image for job in jobs], size)
    noise = _latent_noise(config, loaded, seeds, size) if i2i.masked_content == "latent noise" else None
    encode = _encoder(pipe)
    parts = [
        inpaint_latents(
            job,
            latents[i : i + 1],
            noise=None if noise is None else noise[i : i + 1],
            encode=encode,
            inpainting_model=nine,
        )
        for i, job in enumerate(jobs)
    ]
    conds = [p.image_conditioning for p in parts]
    return PassInputs(
        size=size,
        init_latents=torch.cat([p.init_latents for p in parts]),
        mask=torch.cat([p.mask for p in parts]),
        image_conditioning=torch.cat([c for c in conds if c is not None]) if nine else None,
        finish=lambda decoded: [finish_inpaint(job, im) for job, im in zip(jobs, decoded, strict=True)],
        unchanged=[finish_inpaint(job, job.image) for job in jobs],
    )


def _encoder(pipe: object) -> Callable[[torch.Tensor], torch.Tensor]:
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return denoise.vae_encode_tensor(pipe, pixels)

    return encode


def _latent_noise(
    config: RunConfig, loaded: LoadedModel, seeds: Sequence[int], size: tuple[int, int]
) -> torch.Tensor:
    """A1111's "latent noise": ``create_random_tensors`` for the images' seeds (no variation seed,
    no seed resize), i.e. the first draw of a fresh stream per seed."""
    spec = NoiseSpec(seeds=tuple(int(s) for s in seeds), source=config.rng_source)
    shape = denoise.latent_shape(loaded, *size)
    return ImageNoise(spec, shape, denoise.execution_device(loaded.pipe)).next()
