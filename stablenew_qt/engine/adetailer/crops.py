"""A1111 img2img "Inpaint area: Only masked": crop around a mask, resize, paste back (spec §1.4).

For one blurred mask the inner inpaint does:

1. ``region = crop_region(blurred, padding)``; None means an empty mask.
2. ``region = expand_to_aspect(region, width, height, image.size)``.
3. ``resize_fill(image.crop(region), width, height)`` (and the same for the mask) is what gets inpainted.
4. ``paste_back(image, result, blurred, region)`` puts the result back through the blurred mask, so
   every pixel where the blurred mask is 0 keeps its original bytes.

Regions are integer (x1, y1, x2, y2) boxes with exclusive x2/y2, like PIL's ``getbbox``. Images are
8-bit "L", "RGB" or "RGBA"; resizing uses LANCZOS, as A1111 does without an img2img upscaler.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: (x1, y1, x2, y2) in whole pixels, x2/y2 exclusive.
Region = tuple[int, int, int, int]


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
    """A1111 resize mode 2, "Resize and fill": fit inside ``width x height`` keeping the aspect ratio,
    centre it, and fill the bars by repeating the nearest edge row or column."""
    if width / height < image.width / image.height:
        fit_w, fit_h = width, max(image.height * width // image.width, 1)
    else:
        fit_w, fit_h = max(image.width * height // image.height, 1), height
    arr = np.asarray(_lanczos(image, fit_w, fit_h))
    top, left = height // 2 - fit_h // 2, width // 2 - fit_w // 2
    pad = [(top, height - fit_h - top), (left, width - fit_w - left)] + [(0, 0)] * (arr.ndim - 2)
    return Image.fromarray(np.pad(arr, pad, mode="edge"))


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
    """Composite an inpainted crop back into the full image through the blurred mask.

    ``generated_crop`` is resized to the region's size with :func:`resize_crop` and placed at the
    region's top-left; then ``out = m * generated + (1 - m) * original`` with ``m = blurred_mask / 255``
    inside the region and ``m = 0`` outside it, rounded to the nearest integer. Pixels where ``m`` is 0
    are byte-identical to ``original``; where the mask is 255 they equal the generated pixel.
    """
    x1, y1, x2, y2 = region
    if blurred_mask.size != original.size:
        raise ValueError(f"mask size {blurred_mask.size} differs from the image size {original.size}")
    if not (0 <= x1 < x2 <= original.width and 0 <= y1 < y2 <= original.height):
        raise ValueError(f"paste region {region} is empty or outside the {original.size} image")
    generated = resize_crop(generated_crop.convert(original.mode), x2 - x1, y2 - y1)
    out = np.array(original)
    before = out[y1:y2, x1:x2].astype(np.uint32)
    weight = np.asarray(blurred_mask.convert("L"))[y1:y2, x1:x2].astype(np.uint32)
    if before.ndim == 3:
        weight = weight[:, :, None]
    blended = (weight * np.asarray(generated, dtype=np.uint32) + (255 - weight) * before + 127) // 255
    out[y1:y2, x1:x2] = blended.astype(np.uint8)
    return Image.fromarray(out)
