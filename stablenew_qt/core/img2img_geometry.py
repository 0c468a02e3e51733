"""A1111 img2img geometry: resize modes, the "only masked" crop and paste-back, the outpaint canvas.

Pure Pillow (no torch), shared by the img2img stage's inpainting and ADetailer. Facts from A1111
1.10 ``modules/images.py`` ``resize_image``, ``modules/masking.py`` and ``modules/processing.py``
(stage-semantics §1.4); the code is our own.

For one blurred mask an "only masked" inpaint does:

1. ``region = crop_region(blurred, padding)``; None means an empty mask.
2. ``region = expand_to_aspect(region, width, height, image.size)``.
3. ``resize_fill(image.crop(region), width, height)`` (and the same for the mask) is what gets inpainted.
4. ``paste_back(image, result, blurred, region)`` puts the result back through the blurred mask with
   A1111's Pillow compositing, so every pixel where the blurred mask is 0 keeps its original bytes.

Regions are integer (x1, y1, x2, y2) boxes with exclusive x2/y2, like PIL's ``getbbox``. Images are
8-bit "L", "RGB" or "RGBA"; resizing uses LANCZOS, as A1111 does without an img2img upscaler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps

#: (x1, y1, x2, y2) in whole pixels, x2/y2 exclusive.
Region = tuple[int, int, int, int]
#: RunConfig ``img2img.resize_mode`` values, in A1111's order (0-3).
ResizeMode = Literal["just resize", "crop and resize", "resize and fill", "latent upscale"]
#: A1111's infotext ``Resize mode`` names, written when the mode is not the first one.
RESIZE_MODE_NAMES: dict[str, str] = {
    "just resize": "Just resize",
    "crop and resize": "Crop and resize",
    "resize and fill": "Resize and fill",
    "latent upscale": "Just resize (latent upscale)",
}


def crop_region(mask: Image.Image, padding: int) -> Region | None:
    """Bounding box of the mask's non-zero pixels grown by ``padding`` px per side, clamped to the image.

    None for an all-black mask (A1111 then falls back to a whole-image img2img).
    """
    box = mask.convert("L").getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    width, height = mask.size
    return max(x1 - padding, 0), max(y1 - padding, 0), min(x2 + padding, width), min(y2 + padding, height)


def _grow_axis(lo: int, hi: int, grow: int, limit: int) -> tuple[int, int]:
    # Half before, the odd pixel after; then shift back inside [0, limit], then clamp.
    lo -= grow // 2
    hi += grow - grow // 2
    if hi > limit:
        lo -= hi - limit
        hi = limit
    if lo < 0:
        hi -= lo
        lo = 0
    return lo, min(hi, limit)


def expand_to_aspect(region: Region, width: int, height: int, image_size: tuple[int, int]) -> Region:
    """Grow ``region`` to the processing aspect ratio ``width / height`` (A1111 ``expand_crop_region``).

    The short dimension grows symmetrically, the odd pixel going to the bottom/right; a region that
    then overflows the image is shifted back inside, and clamped to the image if it is still too big
    (the aspect ratio is then not reached; :func:`resize_fill` absorbs the difference).
    """
    x1, y1, x2, y2 = region
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"crop region {region} is empty")
    target = width / height
    if (x2 - x1) / (y2 - y1) > target:
        y1, y2 = _grow_axis(y1, y2, int((x2 - x1) / target - (y2 - y1)), image_size[1])
    else:
        x1, x2 = _grow_axis(x1, x2, int((y2 - y1) * target - (x2 - x1)), image_size[0])
    return x1, y1, x2, y2


def _lanczos(image: Image.Image, width: int, height: int) -> Image.Image:
    return image.resize((max(width, 1), max(height, 1)), Image.Resampling.LANCZOS)


def resize_fill(image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111 resize mode 2, "Resize and fill" (``images.resize_image``), pixel for pixel.

    The image is fitted inside ``width x height`` keeping its aspect ratio (LANCZOS) and pasted on
    a black canvas at ``(width // 2 - fit_w // 2, height // 2 - fit_h // 2)``. Each bar of
    ``height // 2 - fit_h // 2`` rows (or columns) is then filled by resizing a zero-height box at
    the fitted image's top or bottom edge (zero-width: left or right) with Pillow's default filter,
    which spreads a bicubic blend of the rows nearest the edge; the second bar starts right after
    the image, so when the free space is odd the last row (column) stays black. Where A1111 would
    fail on a bar of zero rows (Pillow refuses a zero-size resize), the bar is left out.
    """
    ratio, source_ratio = width / height, image.width / image.height
    fit_w = width if ratio < source_ratio else max(image.width * height // image.height, 1)
    fit_h = height if ratio >= source_ratio else max(image.height * width // image.width, 1)
    fitted = _lanczos(image, fit_w, fit_h)
    canvas = Image.new(image.mode, (width, height))
    canvas.paste(fitted, (width // 2 - fit_w // 2, height // 2 - fit_h // 2))
    if ratio < source_ratio:
        bar = height // 2 - fit_h // 2
        _paste_bars(canvas, fitted, (width, bar), [((0, 0, width, 0), (0, 0)),
                    ((0, fit_h, width, fit_h), (0, bar + fit_h))])  # fmt: skip
    elif ratio > source_ratio:
        bar = width // 2 - fit_w // 2
        _paste_bars(canvas, fitted, (bar, height), [((0, 0, 0, height), (0, 0)),
                    ((fit_w, 0, fit_w, height), (bar + fit_w, 0))])  # fmt: skip
    return canvas


def _paste_bars(
    canvas: Image.Image,
    fitted: Image.Image,
    size: tuple[int, int],
    edges: list[tuple[tuple[int, int, int, int], tuple[int, int]]],
) -> None:
    if min(size) <= 0:
        return
    for edge, at in edges:  # a zero-size source box: Pillow samples around the edge line
        canvas.paste(fitted.resize(size, Image.Resampling.BICUBIC, box=edge), at)


def resize_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111 resize mode 1, "Crop and resize": cover ``width x height`` keeping the aspect ratio, then
    crop the centre, starting at ``fitted // 2 - target // 2`` on each axis as A1111 does."""
    if width / height > image.width / image.height:
        fit_w, fit_h = width, image.height * width // image.width
    else:
        fit_w, fit_h = image.width * height // image.height, height
    left, top = fit_w // 2 - width // 2, fit_h // 2 - height // 2
    return _lanczos(image, fit_w, fit_h).crop((left, top, left + width, top + height))


def paste_back(
    original: Image.Image, generated_crop: Image.Image, blurred_mask: Image.Image, region: Region
) -> Image.Image:
    """Composite an inpainted crop back into the full image through the blurred mask, as A1111 does.

    A1111's ``apply_overlay``: ``generated_crop`` is resized to the region with :func:`resize_crop`
    and pasted at the region's top-left on a transparent canvas; over it goes the original image
    whose alpha is ``255 - mask``, built through Pillow's premultiplied "RGBa" mode (paste with the
    inverted mask, convert back to "RGBA") and laid on with ``Image.alpha_composite``. Each of those
    Pillow steps rounds in integers, so where ``0 < mask < 255`` the result differs by up to one
    level from an exact ``m * generated + (1 - m) * original``; where the mask is 0 it is the
    original byte for byte, where it is 255 the generated pixel. Returns an image of
    ``original``'s mode (A1111 works in RGB).
    """
    x1, y1, x2, y2 = region
    if blurred_mask.size != original.size:
        raise ValueError(f"mask size {blurred_mask.size} differs from the image size {original.size}")
    if not (0 <= x1 < x2 <= original.width and 0 <= y1 < y2 <= original.height):
        raise ValueError(f"paste region {region} is empty or outside the {original.size} image")
    kept = Image.new("RGBa", original.size)
    kept.paste(original.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(blurred_mask.convert("L")))
    canvas = Image.new("RGBA", original.size)
    canvas.paste(resize_crop(generated_crop.convert("RGB"), x2 - x1, y2 - y1), (x1, y1))
    canvas.alpha_composite(kept.convert("RGBA"))
    return canvas.convert("RGB").convert(original.mode)


def just_resize(image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111 resize mode 0, "Just resize": stretch to ``width x height`` (LANCZOS)."""
    return image if image.size == (width, height) else _lanczos(image, width, height)


def resize_image(mode: ResizeMode, image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111 ``resize_image`` for a RunConfig resize mode, in pixels.

    "latent upscale" leaves the pixels alone: the stage resizes the encoded latents (bilinear) to
    ``width/8 x height/8`` instead, as A1111 does; for a mask (which has no latents) it is
    "just resize".
    """
    if mode == "crop and resize":
        return image if image.size == (width, height) else resize_crop(image, width, height)
    if mode == "resize and fill":
        return image if image.size == (width, height) else resize_fill(image, width, height)
    if mode == "latent upscale":
        return image
    return just_resize(image, width, height)


def processing_size(width: int, height: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """The img2img processing size: ``width``/``height`` from the config, 0 = the input's own side.

    An input side that is not a multiple of 8 is floored to one (the VAE works in 8-pixel cells;
    A1111's UI snaps its size sliders to 8 in the same way).
    """
    w = width or max(image_size[0] // 8 * 8, 8)
    h = height or max(image_size[1] // 8 * 8, 8)
    return w, h


def img2img_output_size(
    width: int,
    height: int,
    input_size: tuple[int, int],
    *,
    only_masked: bool = False,
    outpaint: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> tuple[int, int]:
    """The size of the image an img2img pass hands on, as A1111 makes it.

    ``outpaint`` is (left, right, top, bottom). "Only masked" pastes back into the full (grown)
    image; otherwise the result has the processing size (:func:`processing_size`).
    """
    left, right, top, bottom = outpaint
    canvas = (input_size[0] + left + right, input_size[1] + top + bottom)
    return canvas if only_masked else processing_size(width, height, canvas)


@dataclass(frozen=True)
class OutpaintCanvas:
    """The grown canvas of an outpaint: ``image`` (edges stretched into the new area), ``mask``
    ("L", 255 on the new area, 0 on the old image) and ``box``, where the old image now sits."""

    image: Image.Image
    mask: Image.Image
    box: Region


def outpaint_canvas(image: Image.Image, left: int, right: int, top: int, bottom: int) -> OutpaintCanvas:
    """Grow ``image`` by exactly ``left/right/top/bottom`` pixels and mask the new area.

    The new area is pre-filled by stretching the image's outermost row/column into it (nearest
    edge pixel; the corners take the corner pixel), so "original" masked content starts from
    plausible colours rather than black. A1111's "Poor man's outpainting" instead rounds the
    canvas up to a multiple of 64 and starts from black with masked content "fill"; we grow by
    exactly what was asked (the sizes are multiples of 8, so the VAE grid still fits).
    """
    if min(left, right, top, bottom) < 0:
        raise ValueError(f"outpaint sizes must not be negative, got {(left, right, top, bottom)}")
    width, height = image.width + left + right, image.height + top + bottom
    import numpy as np  # here, not at import: core's sweep and validation modules stay light

    src = np.asarray(image.convert("RGBA") if image.mode not in ("L", "RGB", "RGBA") else image)
    ys = np.clip(np.arange(height) - top, 0, image.height - 1)
    xs = np.clip(np.arange(width) - left, 0, image.width - 1)
    canvas = Image.fromarray(np.ascontiguousarray(src[ys][:, xs]))
    mask = Image.new("L", (width, height), 255)
    box = (left, top, left + image.width, top + image.height)
    mask.paste(0, box)
    return OutpaintCanvas(canvas, mask, box)


# Masks (A1111 ``create_binary_mask`` and the inpaint tab's alpha) ---------------------------------


def binary_mask(mask: Image.Image) -> Image.Image:
    """A1111's ``create_binary_mask``: an RGBA mask with real transparency becomes its alpha
    thresholded (> 128 is white); any other mask becomes grey ("L"), soft values kept."""
    if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
        return mask.getchannel("A").point(lambda v: 255 if v > 128 else 0)
    return mask.convert("L")


def alpha_mask(image: Image.Image) -> Image.Image:
    """The mask of an image's transparency: every pixel that is not fully opaque is repainted
    (A1111's inpaint tab: the inverted alpha, any value above 0 counting). All black when opaque."""
    if "A" not in image.getbands() and "transparency" not in image.info:
        return Image.new("L", image.size)
    alpha = image.convert("RGBA").getchannel("A")
    return ImageOps.invert(alpha).point(lambda v: 255 if v > 0 else 0)
