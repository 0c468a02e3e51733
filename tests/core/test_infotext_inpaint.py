"""Inpaint infotext keys: A1111's names, written on A1111's conditions, and read back.

A1111 1.10 ``StableDiffusionProcessingImg2Img.init`` adds, in this order: ``Mask mode: Inpaint not
masked`` (only when inverted), ``Mask blur`` (only when above 0), ``Inpaint area: Only masked`` and
``Masked area padding`` (only masked), ``Masked content`` (fill, latent noise, latent nothing;
never "original").
"""

from __future__ import annotations

from typing import Any

import pytest

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.infotext import build_infotext
from stablenew_qt.core.infotext_parse import infotext_to_config, parse_infotext


def _config(**img2img: Any) -> RunConfig:
    return RunConfig.from_dict(
        {
            "prompt": "a cat",
            "txt2img": {"enabled": False},
            "img2img": {"enabled": True, "mask_path": "mask.png", **img2img},
            "input_image_path": "in.png",
        }
    )


def _text(config: RunConfig) -> str:
    return build_infotext(config, seed=7, stage_infos={}, version="0.0")


def _params(config: RunConfig) -> dict[str, str]:
    return dict(parse_infotext(_text(config)).params)


def test_defaults_write_only_mask_blur() -> None:
    params = _params(_config())
    assert params["Mask blur"] == "4"
    for key in ("Mask mode", "Inpaint area", "Masked area padding", "Masked content"):
        assert key not in params


def test_every_key_in_a1111s_order_when_set() -> None:
    config = _config(
        mask_mode="inpaint not masked",
        mask_blur=9,
        inpaint_area="only masked",
        only_masked_padding=48,
        masked_content="latent noise",
    )
    text = _text(config)
    assert (
        "Mask mode: Inpaint not masked, Mask blur: 9, Inpaint area: Only masked, "
        "Masked area padding: 48, Masked content: latent noise"
    ) in text


def test_no_inpaint_keys_without_a_mask_or_with_mask_blur_zero() -> None:
    plain = RunConfig.from_dict(
        {"txt2img": {"enabled": False}, "img2img": {"enabled": True}, "input_image_path": "in.png"}
    )
    assert "Mask blur" not in _params(plain)
    assert "Mask blur" not in _params(_config(mask_blur=0))


@pytest.mark.parametrize(
    "img2img",
    [
        {"mask_blur": 6, "masked_content": "fill"},
        {"mask_blur": 1, "masked_content": "latent nothing", "mask_mode": "inpaint not masked"},
        {"mask_blur": 4, "inpaint_area": "only masked", "only_masked_padding": 0},
        {"mask_blur": 12, "masked_content": "original", "inpaint_area": "whole picture"},
    ],
)
def test_round_trip_restores_the_inpaint_settings(img2img: dict[str, Any]) -> None:
    config = _config(**img2img)
    back = infotext_to_config(_text(config)).img2img
    for key in ("mask_blur", "mask_mode", "masked_content", "inpaint_area", "only_masked_padding"):
        expected = getattr(config.img2img, key)
        if key == "only_masked_padding" and config.img2img.inpaint_area != "only masked":
            expected = 32  # not written for the whole picture: the default comes back
        assert getattr(back, key) == expected, key
    assert back.mask_path is None  # a mask file is never restored from an image


def test_an_a1111_inpaint_infotext_maps_onto_img2img() -> None:
    text = (
        "a dog\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1, "
        "Size: 512x512, Denoising strength: 0.75, Mask blur: 4, Inpaint area: Only masked, "
        "Masked area padding: 32, Masked content: fill, Version: v1.10.1"
    )
    i2i = infotext_to_config(text).img2img
    assert i2i.enabled and i2i.denoise == 0.75
    assert (i2i.mask_blur, i2i.inpaint_area, i2i.only_masked_padding, i2i.masked_content) == (
        4,
        "only masked",
        32,
        "fill",
    )
