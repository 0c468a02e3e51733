"""img2img geometry against A1111's algorithms, written out here from their documented behaviour.

The references follow A1111 1.10 ``images.resize_image`` (modes 0-2 without an upscaler) and
``masking.get_crop_region_v2`` / ``expand_crop_region`` step by step (stage-semantics §1.4), on odd
sizes; where A1111 is deterministic the comparison is exact pixel equality.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stablenew_qt.core.img2img_geometry import (
    crop_region,
    expand_to_aspect,
    img2img_output_size,
    outpaint_canvas,
    processing_size,
    resize_image,
)

LANCZOS = Image.Resampling.LANCZOS


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _a1111_resize(mode: int, im: Image.Image, width: int, height: int) -> Image.Image:
    """A1111 ``resize_image(resize_mode, im, width, height)`` with no upscaler, from its source."""
    if mode == 0:
        return im.resize((width, height), resample=LANCZOS)
    ratio, src_ratio = width / height, im.width / im.height
    if mode == 1:
        src_w = width if ratio > src_ratio else im.width * height // im.height
        src_h = height if ratio <= src_ratio else im.height * width // im.width
        resized = im.resize((src_w, src_h), resample=LANCZOS)
        res = Image.new("RGB", (width, height))
        res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        return res
    src_w = width if ratio < src_ratio else im.width * height // im.height
    src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = im.resize((src_w, src_h), resample=LANCZOS)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < src_ratio:
        fill = height // 2 - src_h // 2
        if fill > 0:
            res.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
            res.paste(
                resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                box=(0, fill + src_h),
            )
    elif ratio > src_ratio:
        fill = width // 2 - src_w // 2
        if fill > 0:
            res.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
            res.paste(
                resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                box=(fill + src_w, 0),
            )
    return res


SIZES = [((333, 517), (512, 512)), ((517, 333), (512, 512)), ((333, 517), (640, 384)), ((97, 61), (64, 128))]


@pytest.mark.parametrize(("source", "target"), SIZES)
@pytest.mark.parametrize(
    ("mode", "a1111"), [("just resize", 0), ("crop and resize", 1), ("resize and fill", 2)]
)
def test_resize_modes_equal_a1111_pixel_for_pixel(
    source: tuple[int, int], target: tuple[int, int], mode: str, a1111: int
) -> None:
    image = _noise(*source, seed=source[0])
    ours = resize_image(mode, image, *target)  # type: ignore[arg-type]
    assert ours.size == target
    assert np.array_equal(np.asarray(ours), np.asarray(_a1111_resize(a1111, image, *target)))


def test_crop_and_resize_keeps_the_centre_and_resize_and_fill_keeps_everything() -> None:
    image = _noise(333, 517, seed=3)
    cropped = np.asarray(resize_image("crop and resize", image, 512, 512))
    scaled = np.asarray(image.resize((512, 517 * 512 // 333), LANCZOS))
    top = scaled.shape[0] // 2 - 256
    assert np.array_equal(cropped, scaled[top : top + 512])
    filled = np.asarray(resize_image("resize and fill", image, 512, 512))
    fitted = np.asarray(image.resize((333 * 512 // 517, 512), LANCZOS))
    left = 256 - fitted.shape[1] // 2
    assert np.array_equal(filled[:, left : left + fitted.shape[1]], fitted)
    assert filled[:, :left].any() and filled[:, left + fitted.shape[1] :].any()  # bars stretched, not black


def test_latent_upscale_leaves_pixels_and_same_size_is_untouched() -> None:
    image = _noise(40, 24)
    assert resize_image("latent upscale", image, 64, 64) is image
    for mode in ("just resize", "crop and resize", "resize and fill"):
        assert resize_image(mode, image, 40, 24) is image  # type: ignore[arg-type]


def test_processing_size_zero_means_the_inputs_own_floored_to_8() -> None:
    assert processing_size(0, 0, (333, 517)) == (328, 512)
    assert processing_size(512, 0, (333, 517)) == (512, 512)
    assert processing_size(640, 384, (333, 517)) == (640, 384)


# --- the "only masked" crop region ------------------------------------------------------------------


def _a1111_crop_region(mask: np.ndarray, pad: int) -> tuple[int, int, int, int] | None:
    """``get_crop_region_v2``: the non-zero bounding box grown by ``pad`` and clamped."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    h, w = mask.shape
    return (
        max(int(xs.min()) - pad, 0),
        max(int(ys.min()) - pad, 0),
        min(int(xs.max()) + 1 + pad, w),
        min(int(ys.max()) + 1 + pad, h),
    )


def _a1111_expand(region: tuple[int, int, int, int], pw: int, ph: int, iw: int, ih: int) -> tuple[int, ...]:
    """``expand_crop_region``: grow the short side to the processing aspect, shift back, clamp."""
    x1, y1, x2, y2 = region
    ratio_crop, ratio_proc = (x2 - x1) / (y2 - y1), pw / ph
    if ratio_crop > ratio_proc:
        desired = (x2 - x1) / ratio_proc
        diff = int(desired - (y2 - y1))
        y1 -= diff // 2
        y2 += diff - diff // 2
        if y2 >= ih:
            diff = y2 - ih
            y2 -= diff
            y1 -= diff
        if y1 < 0:
            y2 -= y1
            y1 -= y1
        if y2 >= ih:
            y2 = ih
    else:
        desired = (y2 - y1) * ratio_proc
        diff = int(desired - (x2 - x1))
        x1 -= diff // 2
        x2 += diff - diff // 2
        if x2 >= iw:
            diff = x2 - iw
            x2 -= diff
            x1 -= diff
        if x1 < 0:
            x2 -= x1
            x1 -= x1
        if x2 >= iw:
            x2 = iw
    return x1, y1, x2, y2


@pytest.mark.parametrize(
    ("box", "pad", "proc"),
    [
        ((100, 200, 141, 230), 32, (512, 512)),
        ((0, 0, 30, 400), 32, (512, 384)),
        ((300, 480, 333, 517), 0, (512, 768)),
        ((10, 10, 330, 60), 64, (384, 640)),
        ((5, 5, 320, 510), 32, (512, 512)),
    ],
)
def test_only_masked_region_equals_a1111(
    box: tuple[int, int, int, int], pad: int, proc: tuple[int, int]
) -> None:
    mask = np.zeros((517, 333), np.uint8)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = 255
    mask[y1, x1] = 3  # a faint blurred edge still counts
    ours = crop_region(Image.fromarray(mask), pad)
    assert ours == _a1111_crop_region(mask, pad)
    assert ours is not None
    assert expand_to_aspect(ours, *proc, (333, 517)) == _a1111_expand(ours, *proc, 333, 517)


def test_empty_mask_has_no_region() -> None:
    assert crop_region(Image.new("L", (333, 517)), 32) is None


# --- outpaint canvas --------------------------------------------------------------------------------


def test_outpaint_grows_by_exactly_the_sizes_and_masks_only_the_new_area() -> None:
    image = _noise(333, 517, seed=5)
    out = outpaint_canvas(image, left=64, right=8, top=0, bottom=128)
    assert out.image.size == (333 + 72, 517 + 128) == out.mask.size
    assert out.box == (64, 0, 64 + 333, 517)
    pixels, mask = np.asarray(out.image), np.asarray(out.mask)
    assert np.array_equal(pixels[0:517, 64 : 64 + 333], np.asarray(image))  # the old image, byte for byte
    assert not mask[0:517, 64 : 64 + 333].any()
    assert (mask[517:] == 255).all() and (mask[:, :64] == 255).all() and (mask[:, 64 + 333 :] == 255).all()
    src = np.asarray(image)
    assert np.array_equal(pixels[100, :64], np.repeat(src[100, :1], 64, axis=0))  # left edge stretched
    assert np.array_equal(pixels[600, 64 : 64 + 333], src[-1])  # bottom edge stretched
    assert np.array_equal(pixels[-1, 0], src[-1, 0])  # the corner takes the corner pixel


def test_outpaint_of_nothing_is_the_image_and_an_empty_mask() -> None:
    image = _noise(24, 16)
    out = outpaint_canvas(image, 0, 0, 0, 0)
    assert np.array_equal(np.asarray(out.image), np.asarray(image)) and out.mask.getbbox() is None
    with pytest.raises(ValueError, match="negative"):
        outpaint_canvas(image, -8, 0, 0, 0)


def test_output_size_is_the_processing_size_or_the_grown_image_for_only_masked() -> None:
    assert img2img_output_size(512, 512, (333, 517)) == (512, 512)
    assert img2img_output_size(0, 0, (333, 517), outpaint=(64, 0, 0, 8)) == (392, 520)
    assert img2img_output_size(512, 512, (333, 517), only_masked=True) == (333, 517)
    assert img2img_output_size(512, 512, (333, 517), only_masked=True, outpaint=(8, 8, 0, 0)) == (349, 517)
