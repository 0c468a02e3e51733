"""ADetailer mask, crop and prompt helpers: exact pixel expectations on small synthetic masks.

Expected values are worked out by hand from the ADetailer / A1111 rules (spec stage-semantics §1.3-1.5),
not produced by the code under test.
"""

from __future__ import annotations

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


def test_resize_fill_pads_a_wide_image_with_its_edge_rows() -> None:
    src = _noise(8, 4)
    out = np.asarray(resize_fill(src, 8, 8))
    assert out.shape == (8, 8, 3)
    assert np.array_equal(out[2:6], np.asarray(src))
    assert all(np.array_equal(out[r], out[2]) for r in (0, 1))
    assert all(np.array_equal(out[r], out[5]) for r in (6, 7))


def test_resize_fill_pads_a_tall_image_with_its_edge_columns() -> None:
    src = _noise(3, 8, mode="L")
    out = resize_fill(src, 8, 8)
    arr = np.asarray(out)
    assert out.mode == "L" and out.size == (8, 8)
    assert np.array_equal(arr[:, 3:6], np.asarray(src))
    assert all(np.array_equal(arr[:, c], arr[:, 3]) for c in (0, 1, 2))
    assert all(np.array_equal(arr[:, c], arr[:, 5]) for c in (6, 7))


def test_resize_fill_scales_then_fills() -> None:
    out = np.asarray(resize_fill(_noise(20, 10), 16, 16))
    scaled = np.asarray(_noise(20, 10).resize((16, 8), Image.Resampling.LANCZOS))
    assert out.shape == (16, 16, 3)
    assert np.array_equal(out[4:12], scaled)
    assert (out[:4] == out[4]).all() and (out[12:] == out[11]).all()


def test_resize_crop_covers_then_crops_the_centre() -> None:
    wide, tall = _noise(8, 4, seed=1), _noise(4, 8, seed=2)
    assert np.array_equal(np.asarray(resize_crop(wide, 4, 4)), np.asarray(wide)[:, 2:6])
    assert np.array_equal(np.asarray(resize_crop(tall, 4, 4)), np.asarray(tall)[2:6])
    assert resize_crop(_noise(30, 17), 13, 29).size == (13, 29)
    assert resize_fill(_noise(30, 17), 13, 29).size == (13, 29)


# --- paste back -------------------------------------------------------------------------------------


def test_paste_back_blends_by_the_mask() -> None:
    original = Image.new("RGB", (8, 8), (100, 100, 100))
    generated = Image.new("RGB", (4, 4), (200, 0, 255))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:6] = 255
    mask[4:6, 2:6] = 128
    out = np.asarray(paste_back(original, generated, Image.fromarray(mask), (2, 2, 6, 6)))
    assert (out[2:4, 2:6] == (200, 0, 255)).all()
    # round((128 * g + 127 * 100) / 255) per channel
    assert (out[4:6, 2:6] == (150, 50, 178)).all()
    assert (out[mask == 0] == 100).all()


def test_paste_back_ignores_mask_outside_the_region() -> None:
    original = _noise(8, 8, seed=3)
    out = paste_back(original, _noise(2, 2, seed=4), Image.new("L", (8, 8), 255), (0, 0, 2, 2))
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
    levels = rng.choice(np.array([0, 255, 1, 128, 254], np.uint8), size=(height, width))
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
    inside = np.zeros(m.shape, bool)
    inside[y1:y2, x1:x2] = True
    keep = (m == 0) | ~inside
    assert out.shape == orig.shape
    assert np.array_equal(out[keep], orig[keep])
    placed = np.zeros_like(orig)
    placed[y1:y2, x1:x2] = np.asarray(resize_crop(generated, x2 - x1, y2 - y1))
    take = (m == 255) & inside
    assert np.array_equal(out[take], placed[take])
    low, high = np.minimum(orig, placed), np.maximum(orig, placed)
    assert ((out >= low) & (out <= high))[inside].all()


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
        (0.75, -1.0, 1.0),  # 1.6, clamped
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
