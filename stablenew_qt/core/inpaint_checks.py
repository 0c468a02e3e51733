"""Inpaint problems found before any model loads, each a ConfigProblem the user can act on.

Three levels, cheapest first:

- :func:`inpaint_structural_problems`: from the config alone (the sequencer's structure check).
- :func:`check_inpaint_files`: the mask file is a readable image of an accepted size (header only,
  as for ``input_image_path``); the sequencer runs it with its file checks.
- :func:`check_inpaint_pixels`: decodes the mask (or the input's alpha) and refuses one that
  selects no pixel; the runner's pre-flight runs it on the worker thread.

A mask of another size than the image is not a problem: it is resized to the image, as A1111 does.
"""

from __future__ import annotations

from PIL import Image, ImageOps

from .config import RunConfig
from .errors import ConfigError, ConfigProblem
from .images import check_input_image, lazy_image, open_image_file, shown_path
from .img2img_geometry import alpha_mask, binary_mask

MASK_FIELD = "img2img.mask_path"
ALPHA_FIELD = "img2img.mask_from_alpha"


def _source_field(config: RunConfig) -> str:
    i2i = config.img2img
    if i2i.mask_path is not None:
        return MASK_FIELD
    return ALPHA_FIELD if i2i.mask_from_alpha else "img2img.outpaint"


def inpaint_structural_problems(config: RunConfig) -> list[ConfigProblem]:
    """A mask or an outpaint needs img2img on, as the first stage, on one input image."""
    i2i = config.img2img
    if not i2i.inpainting or not i2i.enabled:
        return []
    field = _source_field(config)
    if config.txt2img.enabled:
        return [
            ConfigProblem(
                field,
                "inpainting and outpainting repaint input_image_path: turn txt2img off and set "
                "input_image_path, or clear the mask and outpaint settings",
            )
        ]
    if i2i.mask_path is not None and not i2i.mask_path.strip():
        return [ConfigProblem(MASK_FIELD, "is empty: choose a mask image file, or set it to null")]
    return []


def inpaint_warnings(config: RunConfig) -> list[str]:
    """Settings that do nothing because img2img is off."""
    i2i = config.img2img
    if i2i.inpainting and not i2i.enabled:
        return [f"{_source_field(config)} is ignored: img2img is off"]
    return []


def check_inpaint_files(config: RunConfig) -> None:
    """ConfigError on ``img2img.mask_path`` unless it names a readable image (header only)."""
    i2i = config.img2img
    if i2i.enabled and i2i.mask_path is not None:
        check_input_image(i2i.mask_path, MASK_FIELD)


def _decoded(path: str, field: str) -> Image.Image:
    with open_image_file(path, field) as handle:
        try:
            image = lazy_image(handle)
            image.load()
        except Exception as exc:
            raise ConfigError(
                f"{shown_path(path)} is not a readable image ({type(exc).__name__}); use a PNG file", field
            ) from None
        return image


def check_inpaint_pixels(config: RunConfig) -> None:
    """Decode the mask source and refuse, as a ConfigError, one that repaints nothing.

    Run after the sequencer's checks (so the files are known to be readable images). An outpaint
    always repaints its new area, so with an outpaint nothing is decoded.
    """
    i2i = config.img2img
    if not i2i.enabled or not i2i.inpainting or i2i.outpaint.any:
        return
    if i2i.mask_path is not None:
        mask = binary_mask(_decoded(i2i.mask_path, MASK_FIELD))
        shown = shown_path(i2i.mask_path)
        if i2i.mask_mode == "inpaint not masked":
            mask = ImageOps.invert(mask)
        if mask.getbbox() is None:
            white = "white" if i2i.mask_mode == "inpaint not masked" else "black"
            raise ConfigError(
                f"the mask {shown} is all {white}, so there is nothing to inpaint: paint the area to "
                "repaint white (or use mask_mode 'inpaint masked' / 'inpaint not masked' the other way)",
                MASK_FIELD,
            )
        return
    if config.input_image_path is None:
        return
    mask = alpha_mask(_decoded(config.input_image_path, "input_image_path"))
    if i2i.mask_mode == "inpaint not masked":
        mask = ImageOps.invert(mask)
    if mask.getbbox() is None:
        raise ConfigError(
            f"the input image {shown_path(config.input_image_path)} has no transparent pixel to "
            "repaint: erase the area to repaint (save it as a PNG with transparency), or use mask_path",
            ALPHA_FIELD,
        )
