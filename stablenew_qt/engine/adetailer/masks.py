"""Detections and their masks, with the ADetailer extension's semantics (spec stage-semantics §1.3, §1.5).

The stage runs these in order on one unit's detections: :func:`filter_by_ratio`, :func:`top_k`,
:func:`sort_detections`, then :func:`preprocess_masks` (offset, dilate/erode, merge/invert) and, per
remaining mask, :func:`blur_mask`, :func:`unit_prompts`, :func:`dynamic_denoise` and
:func:`match_bbox_size`. Everything here is pure numpy/PIL; cv2 (shipped with ultralytics) is imported
inside the two functions that need it. Masks are 8-bit "L" images of the full image size, 0 = keep,
255 = repaint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import dist
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw

#: (x1, y1, x2, y2) in image pixels, as ultralytics ``boxes.xyxy`` gives them.
BBox = tuple[float, float, float, float]
TopKMethod = Literal["Area", "Confidence"]
SortOrder = Literal["None", "Position (left to right)", "Position (center to edge)", "Area (large to small)"]
MergeInvert = Literal["None", "Merge", "Merge and Invert"]
MatchMode = Literal["Off", "Strict (SDXL only)", "Free"]

#: The SDXL training buckets that "Strict (SDXL only)" bbox-size matching chooses from (spec §1.3 step 7).
SDXL_BUCKETS: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
)


@dataclass(frozen=True)
class Detection:
    """One detected object: its box, the detector's confidence and its mask ("L", image size)."""

    bbox: BBox
    confidence: float
    mask: Image.Image
    label: str = ""


class PreparedMask(NamedTuple):
    """A preprocessed mask and the box that bbox-dependent steps (dynamic denoise, size matching) use."""

    mask: Image.Image
    bbox: BBox


def bbox_area(bbox: BBox) -> float:
    """Area of an (x1, y1, x2, y2) box in square pixels."""
    return (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])


def bbox_mask(bbox: BBox, image_size: tuple[int, int]) -> Image.Image:
    """The mask of a box-only detector: the box drawn filled white on black, as ADetailer draws it."""
    mask = Image.new("L", image_size, 0)
    ImageDraw.Draw(mask).rectangle(bbox, fill=255)
    return mask


# 1. Filters and order (spec §1.3 steps 3-5) -------------------------------------------------------


def filter_by_ratio(
    dets: Sequence[Detection], image_size: tuple[int, int], low: float, high: float
) -> list[Detection]:
    """Keep detections with ``low <= bbox area / image area <= high`` (bbox area, not mask area)."""
    image_area = image_size[0] * image_size[1]
    return [d for d in dets if low <= bbox_area(d.bbox) / image_area <= high]


def top_k(dets: Sequence[Detection], k: int, method: TopKMethod) -> list[Detection]:
    """Keep the ``k`` largest boxes ("Area") or most confident ones ("Confidence"); 0 keeps all.

    As the extension does it (``filter_k_largest``/``filter_k_most_confident``): numpy's argsort
    of the keys (ascending), the last ``k`` indices, reversed. The kept detections are therefore
    descending by the key, and among equal keys the LATER detection comes first and wins a place:
    two equal boxes with k = 1 keep the second one. numpy's default sort is stable for the few
    detections ADetailer sees (insertion sort below 17 items); with more, or with numpy's AVX-512
    sort, equal keys can come out in another order, in the extension and here alike, because the
    same numpy call decides.
    """
    if k < 0:
        raise ValueError(f"top-k must be 0 (off) or positive, got {k}")
    if k == 0 or not dets:
        return list(dets)
    keys: dict[str, Callable[[Detection], float]] = {
        "Area": lambda d: bbox_area(d.bbox),
        "Confidence": lambda d: d.confidence,
    }
    if method not in keys:
        raise ValueError(f"unknown top-k method {method!r}; use 'Area' or 'Confidence'")
    order = np.argsort([keys[method](d) for d in dets])[-k:][::-1]
    return [dets[int(i)] for i in order]


def sort_detections(
    dets: Sequence[Detection], image_size: tuple[int, int], order: SortOrder
) -> list[Detection]:
    """Order detections by ADetailer's global "Sort bounding boxes by" option (a stable sort).

    "None" keeps the detector's order; "Position (left to right)" sorts by x1; "Position (center to
    edge)" by the Euclidean distance of the box centre to the image centre, nearest first; "Area
    (large to small)" by box area, largest first.
    """
    centre = (image_size[0] / 2, image_size[1] / 2)
    keys: dict[str, Callable[[Detection], float]] = {
        "Position (left to right)": lambda d: d.bbox[0],
        "Position (center to edge)": lambda d: dist(
            centre, ((d.bbox[0] + d.bbox[2]) / 2, (d.bbox[1] + d.bbox[3]) / 2)
        ),
        "Area (large to small)": lambda d: -bbox_area(d.bbox),
    }
    if order == "None":
        return list(dets)
    if order not in keys:
        raise ValueError(f"unknown sort order {order!r}; use 'None' or one of {', '.join(keys)}")
    return sorted(dets, key=keys[order])


# 2. Mask preprocessing (spec §1.3 step 6) ---------------------------------------------------------


def offset_mask(mask: Image.Image, x: int, y: int) -> Image.Image:
    """Shift a mask ``x`` px right and ``y`` px UP. Pixels wrap around the borders, as PIL's offset does."""
    return ImageChops.offset(mask, x, -y)


def dilate_erode(mask: Image.Image, value: int) -> Image.Image:
    """Dilate (``value`` > 0) or erode (< 0) once with a |value| x |value| square kernel; 0 = unchanged.

    Same as ``cv2.dilate``/``cv2.erode`` with ``np.ones((v, v))``: the kernel's anchor is at v // 2,
    so for an even size the change is lopsided (dilating by 4 grows a shape 1 px left/up and 2 px
    right/down; eroding by 4 shrinks it 2 px from the left/top and 1 px from the right/bottom).
    The image border neither grows nor erodes a shape.
    """
    if value == 0:
        return mask
    import cv2

    size = abs(value)
    kernel = np.ones((size, size), np.uint8)
    arr = np.asarray(mask.convert("L"))
    out = cv2.dilate(arr, kernel) if value > 0 else cv2.erode(arr, kernel)
    return Image.fromarray(out)


def _dilate_erode_all(pairs: list[PreparedMask], value: int) -> list[PreparedMask]:
    if value == 0:
        return pairs
    changed = [PreparedMask(dilate_erode(p.mask, value), p.bbox) for p in pairs]
    return [p for p in changed if p.mask.getbbox() is not None]


def _merge(pairs: list[PreparedMask], invert: bool) -> list[PreparedMask]:
    merged = np.bitwise_or.reduce([np.asarray(p.mask.convert("L")) for p in pairs])
    if invert:
        merged = 255 - merged
    return [PreparedMask(Image.fromarray(merged), pairs[0].bbox)]


def preprocess_masks(
    dets: Sequence[Detection],
    x_offset: int,
    y_offset: int,
    dilate_erode: int,
    merge_invert: MergeInvert,
) -> list[PreparedMask]:
    """Offset, then dilate/erode, then merge/invert the detections' masks (ADetailer's order).

    A dilate/erode that leaves a mask all black drops it. "Merge" ORs every mask into one, "Merge and
    Invert" also inverts that. Each result carries the box that bbox-dependent steps use: its own
    detection's box, or, after a merge, the first remaining detection's box.
    """
    if merge_invert not in ("None", "Merge", "Merge and Invert"):
        raise ValueError(f"unknown merge mode {merge_invert!r}; use 'None', 'Merge' or 'Merge and Invert'")
    pairs = [PreparedMask(d.mask, d.bbox) for d in dets]
    if x_offset or y_offset:
        pairs = [PreparedMask(offset_mask(p.mask, x_offset, y_offset), p.bbox) for p in pairs]
    pairs = _dilate_erode_all(pairs, dilate_erode)
    if merge_invert == "None" or not pairs:
        return pairs
    return _merge(pairs, invert=merge_invert == "Merge and Invert")


# 3. Blur (A1111 img2img "Mask blur", spec §1.4) -------------------------------------------------


def blur_kernel_size(sigma: float) -> int:
    """A1111's Gaussian kernel size for a mask blur of ``sigma`` px: ``2 * int(2.5 * sigma + 0.5) + 1``."""
    return 2 * int(2.5 * sigma + 0.5) + 1


def blur_mask(mask: Image.Image, sigma: float) -> Image.Image:
    """Gaussian-blur a mask as A1111 does; ``sigma`` <= 0 returns it unchanged.

    Two 1-D ``cv2.GaussianBlur`` passes, horizontal then vertical, each with
    :func:`blur_kernel_size` taps and ``sigma``, rounding to 8 bits in between (A1111 applies
    ``mask_blur_x`` then ``mask_blur_y``); borders reflect without repeating the edge pixel.
    """
    if sigma <= 0:
        return mask
    import cv2

    size = blur_kernel_size(sigma)
    arr = np.asarray(mask.convert("L"))
    arr = cv2.GaussianBlur(arr, (size, 1), sigma)
    arr = cv2.GaussianBlur(arr, (1, size), sigma)
    return Image.fromarray(arr)


# 4. Per-mask prompts, strength and size (spec §1.3 step 7, §1.5) ------------------------------------

_SEP = re.compile(r"\s*\[SEP\]\s*")


def _prompt_part(unit_prompt: str, main_prompt: str, index: int) -> str:
    if index < 0:
        raise ValueError(f"mask index must be >= 0, got {index}")
    parts = _SEP.split(unit_prompt)
    part = parts[min(index, len(parts) - 1)]
    if not part.strip():
        return main_prompt
    return part.replace("[PROMPT]", main_prompt)


def unit_prompts(unit_prompt: str, main_prompt: str, index: int) -> str | None:
    """The positive prompt for mask ``index`` of a unit, or None when that mask is to be skipped.

    ``unit_prompt`` is split on ``[SEP]`` (whitespace around it ignored); mask j uses part
    min(j, parts - 1). A blank part means the image's main prompt; ``[PROMPT]`` inside a part is
    replaced by the main prompt. A part that is ``[SKIP]`` (surrounding whitespace allowed) skips
    the mask: None.
    """
    prompt = _prompt_part(unit_prompt, main_prompt, index)
    return None if prompt.strip() == "[SKIP]" else prompt


def unit_negative_prompt(unit_negative: str, main_negative: str, index: int) -> str:
    """The negative prompt for mask ``index``: the :func:`unit_prompts` rules without ``[SKIP]``."""
    return _prompt_part(unit_negative, main_negative, index)


def dynamic_denoise(strength: float, bbox_area_ratio: float, power: float) -> float:
    """ADetailer's dynamic denoise: ``strength * (1 - bbox area / image area) ** power``, unclamped.

    ``power`` 0 turns it off. Positive powers lower the strength for large boxes, negative ones
    raise it, above 1 if need be: the extension passes the product on unclamped, and A1111's
    img2img then runs ``int(min(strength, 0.999) * steps) + 1`` steps, so anything from 0.999 up
    denoises fully (``ksampling``'s img2img steps do the same). A box covering the whole image
    with a negative power is ``0 ** power``, a ZeroDivisionError in the extension (A1111 logs it
    and ADetailer stops for that image); here it is the strongest denoise, 1.0.
    """
    if abs(power) <= 1e-8:  # ADetailer's np.isclose(power, 0)
        return strength
    remaining = 1.0 - min(max(bbox_area_ratio, 0.0), 1.0)
    if remaining == 0.0:
        return 1.0 if power < 0 else 0.0
    modifier: float = remaining**power
    return strength * modifier


def _free_size(bbox_w: float, bbox_h: float, inpaint_size: tuple[int, int]) -> tuple[int, int]:
    long_side = max(inpaint_size)
    aspect = bbox_w / bbox_h
    w, h = (long_side, long_side / aspect) if aspect > 1 else (long_side * aspect, long_side)
    return int((w + 7) // 8 * 8), int((h + 7) // 8 * 8)


def _sdxl_size(bbox_w: float, bbox_h: float, inpaint_size: tuple[int, int]) -> tuple[int, int]:
    width, height = inpaint_size
    fits = [(w, h) for w, h in SDXL_BUCKETS if w >= bbox_w and h >= bbox_h and (w >= width or h >= height)]
    if not fits:
        return inpaint_size
    aspect = bbox_w / bbox_h
    return min(fits, key=lambda res: abs(res[0] / res[1] - aspect))


def match_bbox_size(
    mode: MatchMode, bbox: BBox, inpaint_size: tuple[int, int], is_sdxl: bool
) -> tuple[int, int]:
    """The inpaint (width, height) for a box under ADetailer's "Match inpaint size to bbox size".

    "Off" keeps ``inpaint_size``. "Free" keeps its longer side as the long side, gives the other the
    box's aspect ratio and rounds both up to a multiple of 8. "Strict (SDXL only)" (SDXL models only,
    otherwise "Off") picks, among :data:`SDXL_BUCKETS` that contain the box and are at least as wide
    or as tall as ``inpaint_size``, the one closest to the box's aspect ratio (first on ties), or
    keeps ``inpaint_size`` when none fits. The caller applies this only when the unit has no
    separate inpaint width/height. A degenerate (zero-height or zero-width) box keeps ``inpaint_size``.
    """
    bbox_w, bbox_h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    if mode == "Off" or bbox_w <= 0 or bbox_h <= 0:
        return inpaint_size
    if mode == "Free":
        return _free_size(bbox_w, bbox_h, inpaint_size)
    if mode == "Strict (SDXL only)":
        return _sdxl_size(bbox_w, bbox_h, inpaint_size) if is_sdxl else inpaint_size
    raise ValueError(f"unknown bbox size match mode {mode!r}; use 'Off', 'Free' or 'Strict (SDXL only)'")
