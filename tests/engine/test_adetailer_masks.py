"""ADetailer mask, crop and prompt helpers: exact pixel expectations on small synthetic masks.

Expected values are worked out by hand from the ADetailer / A1111 rules (spec stage-semantics §1.3-1.5),
not produced by the code under test.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from stablenew_qt.engine.adetailer.crops import (
    crop_region,
    expand_to_aspect,
    paste_back,
    resize_crop,
    resize_fill,
)
from stablenew_qt.engine.adetailer.masks import (
    BBox,
    Detection,
    bbox_mask,
    blur_kernel_size,
    blur_mask,
    dilate_erode,
    dynamic_denoise,
    filter_by_ratio,
    match_bbox_size,
    offset_mask,
    preprocess_masks,
    sort_detections,
    top_k,
    unit_negative_prompt,
    unit_prompts,
)


def _mask(size: int, *blocks: tuple[int, int, int, int]) -> Image.Image:
    """A size x size "L" mask with white (row0, row1, col0, col1) half-open blocks."""
    arr = np.zeros((size, size), np.uint8)
    for r0, r1, c0, c1 in blocks:
        arr[r0:r1, c0:c1] = 255
    return Image.fromarray(arr)


def _white(mask: Image.Image) -> set[tuple[int, int]]:
    """(row, col) of every non-zero pixel."""
    return {(int(r), int(c)) for r, c in np.argwhere(np.asarray(mask) > 0)}


def _block(r0: int, r1: int, c0: int, c1: int) -> set[tuple[int, int]]:
    return {(r, c) for r in range(r0, r1) for c in range(c0, c1)}


def _det(bbox: BBox, confidence: float = 0.5, size: int = 100) -> Detection:
    return Detection(bbox=bbox, confidence=confidence, mask=bbox_mask(bbox, (size, size)))


# --- offset -----------------------------------------------------------------------------------------


def test_offset_moves_right_and_up() -> None:
    mask = _mask(8, (4, 5, 2, 3))  # pixel at row 4, col 2
    assert _white(offset_mask(mask, 3, 0)) == {(4, 5)}
    assert _white(offset_mask(mask, 0, 3)) == {(1, 2)}  # +y is UP
    assert _white(offset_mask(mask, -1, -2)) == {(6, 1)}


def test_offset_wraps_around_every_border() -> None:
    mask = _mask(8, (1, 2, 6, 7))  # pixel at row 1, col 6
    assert _white(offset_mask(mask, 3, 0)) == {(1, 1)}  # off the right edge, back in on the left
    assert _white(offset_mask(mask, -7, 0)) == {(1, 7)}  # off the left edge
    assert _white(offset_mask(mask, 0, 2)) == {(7, 6)}  # off the top, back in at the bottom
    assert _white(offset_mask(mask, 0, -7)) == {(0, 6)}  # off the bottom
    assert _white(offset_mask(mask, 4, 5)) == {(4, 2)}


# --- dilate / erode ---------------------------------------------------------------------------------


def test_dilate_by_4_grows_one_pixel_up_left_and_two_down_right() -> None:
    out = dilate_erode(_mask(16, (6, 8, 6, 8)), 4)
    assert out.mode == "L"
    assert _white(out) == _block(5, 10, 5, 10)
    assert set(np.unique(np.asarray(out))) == {0, 255}


def test_erode_by_4_shrinks_two_pixels_up_left_and_one_down_right() -> None:
    out = dilate_erode(_mask(16, (2, 12, 3, 13)), -4)
    assert _white(out) == _block(4, 11, 5, 12)


def test_erode_does_not_eat_from_the_image_border() -> None:
    out = dilate_erode(_mask(16, (0, 6, 0, 16)), -4)
    assert _white(out) == _block(0, 5, 0, 16)


def test_dilate_erode_zero_is_unchanged() -> None:
    mask = _mask(8, (1, 3, 1, 3))
    assert np.array_equal(np.asarray(dilate_erode(mask, 0)), np.asarray(mask))


# --- preprocess: offset, dilate/erode, merge/invert -----------------------------------------------


def _dets16(*blocks: tuple[int, int, int, int]) -> list[Detection]:
    return [
        Detection(bbox=(float(c0), float(r0), float(c1), float(r1)), confidence=0.5, mask=_mask(16, b))
        for b in blocks
        for r0, r1, c0, c1 in [b]
    ]


def test_preprocess_offsets_before_dilating() -> None:
    det = Detection(bbox=(7.0, 3.0, 8.0, 4.0), confidence=0.9, mask=_mask(8, (3, 4, 7, 8)))
    (prepared,) = preprocess_masks([det], 1, 0, 2, "None")
    # Offset first wraps col 7 to col 0, then a 2x2 dilation adds col 1 and row 4.
    # (Dilating first would leave only col 0 after the offset.)
    assert _white(prepared.mask) == _block(3, 5, 0, 2)
    assert prepared.bbox == det.bbox


def test_preprocess_drops_masks_that_an_erode_empties() -> None:
    big, tiny, other = (2, 10, 2, 10), (12, 15, 12, 15), (1, 7, 10, 16)
    dets = _dets16(big, tiny, other)
    prepared = preprocess_masks(dets, 0, 0, -4, "None")
    assert [p.bbox for p in prepared] == [dets[0].bbox, dets[2].bbox]
    assert _white(prepared[0].mask) == _block(4, 9, 4, 9)
    assert _white(prepared[1].mask) == _block(3, 6, 12, 16)  # the right image border does not erode


def test_preprocess_merge_ors_all_masks_and_uses_the_first_bbox() -> None:
    dets = _dets16((0, 2, 0, 2), (4, 6, 4, 6), (1, 3, 1, 3))
    (merged,) = preprocess_masks(dets, 0, 0, 0, "Merge")
    assert _white(merged.mask) == _block(0, 2, 0, 2) | _block(4, 6, 4, 6) | _block(1, 3, 1, 3)
    assert merged.bbox == dets[0].bbox


def test_preprocess_merge_and_invert() -> None:
    dets = _dets16((0, 2, 0, 2), (4, 6, 4, 6))
    (inverted,) = preprocess_masks(dets, 0, 0, 0, "Merge and Invert")
    every = _block(0, 16, 0, 16)
    assert _white(inverted.mask) == every - _block(0, 2, 0, 2) - _block(4, 6, 4, 6)
    assert set(np.unique(np.asarray(inverted.mask))) == {0, 255}


def test_preprocess_merge_after_a_drop_uses_the_first_remaining_bbox() -> None:
    dets = _dets16((1, 4, 1, 4), (4, 12, 4, 12))
    (merged,) = preprocess_masks(dets, 0, 0, -4, "Merge")
    assert merged.bbox == dets[1].bbox
    assert _white(merged.mask) == _block(6, 11, 6, 11)


def test_preprocess_nothing_left_is_empty_for_every_mode() -> None:
    dets = _dets16((1, 4, 1, 4))
    for mode in ("None", "Merge", "Merge and Invert"):
        assert preprocess_masks(dets, 0, 0, -4, mode) == []
    assert preprocess_masks([], 5, 5, 4, "Merge") == []


def test_preprocess_rejects_an_unknown_merge_mode() -> None:
    with pytest.raises(ValueError, match="Merge and Invert"):
        preprocess_masks(_dets16((0, 3, 0, 3)), 0, 0, 0, "Invert")  # type: ignore[arg-type]


# --- blur -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sigma", "size"), [(0.5, 3), (1, 7), (2, 11), (4, 21), (7.5, 39), (64, 321)])
def test_blur_kernel_size_is_a1111s(sigma: float, size: int) -> None:
    assert blur_kernel_size(sigma) == size


def _gaussian(sigma: float) -> np.ndarray:
    size = blur_kernel_size(sigma)
    taps: np.ndarray = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma * sigma))
    taps /= taps.sum()
    return taps


def _convolve(arr: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """1-D convolution with reflect-101 borders (numpy's "reflect" does not repeat the edge pixel)."""
    radius = len(taps) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(arr.astype(np.float64), pad, mode="reflect")
    n = arr.shape[axis]
    out = np.zeros(arr.shape, np.float64)
    for i, tap in enumerate(taps):
        out += tap * np.take(padded, range(i, i + n), axis=axis)
    return out


def _hand_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Float separable Gaussian, rounded to 8 bits at the end."""
    taps = _gaussian(sigma)
    blurred: np.ndarray = np.floor(_convolve(_convolve(arr, taps, 1), taps, 0) + 0.5)
    return blurred


@pytest.mark.parametrize("sigma", [0.5, 1, 4, 7.5])
def test_blur_of_stripes_is_the_1d_gaussian(sigma: float) -> None:
    # Columns (then rows) that are constant along the other axis test each pass on its own. cv2's 8-bit
    # Gaussian uses fixed-point weights, hence "within 1 LSB" rather than equality.
    arr = np.zeros((40, 40), np.uint8)
    arr[:, 12:25] = 255
    for mask in (arr, arr.T.copy()):
        out = np.asarray(blur_mask(Image.fromarray(mask), sigma)).astype(np.float64)
        assert np.abs(out - _hand_blur(mask, sigma)).max() <= 1.0


@pytest.mark.parametrize("sigma", [0.5, 1])
def test_blur_of_a_shape_is_the_separable_gaussian(sigma: float) -> None:
    arr = np.zeros((24, 24), np.uint8)
    arr[5:15, 8:20] = 255
    arr[15:19, 2:6] = 255
    out = np.asarray(blur_mask(Image.fromarray(arr), sigma)).astype(np.float64)
    assert np.abs(out - _hand_blur(arr, sigma)).max() <= 1.0


def test_blur_matches_one_square_cv2_gaussian_within_one_lsb() -> None:
    import cv2

    arr = np.zeros((48, 48), np.uint8)
    arr[10:30, 14:40] = 255
    out = np.asarray(blur_mask(Image.fromarray(arr), 4)).astype(np.int16)
    square = cv2.GaussianBlur(arr, (21, 21), 4).astype(np.int16)
    assert np.abs(out - square).max() <= 1
    assert out[0, 0] == 0 and out[20, 27] > 250


def test_blur_zero_is_unchanged() -> None:
    mask = _mask(8, (2, 5, 2, 5))
    assert np.array_equal(np.asarray(blur_mask(mask, 0)), np.asarray(mask))


# --- crop region and aspect expansion ------------------------------------------------------------


def test_crop_region_grows_by_padding_and_clamps() -> None:
    mask = _mask(16, (4, 7, 5, 9))
    assert crop_region(mask, 0) == (5, 4, 9, 7)
    assert crop_region(mask, 2) == (3, 2, 11, 9)
    assert crop_region(mask, 5) == (0, 0, 14, 12)
    assert crop_region(mask, 32) == (0, 0, 16, 16)


def test_crop_region_counts_faint_blurred_pixels_and_none_when_empty() -> None:
    arr = np.zeros((16, 16), np.uint8)
    arr[3, 12] = 1
    arr[9, 2] = 200
    assert crop_region(Image.fromarray(arr), 1) == (1, 2, 14, 11)
    assert crop_region(Image.new("L", (16, 16)), 32) is None


def test_expand_wide_region_to_a_tall_aspect() -> None:
    assert expand_to_aspect((10, 40, 30, 50), 512, 768, (100, 100)) == (10, 30, 30, 60)
    # Odd growth: the extra pixel goes to the bottom.
    assert expand_to_aspect((10, 40, 30, 51), 512, 768, (100, 100)) == (10, 31, 30, 61)


def test_expand_tall_region_to_a_wide_aspect() -> None:
    # 35 px of growth: 17 on the left, 18 on the right.
    assert expand_to_aspect((40, 10, 50, 40), 768, 512, (100, 100)) == (23, 10, 68, 40)


def test_expand_keeps_a_region_that_already_has_the_aspect() -> None:
    assert expand_to_aspect((10, 10, 30, 40), 512, 768, (100, 100)) == (10, 10, 30, 40)
    assert expand_to_aspect((0, 0, 64, 64), 512, 512, (64, 64)) == (0, 0, 64, 64)


def test_expand_shifts_back_inside_at_the_borders() -> None:
    assert expand_to_aspect((90, 40, 100, 50), 768, 512, (100, 100)) == (85, 40, 100, 50)
    assert expand_to_aspect((0, 40, 10, 50), 768, 512, (100, 100)) == (0, 40, 15, 50)
    assert expand_to_aspect((40, 0, 50, 10), 512, 768, (100, 100)) == (40, 0, 50, 15)
    assert expand_to_aspect((40, 92, 50, 100), 512, 768, (100, 100)) == (40, 85, 50, 100)


def test_expand_clamps_when_larger_than_the_image() -> None:
    assert expand_to_aspect((0, 0, 100, 50), 512, 768, (100, 60)) == (0, 0, 100, 60)
    assert expand_to_aspect((10, 0, 20, 60), 1024, 512, (100, 60)) == (0, 0, 100, 60)


def test_expand_rejects_an_empty_region() -> None:
    with pytest.raises(ValueError, match="empty"):
        expand_to_aspect((5, 5, 5, 9), 512, 512, (16, 16))


# --- ratio filter, top-k, sort ----------------------------------------------------------------------


def test_ratio_filter_bounds_are_inclusive() -> None:
    dets = [_det((0.0, 0.0, 10.0, 100.0)), _det((0.0, 0.0, 25.0, 100.0)), _det((0.0, 0.0, 50.0, 100.0))]
    assert filter_by_ratio(dets, (100, 100), 0.1, 0.25) == dets[:2]
    assert filter_by_ratio(dets, (100, 100), 0.25, 0.5) == dets[1:]
    assert filter_by_ratio(dets, (100, 100), 0.1000001, 0.4999999) == [dets[1]]
    assert filter_by_ratio(dets, (100, 100), 0.0, 1.0) == dets


def test_top_k_by_area_keeps_the_largest_in_descending_order() -> None:
    a, b, c = _det((0.0, 0.0, 10.0, 10.0), 0.9), _det((0.0, 0.0, 20.0, 20.0), 0.3), _det((0, 0, 15, 15), 0.6)
    assert top_k([a, b, c], 2, "Area") == [b, c]
    assert top_k([a, b, c], 5, "Area") == [b, c, a]


def test_top_k_by_confidence_keeps_the_most_confident_in_descending_order() -> None:
    a, b, c = _det((0.0, 0.0, 10.0, 10.0), 0.9), _det((0.0, 0.0, 20.0, 20.0), 0.3), _det((0, 0, 15, 15), 0.6)
    assert top_k([a, b, c], 2, "Confidence") == [a, c]
    assert top_k([b, c, a], 1, "Confidence") == [a]


def test_top_k_equal_areas_keep_the_later_detection_as_the_extension_does() -> None:
    """The extension: ``np.argsort(areas)[-k:][::-1]``; numpy sorts these few stably, so of two
    equal boxes the second is the last in ascending order and the one top-k 1 keeps."""
    first, second = (
        replace(_det((0.0, 0.0, 10.0, 10.0), conf), label=name) for name, conf in (("1", 0.9), ("2", 0.8))
    )
    small = replace(_det((0.0, 0.0, 5.0, 5.0), 0.95), label="3")
    assert top_k([first, second], 1, "Area") == [second]
    assert top_k([first, second, small], 2, "Area") == [second, first]
    assert top_k([small, first, second], 3, "Area") == [second, first, small]


def test_top_k_equal_confidences_keep_the_later_detection() -> None:
    first, second = (replace(_det((0.0, 0.0, size, size), 0.5), label=str(size)) for size in (10.0, 20.0))
    assert top_k([first, second], 1, "Confidence") == [second]
    assert top_k([second, first], 1, "Confidence") == [first]


def test_top_k_zero_keeps_everything_in_order_and_negative_is_an_error() -> None:
    dets = [_det((0.0, 0.0, 10.0, 10.0)), _det((0.0, 0.0, 20.0, 20.0))]
    assert top_k(dets, 0, "Area") == dets
    with pytest.raises(ValueError, match="top-k"):
        top_k(dets, -1, "Area")


_A = _det((60.0, 10.0, 70.0, 20.0))  # x1 60, centre (65, 15): 38.1 px from (50, 50), area 100
_B = _det((10.0, 40.0, 40.0, 70.0))  # x1 10, centre (25, 55): 25.5 px, area 900
_C = _det((45.0, 45.0, 55.0, 55.0))  # x1 45, centre (50, 50): 0 px, area 100
_D = _det((80.0, 80.0, 100.0, 100.0))  # x1 80, centre (90, 90): 56.6 px, area 400


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("None", [_A, _B, _C, _D]),
        ("Position (left to right)", [_B, _C, _A, _D]),
        ("Position (center to edge)", [_C, _B, _A, _D]),
        ("Area (large to small)", [_B, _D, _A, _C]),  # A and C tie: detector order kept
    ],
)
def test_sort_orders(order: str, expected: list[Detection]) -> None:
    assert sort_detections([_A, _B, _C, _D], (100, 100), order) == expected  # type: ignore[arg-type]


def test_sort_rejects_an_unknown_order() -> None:
    with pytest.raises(ValueError, match="Area"):
        sort_detections([_A, _B], (100, 100), "Random")  # type: ignore[arg-type]


def test_bbox_mask_is_a_filled_rectangle_including_its_far_corner() -> None:
    assert _white(bbox_mask((2.0, 3.0, 5.0, 6.0), (8, 8))) == _block(3, 7, 2, 6)


# --- resize modes -----------------------------------------------------------------------------------


def _noise(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def _a1111_resize_and_fill(im: Image.Image, width: int, height: int) -> Image.Image:
    """A1111 ``images.resize_image`` mode 2 without an upscaler, step by step from its source.

    Fit (LANCZOS) and paste centred on a black RGB canvas; then each bar is Pillow's default
    resize of a zero-height (zero-width) box on the fitted image's edge, pasted above and below
    (left and right) the image, the second bar starting right after it.
    """
    ratio, src_ratio = width / height, im.width / im.height
    src_w = width if ratio < src_ratio else im.width * height // im.height
    src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = im.resize((src_w, src_h), resample=Image.Resampling.LANCZOS)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < src_ratio:
        fill = height // 2 - src_h // 2
        res.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
        res.paste(
            resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
            box=(0, fill + src_h),
        )
    elif ratio > src_ratio:
        fill = width // 2 - src_w // 2
        res.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
        res.paste(
            resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
            box=(fill + src_w, 0),
        )
    return res


@pytest.mark.parametrize(
    ("crop", "size"), [((4, 2), (4, 4)), ((4, 2), (4, 5)), ((2, 4), (4, 4)), ((2, 4), (5, 4))]
)
def test_resize_fill_is_a1111s_pixel_for_pixel(crop: tuple[int, int], size: tuple[int, int]) -> None:
    src = _noise(*crop, seed=7)
    ours = np.asarray(resize_fill(src, *size))
    assert np.array_equal(ours, np.asarray(_a1111_resize_and_fill(src, *size)))
    tall = crop[0] < crop[1]
    bars = ours if not tall else ours.transpose(1, 0, 2)  # bars above and below
    image = np.asarray(src) if not tall else np.asarray(src).transpose(1, 0, 2)
    assert np.array_equal(bars[1:3], image)  # the crop, unscaled (same width)
    assert not np.array_equal(bars[0], image[0])  # Pillow's bar blends the two edge rows
    if max(size) == 5:
        assert not bars[4].any()  # the odd row A1111 never paints: black
    else:
        assert bars[3].any()


def test_resize_fill_of_a_mask_keeps_its_mode_and_a1111s_values() -> None:
    src = _noise(3, 8, mode="L")
    out = resize_fill(src, 8, 8)
    assert out.mode == "L" and out.size == (8, 8)
    assert np.array_equal(np.asarray(out.convert("RGB")), np.asarray(_a1111_resize_and_fill(src, 8, 8)))


def test_resize_fill_scales_then_fills() -> None:
    out = np.asarray(resize_fill(_noise(20, 10), 16, 16))
    scaled = np.asarray(_noise(20, 10).resize((16, 8), Image.Resampling.LANCZOS))
    assert out.shape == (16, 16, 3)
    assert np.array_equal(out[4:12], scaled)
    assert np.array_equal(out, np.asarray(_a1111_resize_and_fill(_noise(20, 10), 16, 16)))


def test_resize_crop_covers_then_crops_the_centre() -> None:
    wide, tall = _noise(8, 4, seed=1), _noise(4, 8, seed=2)
    assert np.array_equal(np.asarray(resize_crop(wide, 4, 4)), np.asarray(wide)[:, 2:6])
    assert np.array_equal(np.asarray(resize_crop(tall, 4, 4)), np.asarray(tall)[2:6])
    assert resize_crop(_noise(30, 17), 13, 29).size == (13, 29)
    assert resize_fill(_noise(30, 17), 13, 29).size == (13, 29)


# --- paste back -------------------------------------------------------------------------------------


def _div255(values: np.ndarray) -> np.ndarray:
    rounded = values + 128
    return ((rounded >> 8) + rounded) >> 8  # type: ignore[no-any-return]


def _a1111_paste_back(original: np.ndarray, placed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A1111 ``apply_overlay`` in Pillow's integer arithmetic, written out in numpy.

    ``placed`` is the generated crop already on its full-size canvas (alpha 255 everywhere in the
    region). The overlay is the original pasted into premultiplied "RGBa" through the inverted
    mask (``DIV255(c * k)``), converted to "RGBA" (``255 * c // a``, untouched at a = 0 or 255),
    then ``alpha_composite`` over the canvas (Pillow's 7-bit fixed-point coefficients).
    """
    keep = 255 - mask.astype(np.int64)[..., None]
    alpha = _div255(255 * keep)
    premultiplied = _div255(original.astype(np.int64) * keep)
    opaque_or_clear = (alpha == 255) | (alpha == 0)
    colour = np.where(
        opaque_or_clear, premultiplied, np.clip(255 * premultiplied // np.maximum(alpha, 1), 0, 255)
    )
    blend = 255 * (255 - alpha)
    coef1 = alpha * 255 * 255 * 128 // (alpha * 255 + blend)
    coef2 = 255 * 128 - coef1
    total = colour * coef1 + placed.astype(np.int64) * coef2 + (0x80 << 7)
    out = (((total >> 8) + total) >> 8) >> 7
    return np.where(alpha == 0, placed, out).astype(np.uint8)


def test_paste_back_composites_as_a1111_where_the_mask_is_partial() -> None:
    original = _noise(6, 4, seed=11)
    generated = _noise(6, 4, seed=12)
    mask = np.zeros((4, 6), np.uint8)
    mask[0, 0] = 1  # the faintest blurred edge
    mask[1, :] = (2, 64, 127, 128, 200, 254)
    mask[2, :] = 255
    out = np.asarray(paste_back(original, generated, Image.fromarray(mask), (0, 0, 6, 4)))
    assert np.array_equal(out, _a1111_paste_back(np.asarray(original), np.asarray(generated), mask))
    assert np.array_equal(out[3], np.asarray(original)[3]) and np.array_equal(
        out[2], np.asarray(generated)[2]
    )
    exact = (
        mask[..., None].astype(int) * np.asarray(generated)
        + (255 - mask[..., None].astype(int)) * np.asarray(original)
        + 127
    ) // 255
    assert np.abs(out.astype(int) - exact).max() == 1  # the rounded linear blend is a level off somewhere


def test_paste_back_blends_by_the_mask() -> None:
    original = Image.new("RGB", (8, 8), (100, 100, 100))
    generated = Image.new("RGB", (4, 4), (200, 0, 255))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:6] = 255
    mask[4:6, 2:6] = 127
    out = np.asarray(paste_back(original, generated, Image.fromarray(mask), (2, 2, 6, 6)))
    assert (out[2:4, 2:6] == (200, 0, 255)).all()
    # mask 127: alpha 128, the original premultiplied to 50 and back to 255 * 50 // 128 = 99,
    # composited with coefficients 16384/16256 (of 32640): red 149 where the linear blend says 150
    assert (out[4:6, 2:6] == (149, 50, 177)).all()
    assert (out[mask == 0] == 100).all()


def test_paste_back_keeps_the_original_outside_the_region() -> None:
    original = _noise(8, 8, seed=3)
    mask = np.zeros((8, 8), np.uint8)
    mask[:2, :2] = 255  # the region always covers the mask: it is the mask's box plus padding
    out = paste_back(original, _noise(2, 2, seed=4), Image.fromarray(mask), (0, 0, 2, 2))
    assert np.array_equal(np.asarray(out)[2:], np.asarray(original)[2:])
    assert np.array_equal(np.asarray(out)[:2, 2:], np.asarray(original)[:2, 2:])


def test_paste_back_rejects_bad_sizes_and_regions() -> None:
    with pytest.raises(ValueError, match="mask size"):
        paste_back(_noise(8, 8), _noise(4, 4), Image.new("L", (4, 4)), (0, 0, 4, 4))
    with pytest.raises(ValueError, match="region"):
        paste_back(_noise(8, 8), _noise(4, 4), Image.new("L", (8, 8)), (4, 4, 10, 8))


@st.composite
def _paste_cases(draw: st.DrawFn) -> tuple[Image.Image, Image.Image, Image.Image, tuple[int, int, int, int]]:
    width, height = draw(st.integers(2, 24)), draw(st.integers(2, 24))
    x1, y1 = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
    x2, y2 = draw(st.integers(x1 + 1, width)), draw(st.integers(y1 + 1, height))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    levels = np.zeros((height, width), np.uint8)  # as crop_region makes it: no mask outside the region
    levels[y1:y2, x1:x2] = rng.choice(np.array([0, 255, 1, 128, 254], np.uint8), size=(y2 - y1, x2 - x1))
    original = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    gen_w, gen_h = draw(st.integers(1, 32)), draw(st.integers(1, 32))
    generated = Image.fromarray(rng.integers(0, 256, (gen_h, gen_w, 3), dtype=np.uint8))
    return original, generated, Image.fromarray(levels), (x1, y1, x2, y2)


@settings(max_examples=150, deadline=None)
@given(_paste_cases())
def test_paste_back_keeps_unmasked_pixels_and_takes_fully_masked_ones(
    case: tuple[Image.Image, Image.Image, Image.Image, tuple[int, int, int, int]],
) -> None:
    original, generated, mask, region = case
    x1, y1, x2, y2 = region
    out = np.asarray(paste_back(original, generated, mask, region))
    orig, m = np.asarray(original), np.asarray(mask).copy()
    assert out.shape == orig.shape
    assert np.array_equal(out[m == 0], orig[m == 0])
    placed = np.zeros_like(orig)
    placed[y1:y2, x1:x2] = np.asarray(resize_crop(generated, x2 - x1, y2 - y1))
    assert np.array_equal(out[m == 255], placed[m == 255])
    assert np.array_equal(out, _a1111_paste_back(orig, placed, m))
    linear = (m[..., None].astype(int) * placed + (255 - m[..., None].astype(int)) * orig + 127) // 255
    assert np.abs(out.astype(int) - linear).max() <= 1


# --- prompts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "index", "expected"),
    [
        ("", 0, "main"),
        ("   ", 0, "main"),
        ("face", 3, "face"),
        ("a [SEP] b [SEP] c", 0, "a"),
        ("a [SEP] b [SEP] c", 1, "b"),
        ("a [SEP] b [SEP] c", 2, "c"),
        ("a [SEP] b [SEP] c", 9, "c"),
        ("a[SEP]b", 1, "b"),
        ("a \n[SEP]\t b", 1, "b"),
        ("a [SEP] [SEP] c", 1, "main"),
        ("a [SEP]", 1, "main"),
        ("[PROMPT], detailed face", 0, "main, detailed face"),
        ("x [SEP] [PROMPT] and [PROMPT]", 4, "main and main"),
        ("[SKIP] please", 0, "[SKIP] please"),
    ],
)
def test_unit_prompt_rules(unit: str, index: int, expected: str) -> None:
    assert unit_prompts(unit, "main", index) == expected


@pytest.mark.parametrize(
    ("unit", "index"),
    [
        ("[SKIP]", 0),
        ("[SKIP]", 3),
        ("  [SKIP] ", 0),
        ("[PROMPT] [SEP] [SKIP] [SEP] x", 1),
        ("a [SEP] [SKIP]", 7),
    ],
)
def test_unit_prompt_skip(unit: str, index: int) -> None:
    assert unit_prompts(unit, "main", index) is None


def test_unit_prompt_skip_only_its_own_part() -> None:
    assert unit_prompts("[PROMPT] [SEP] [SKIP] [SEP] x", "main", 0) == "main"
    assert unit_prompts("[PROMPT] [SEP] [SKIP] [SEP] x", "main", 2) == "x"


def test_unit_negative_prompt_has_no_skip() -> None:
    assert unit_negative_prompt("[SKIP]", "neg", 0) == "[SKIP]"
    assert unit_negative_prompt("", "neg", 2) == "neg"
    assert unit_negative_prompt("[PROMPT], blurry [SEP] ugly", "neg", 0) == "neg, blurry"
    assert unit_negative_prompt("[PROMPT], blurry [SEP] ugly", "neg", 1) == "ugly"


def test_unit_prompt_rejects_a_negative_index() -> None:
    with pytest.raises(ValueError, match="index"):
        unit_prompts("a", "main", -1)


# --- dynamic denoise and bbox-size matching -------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "power", "expected"),
    [
        (0.25, 0.0, 0.4),
        (0.25, 1.0, 0.3),
        (0.25, 2.0, 0.225),
        (0.5, -1.0, 0.8),
        (0.75, -1.0, 1.6),  # unclamped, as the extension leaves it; A1111 then runs 0.999's steps
        (1.0, 2.0, 0.0),
        (1.0, -2.0, 1.0),
        (0.0, 3.0, 0.4),
    ],
)
def test_dynamic_denoise(ratio: float, power: float, expected: float) -> None:
    assert dynamic_denoise(0.4, ratio, power) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("mode", "bbox", "inpaint", "is_sdxl", "expected"),
    [
        ("Off", (0.0, 0.0, 300.0, 200.0), (512, 512), True, (512, 512)),
        ("Free", (0.0, 0.0, 300.0, 200.0), (512, 512), False, (512, 344)),  # 341.3 rounds up to 344
        ("Free", (0.0, 0.0, 100.0, 300.0), (512, 768), False, (256, 768)),
        ("Free", (10.0, 10.0, 60.0, 60.0), (512, 768), False, (768, 768)),
        ("Strict (SDXL only)", (0.0, 0.0, 300.0, 200.0), (1024, 1024), True, (1216, 832)),
        ("Strict (SDXL only)", (0.0, 0.0, 100.0, 300.0), (512, 512), True, (640, 1536)),
        ("Strict (SDXL only)", (0.0, 0.0, 300.0, 200.0), (1024, 1024), False, (1024, 1024)),
        ("Strict (SDXL only)", (0.0, 0.0, 2000.0, 100.0), (1024, 1024), True, (1024, 1024)),  # no bucket fits
        ("Strict (SDXL only)", (0.0, 0.0, 300.0, 200.0), (2048, 2048), True, (2048, 2048)),
        ("Free", (5.0, 5.0, 5.0, 50.0), (512, 512), False, (512, 512)),  # degenerate box
    ],
)
def test_match_bbox_size(
    mode: str, bbox: BBox, inpaint: tuple[int, int], is_sdxl: bool, expected: tuple[int, int]
) -> None:
    assert match_bbox_size(mode, bbox, inpaint, is_sdxl) == expected  # type: ignore[arg-type]


def test_match_bbox_size_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="Free"):
        match_bbox_size("Loose", (0.0, 0.0, 1.0, 1.0), (512, 512), False)  # type: ignore[arg-type]
