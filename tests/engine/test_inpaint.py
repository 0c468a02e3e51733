"""Inpaint preparation and paste-back on the demo SD1.5 inpainting model's VAE.

A round trip through a VAE changes every pixel, so "unmasked pixels are byte-identical" is only
true because :func:`finish_inpaint` composites through the blurred mask, as A1111 does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stablenew_qt.core.config import Img2ImgConfig
from stablenew_qt.core.img2img_geometry import crop_region, expand_to_aspect
from stablenew_qt.engine.adetailer.masks import blur_mask
from stablenew_qt.engine.inpaint import (
    EmptyMask,
    alpha_mask,
    binary_mask,
    fill,
    finish_inpaint,
    inpaint_latents,
    latent_mask,
    prepare_inpaint,
    to_tensor,
)


@pytest.fixture(scope="module")
def demo_inpaint(demo_models: dict[str, Path]) -> Path:
    return demo_models["demo-tiny-sd15-inpaint"]


@pytest.fixture(scope="module")
def vae(demo_inpaint: Path) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(demo_inpaint, subfolder="vae").eval()


def _encode(vae: Any) -> Any:
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor  # type: ignore[no-any-return]

    return encode


def _decode(vae: Any, latents: torch.Tensor) -> Image.Image:
    with torch.no_grad():
        pixels = vae.decode(latents / vae.config.scaling_factor).sample
    array = ((pixels[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return Image.fromarray(array)


def _image(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _rect_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size)
    mask.paste(255, box)
    return mask


def _cfg(**changes: Any) -> Img2ImgConfig:
    return Img2ImgConfig.model_validate({"enabled": True, **changes})


def _round_trip(vae: Any, job: Any) -> Image.Image:
    return finish_inpaint(job, _decode(vae, _encode(vae)(to_tensor(job.image))))


def test_whole_picture_keeps_every_unmasked_pixel_byte_for_byte(vae: Any) -> None:
    image, mask = _image(), _rect_mask((64, 48), (20, 16, 36, 32))
    job = prepare_inpaint(image, mask, _cfg())
    out = np.asarray(_round_trip(vae, job))
    overlay = np.asarray(job.overlay_mask)
    untouched = overlay == 0
    assert out.shape == (48, 64, 3)
    assert untouched.sum() > 64 * 48 // 2
    assert np.array_equal(out[untouched], np.asarray(image)[untouched])
    decoded = np.asarray(_decode(vae, _encode(vae)(to_tensor(image))))
    assert (decoded != np.asarray(image)).any(axis=-1).mean() > 0.9  # the VAE alone changes nearly all
    inside = overlay == 255
    assert inside.any() and not np.array_equal(out[inside], np.asarray(image)[inside])


def test_overlay_is_the_blurred_mask_doubled_for_whole_picture() -> None:
    mask = _rect_mask((64, 48), (20, 16, 36, 32))
    job = prepare_inpaint(_image(), mask, _cfg(mask_blur=4))
    blurred = np.asarray(blur_mask(mask, 4)).astype(int)
    assert np.array_equal(np.asarray(job.mask), blurred)
    assert np.array_equal(np.asarray(job.overlay_mask), np.clip(blurred * 2, 0, 255))


def test_not_masked_inverts_before_blurring() -> None:
    mask = _rect_mask((64, 48), (20, 16, 36, 32))
    job = prepare_inpaint(_image(), mask, _cfg(mask_mode="inpaint not masked", mask_blur=0))
    assert np.array_equal(np.asarray(job.mask), 255 - np.asarray(mask))


def test_mask_from_alpha_repaints_every_pixel_that_is_not_opaque(vae: Any) -> None:
    rgba = _image().convert("RGBA")
    alpha = np.full((48, 64), 255, np.uint8)
    alpha[8:24, 8:40] = 0
    alpha[30, 50] = 254  # barely transparent still counts, as in A1111's inpaint tab
    rgba.putalpha(Image.fromarray(alpha))
    assert np.array_equal(np.asarray(alpha_mask(rgba)) > 0, alpha < 255)
    job = prepare_inpaint(rgba, None, _cfg(mask_from_alpha=True, mask_blur=0))
    assert np.array_equal(np.asarray(job.mask) == 255, alpha < 255)
    out = np.asarray(_round_trip(vae, job))
    opaque = alpha == 255
    assert np.array_equal(out[opaque], np.asarray(rgba.convert("RGB"))[opaque])


def test_an_opaque_image_or_black_mask_is_nothing_to_inpaint() -> None:
    with pytest.raises(EmptyMask, match="nothing to inpaint"):
        prepare_inpaint(_image(), None, _cfg(mask_from_alpha=True))
    with pytest.raises(EmptyMask):
        prepare_inpaint(_image(), Image.new("L", (64, 48)), _cfg())
    white = Image.new("L", (64, 48), 255)
    with pytest.raises(EmptyMask):  # "not masked" of an all-white mask repaints nothing
        prepare_inpaint(_image(), white, _cfg(mask_mode="inpaint not masked"))


def test_binary_mask_thresholds_real_alpha_and_keeps_grey_otherwise() -> None:
    rgba = Image.new("RGBA", (4, 1))
    rgba.putalpha(Image.fromarray(np.array([[0, 128, 129, 255]], np.uint8)))
    assert np.asarray(binary_mask(rgba)).tolist() == [[0, 0, 255, 255]]
    grey = Image.fromarray(np.array([[0, 100, 200, 255]], np.uint8))
    assert np.asarray(binary_mask(grey.convert("RGB"))).tolist() == [[0, 100, 200, 255]]


def test_a_mask_of_another_size_is_resized_to_the_image() -> None:
    small = _rect_mask((32, 24), (10, 8, 18, 16))
    job = prepare_inpaint(_image(), small, _cfg(mask_blur=0))
    assert job.mask.size == (64, 48)
    assert job.mask.getbbox() is not None and np.asarray(job.mask)[24, 28] == 255


def test_only_masked_crops_with_padding_and_pastes_back_into_the_full_image(vae: Any) -> None:
    image = _image(96, 80, seed=3)
    mask = _rect_mask((96, 80), (60, 50, 70, 58))
    cfg = _cfg(inpaint_area="only masked", only_masked_padding=8, width=32, height=32)
    job = prepare_inpaint(image, mask, cfg)
    blurred = blur_mask(mask, 4)
    region = crop_region(blurred, 8)
    assert region is not None
    assert job.region == expand_to_aspect(region, 32, 32, (96, 80))
    x1, y1, x2, y2 = job.region
    assert x2 - x1 == y2 - y1 and job.image.size == (32, 32) == job.mask.size
    assert np.array_equal(np.asarray(job.overlay_mask), np.asarray(blurred))  # not doubled here
    out = np.asarray(_round_trip(vae, job))
    assert out.shape == (80, 96, 3)
    untouched = np.asarray(blurred) == 0
    assert np.array_equal(out[untouched], np.asarray(image)[untouched])
    assert not np.array_equal(out[55, 65], np.asarray(image)[55, 65])


def test_outpaint_grows_by_exactly_the_sizes_and_repaints_only_the_new_area(vae: Any) -> None:
    image = _image(48, 40, seed=5)
    cfg = _cfg(outpaint={"left": 16, "bottom": 8}, mask_blur=0, masked_content="fill")
    job = prepare_inpaint(image, None, cfg)
    assert job.image.size == (64, 48)
    mask = np.asarray(job.mask)
    assert (mask[:, :16] == 255).all() and (mask[40:] == 255).all() and not mask[:40, 16:].any()
    out = np.asarray(_round_trip(vae, job))
    assert out.shape == (48, 64, 3)
    assert np.array_equal(out[:40, 16:], np.asarray(image))


def test_fill_paints_the_hole_from_its_surroundings_and_keeps_the_rest() -> None:
    image = Image.new("RGB", (32, 32), (200, 40, 10))
    image.paste((0, 0, 0), (8, 8, 24, 24))
    mask = _rect_mask((32, 32), (8, 8, 24, 24))
    out = np.asarray(fill(image, mask)).astype(int)
    # the black hole takes the surrounding red (Pillow's premultiplied blurs round by a few levels)
    assert np.abs(out[8:24, 8:24] - (200, 40, 10)).max() <= 5
    assert np.abs(out[0, 0] - (200, 40, 10)).max() <= 1


def test_latent_mask_is_rounded_at_latent_size_and_latent_choices_replace_the_masked_latents(
    vae: Any,
) -> None:
    image, mask = _image(), _rect_mask((64, 48), (16, 16, 48, 40))
    encode = _encode(vae)
    for content in ("original", "latent noise", "latent nothing"):
        job = prepare_inpaint(image, mask, _cfg(masked_content=content, mask_blur=0))
        latents = encode(to_tensor(job.image))
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1))
        inputs = inpaint_latents(job, latents, noise=noise)
        m = inputs.mask
        assert m.shape == (1, 1, 6, 8) and set(m.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(m[0, 0, 2:5, 2:6], torch.ones(3, 4))
        assert torch.equal(inputs.init_latents * (1 - m), latents * (1 - m))
        expected = {"original": latents, "latent noise": noise, "latent nothing": torch.zeros_like(latents)}
        assert torch.allclose(inputs.init_latents * m, expected[content] * m)
        assert inputs.image_conditioning is None
    with pytest.raises(ValueError, match="seed noise"):
        inpaint_latents(job.__class__(**{**job.__dict__, "masked_content": "latent noise"}), latents)


@pytest.mark.parametrize("content", ["fill", "original", "latent noise", "latent nothing"])
def test_every_masked_content_but_original_encodes_the_filled_image(content: str) -> None:
    """A1111's img2img ``init`` calls ``fill`` whenever ``inpainting_fill != 1`` (not "original"):
    the latent choices replace only the rounded latent mask's cells, and the rest (and a
    9-channel model's conditioning) comes from the filled image."""
    image, mask = _image(), _rect_mask((64, 48), (16, 16, 48, 40))
    job = prepare_inpaint(image, mask, _cfg(masked_content=content, mask_blur=2))
    expected = image if content == "original" else fill(image, blur_mask(mask, 2))
    assert np.array_equal(np.asarray(job.image), np.asarray(expected))


def test_nine_channel_conditioning_is_mask_plus_masked_image_latents(vae: Any) -> None:
    image, mask = _image(), _rect_mask((64, 48), (16, 16, 48, 40))
    job = prepare_inpaint(image, mask, _cfg(mask_blur=0))
    encode = _encode(vae)
    latents = encode(to_tensor(job.image))
    inputs = inpaint_latents(job, latents, encode=encode, inpainting_model=True)
    cond = inputs.image_conditioning
    assert cond is not None and cond.shape == (1, 5, 6, 8)
    assert torch.equal(cond[:, :1], latent_mask(job, (6, 8)))
    pixels = to_tensor(job.image)
    pixels[:, :, 16:40, 16:48] = 0.0
    assert torch.allclose(cond[:, 1:], encode(pixels))
    with pytest.raises(ValueError, match="encode="):
        inpaint_latents(job, latents, inpainting_model=True)


def _a1111_fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111 ``masking.fill`` as its source describes it: the unmasked image, premultiplied, is
    Gaussian-blurred at radii 256, 64, 16, 4, 2, 0 and laid on 1, 1, 2, 4, 2, 1 times."""
    from PIL import ImageFilter, ImageOps

    base = Image.new("RGBA", image.size)
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, times in zip((256, 64, 16, 4, 2, 0), (1, 1, 2, 4, 2, 1), strict=True):
        layer = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(times):
            base.alpha_composite(layer)
    return base.convert("RGB")


def test_fill_equals_a1111s_pixel_for_pixel_on_a_soft_mask() -> None:
    image = _image(67, 45, seed=9)
    mask = blur_mask(_rect_mask((67, 45), (10, 5, 40, 30)), 4)
    assert np.array_equal(np.asarray(fill(image, mask)), np.asarray(_a1111_fill(image, mask)))


def test_one_inpaint_pass_through_ksampling_on_the_demo_inpainting_model(demo_inpaint: Path) -> None:
    """The seam the img2img stage will use: prepare -> encode -> inpaint_latents -> sample -> finish."""
    import diffusers

    from stablenew_qt.engine.conds import BatchCond, PromptCond, ScheduledCond, TextCond
    from stablenew_qt.engine.ksampling import DenoiserModel, ImageNoise, NoiseSpec, SamplingConds, sample

    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(demo_inpaint)
    image, mask = _image(64, 64, seed=4), _rect_mask((64, 64), (16, 8, 40, 32))
    job = prepare_inpaint(image, mask, _cfg(masked_content="fill"))
    encode = _encode(pipe.vae)
    latents = encode(to_tensor(job.image))
    inputs = inpaint_latents(job, latents, encode=encode, inpainting_model=True)
    model = DenoiserModel.from_pipeline(pipe)
    assert model.needs_image_cond
    with torch.no_grad():
        pe, ne = pipe.encode_prompt("a red door", "cpu", 1, True, "")
    conds = BatchCond(
        cond=(PromptCond(((ScheduledCond(((10_000, TextCond(pe[0], None)),)), 1.0),)),),
        uncond=(ScheduledCond(((10_000, TextCond(ne[0], None)),)),),
    )
    noise = ImageNoise(NoiseSpec(seeds=(11,)), tuple(latents.shape[1:]), "cpu")
    out = sample(
        model, "Euler a", "Automatic", 4, SamplingConds(conds), noise, cfg_scale=7.0,
        init_latents=inputs.init_latents, denoise=0.75, mask=inputs.mask,
        image_conditioning=inputs.image_conditioning,
    )  # fmt: skip
    keep = inputs.mask.expand_as(out) == 0
    assert torch.equal(out[keep], inputs.init_latents[keep])  # A1111's final latent blend
    result = np.asarray(finish_inpaint(job, _decode(pipe.vae, out)))
    untouched = np.asarray(job.overlay_mask) == 0
    assert np.array_equal(result[untouched], np.asarray(image)[untouched])
    assert not np.array_equal(result[20, 28], np.asarray(image)[20, 28])
