"""Infotext: exact A1111-format text for our configs, parsing ours and A1111's back, the mapping
onto RunConfig, and the PNG/JPEG metadata round trip."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import StageInfo
from stablenew_qt.core.infotext import (
    PARAMETERS_KEY,
    RUN_CONFIG_KEY,
    ImageMetadata,
    ParsedInfotext,
    build_infotext,
    config_from_image,
    format_value,
    infotext_to_config,
    parse_infotext,
    png_metadata,
    read_image_metadata,
)
from stablenew_qt.core.sequencer import StageName

VERSION = "0.1.0"
PROMPT = "a lighthouse at dusk, oil painting"
NEGATIVE = "blurry, lowres"
SD15 = StageInfo(model_name="v1-5-pruned-emaonly", model_hash="6ce0161689")
BASE_LINE = (
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
)
TAIL = f"Version: stablenew-qt {VERSION}"
HEAD = f"{PROMPT}\nNegative prompt: {NEGATIVE}\n{BASE_LINE}"


def make(**sections: Any) -> RunConfig:
    """A typical SD1.5 txt2img config; ``sections`` are merged into it section by section."""
    data: dict[str, Any] = {
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE,
        "seed": 1234,
        "txt2img": {"model": "v1-5-pruned-emaonly", "steps": 20, "width": 512, "height": 768},
    }
    for key, value in sections.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return RunConfig.from_dict(data)


def build(config: RunConfig, infos: dict[StageName, StageInfo] | None = None, **kwargs: Any) -> str:
    stage_infos = {StageName.TXT2IMG: SD15} if infos is None else infos
    return build_infotext(config, seed=config.seed, stage_infos=stage_infos, version=VERSION, **kwargs)


# -- building ----------------------------------------------------------------------------------


def test_typical_txt2img_infotext() -> None:
    assert build(make()) == f"{HEAD}, {TAIL}"


def test_negative_line_only_when_there_is_a_negative_prompt() -> None:
    assert build(make(negative_prompt="")) == f"{PROMPT}\n{BASE_LINE}, {TAIL}"


def test_model_falls_back_to_the_config_name_without_extension_and_no_hash() -> None:
    config = make(txt2img={"model": "models/Stable-diffusion/dreamshaper_8.safetensors"})
    assert "Size: 512x768, Model: dreamshaper_8, Version" in build(config, infos={})


def test_hires_keys() -> None:
    config = make(txt2img={"hires_enabled": True, "hires_upscaler_name": "R-ESRGAN 4x+", "hires_steps": 10})
    assert build(config) == (
        f"{HEAD}, Denoising strength: 0.5, Hires upscale: 2, Hires steps: 10, "
        f"Hires upscaler: R-ESRGAN 4x+, {TAIL}"
    )


def test_hires_resize_replaces_upscale_and_zero_hires_steps_are_dropped() -> None:
    config = make(txt2img={"hires_enabled": True, "hires_resize_width": 1024, "hires_resize_height": 1536})
    assert build(config) == (
        f"{HEAD}, Denoising strength: 0.5, Hires resize: 1024x1536, Hires upscaler: Latent, {TAIL}"
    )


def test_refiner_with_hash_from_the_txt2img_stage_info() -> None:
    config = make(txt2img={"refiner_enabled": True, "refiner_model_name": "sd_xl_refiner_1.0.safetensors"})
    info = StageInfo("v1-5-pruned-emaonly", "6ce0161689", params={"Refiner hash": "7440042bbd"})
    assert build(config, {StageName.TXT2IMG: info}) == (
        f"{HEAD}, Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.8, {TAIL}"
    )


def test_refiner_without_hash_is_just_the_name() -> None:
    config = make(
        txt2img={"refiner_enabled": True, "refiner_model_name": "my_refiner", "refiner_switch_at": 0.75}
    )
    assert build(config).endswith(
        ", Refiner: my_refiner, Refiner switch at: 0.75, Version: stablenew-qt 0.1.0"
    )


def test_two_adetailer_units_with_suffixes_and_dropped_defaults() -> None:
    hand = {
        "adetailer_model": "hand_yolov8n.pt",
        "adetailer_confidence": 0.5,
        "adetailer_mask_k": 2,
        "adetailer_use_steps": True,
        "adetailer_steps": 20,
        "adetailer_use_sampler": True,
        "adetailer_sampler": "Euler a",
    }
    off = {"adetailer_model": "person_yolov8n-seg.pt", "adetailer_tab_enable": False}
    config = make(adetailer={"enabled": True, "units": [{}, hand, off]})
    assert build(config) == (
        f"{HEAD}, ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, ADetailer dilate erode: 4, "
        "ADetailer mask blur: 4, ADetailer denoising strength: 0.4, ADetailer inpaint only masked: True, "
        "ADetailer inpaint padding: 32, "
        "ADetailer model 2nd: hand_yolov8n.pt, ADetailer confidence 2nd: 0.5, "
        "ADetailer method to decide top k masks 2nd: Area, ADetailer mask only top k 2nd: 2, "
        "ADetailer dilate erode 2nd: 4, ADetailer mask blur 2nd: 4, ADetailer denoising strength 2nd: 0.4, "
        "ADetailer inpaint only masked 2nd: True, ADetailer inpaint padding 2nd: 32, "
        "ADetailer use separate steps 2nd: True, ADetailer steps 2nd: 20, "
        "ADetailer use separate sampler 2nd: True, ADetailer sampler 2nd: Euler a, "
        f"ADetailer version: stablenew-{VERSION}, {TAIL}"
    )


def test_adetailer_keys_come_before_hires_and_refiner_keys() -> None:
    config = make(
        txt2img={"hires_enabled": True, "refiner_enabled": True, "refiner_model_name": "r"},
        adetailer={"enabled": True},
    )
    keys = list(parse_infotext(build(config)).params)
    order = [
        "Denoising strength",
        "ADetailer model",
        "ADetailer version",
        "Hires upscale",
        "Refiner",
        "Version",
    ]
    assert [k for k in keys if k in order] == order


def test_adetailer_keys_only_when_the_stage_is_enabled() -> None:
    assert "ADetailer" not in build(make(adetailer={"enabled": False}))


def test_values_with_commas_colons_newlines_are_json_quoted() -> None:
    config = make(
        img2img={
            "enabled": True,
            "prompt": 'a "red" door, ajar\nsecond line',
            "negative_prompt": "ugly: 1.2",
        },
        adetailer={"enabled": True, "units": [{"adetailer_prompt": "smile, 猫"}]},
    )
    text = build(config)
    assert ', ADetailer prompt: "smile, 猫", ' in text
    assert r', Img2img prompt: "a \"red\" door, ajar\nsecond line", ' in text
    assert ', Img2img negative prompt: "ugly: 1.2", ' in text
    assert text.count("\n") == 2


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7.0, "7"),
        (7.5, "7.5"),
        (0.3, "0.3"),
        (20, "20"),
        (True, "True"),
        (False, "False"),
        ("DPM++ 2M", "DPM++ 2M"),
        ("a, b", '"a, b"'),
        ("a: b", '"a: b"'),
        ("a\nb", '"a\\nb"'),
        ("日本語", "日本語"),
        ("", '""'),
        (" padded ", '" padded "'),
        ('"quoted"', '"\\"quoted\\""'),
    ],
)
def test_value_formatting(value: object, text: str) -> None:
    assert format_value(value) == text


def test_whole_number_floats_print_without_point_zero() -> None:
    text = build(make(txt2img={"cfg_scale": 7.0}))
    assert "CFG scale: 7," in text
    assert "CFG scale: 7.5," in build(make(txt2img={"cfg_scale": 7.5}))


def test_external_vae_and_clip_skip_above_one() -> None:
    config = make(txt2img={"vae": "vae-ft-mse-840000-ema-pruned.safetensors", "clip_skip": 2})
    info = StageInfo(
        "v1-5-pruned-emaonly", "6ce0161689", vae_name="vae-ft-mse-840000-ema-pruned", vae_hash="735e4c3a44"
    )
    assert build(config, {StageName.TXT2IMG: info}) == (
        f"{HEAD}, VAE hash: 735e4c3a44, VAE: vae-ft-mse-840000-ema-pruned, Clip skip: 2, {TAIL}"
    )


def test_img2img_after_txt2img_adds_stablenew_keys() -> None:
    config = make(
        img2img={
            "enabled": True,
            "model": "realistic.safetensors",
            "sampler": "Euler a",
            "scheduler": "Automatic",
        }
    )
    assert build(config) == (
        f"{HEAD}, Img2img denoising strength: 0.3, Img2img steps: 20, Img2img CFG scale: 7, "
        f"Img2img model: realistic, Img2img sampler: Euler a, Img2img schedule type: Automatic, {TAIL}"
    )


def test_img2img_first_describes_img2img_and_takes_size_from_its_stage_info() -> None:
    config = make(
        txt2img={"enabled": False, "sampler": "Euler a", "scheduler": "Automatic"},
        img2img={"enabled": True, "denoise": 0.45, "steps": 24, "cfg_scale": 5.5},
        input_image_path="in.png",
    )
    info = StageInfo("v1-5-pruned-emaonly", "6ce0161689", params={"Size": "640x832", "Mask blur": 4})
    assert build(config, {StageName.IMG2IMG: info}) == (
        f"{PROMPT}\nNegative prompt: {NEGATIVE}\nSteps: 24, Sampler: Euler a, Schedule type: Automatic, "
        "CFG scale: 5.5, Seed: 1234, Size: 640x832, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
        f"Denoising strength: 0.45, Mask blur: 4, {TAIL}"
    )
    assert "Size" not in parse_infotext(build(config, {})).params


def test_stage_params_follow_in_plan_order_skipping_present_and_internal_keys() -> None:
    config = make(img2img={"enabled": True}, upscale={"enabled": True, "upscale_model": "4x-UltraSharp"})
    infos = {
        StageName.UPSCALE: StageInfo(params={"Postprocess upscaler": "other", "Tile": 192}),
        StageName.IMG2IMG: StageInfo(params={"Size": "1x1", "Noise multiplier": 1.0}),
        StageName.TXT2IMG: StageInfo(SD15.model_name, SD15.model_hash, params={"Lora hashes": "a: 1, b: 2"}),
    }
    assert build(config, infos) == (
        f"{HEAD}, Img2img denoising strength: 0.3, Img2img steps: 20, Img2img CFG scale: 7, "
        "Postprocess upscale by: 2, Postprocess upscaler: 4x-UltraSharp, "
        f'Lora hashes: "a: 1, b: 2", Noise multiplier: 1, Tile: 192, {TAIL}'
    )


def test_lora_and_ti_hashes_of_later_stages_join_the_first_list_by_name() -> None:
    # A1111 lists every network the image's passes used: ADetailer's own LoRAs come in its stage.
    config = make(adetailer={"enabled": True})
    infos = {
        StageName.TXT2IMG: StageInfo(
            SD15.model_name, SD15.model_hash, params={"Lora hashes": "a: 1, b: 2", "TI hashes": "neg: 9"}
        ),
        StageName.ADETAILER: StageInfo(params={"Lora hashes": "b: 2, face: 3", "TI hashes": "neg: 9"}),
    }
    params = parse_infotext(build(config, infos)).params
    assert params["Lora hashes"] == "a: 1, b: 2, face: 3"
    assert params["TI hashes"] == "neg: 9"
    only_later = {StageName.ADETAILER: StageInfo(params={"Lora hashes": "face: 3"})}
    assert parse_infotext(build(config, only_later)).params["Lora hashes"] == "face: 3"


UPSCALE_ONLY = {
    "txt2img": {"enabled": False},
    "upscale": {"enabled": True, "upscale_model": "R-ESRGAN 4x+", "upscale_factor": 4.0},
    "input_image_path": "in.png",
}


def test_upscale_only_appends_to_the_source_parameters() -> None:
    source = f"{PROMPT}\n{BASE_LINE}, Version: v1.10.1\n"
    assert build(make(**UPSCALE_ONLY), {}, source_parameters=source) == (
        f"{PROMPT}\n{BASE_LINE}, Version: v1.10.1, "
        "Postprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+"
    )


def test_upscale_only_source_without_parameter_line_gets_a_new_one() -> None:
    text = build(make(**UPSCALE_ONLY), {}, source_parameters="just a prompt")
    assert text == f"just a prompt\nPostprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+, {TAIL}"
    assert parse_infotext(text).prompt == "just a prompt"


def test_upscale_only_without_source() -> None:
    assert build(make(**UPSCALE_ONLY), {}) == (
        f"{PROMPT}\nNegative prompt: {NEGATIVE}\n"
        f"Postprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+, {TAIL}"
    )


# -- parsing -----------------------------------------------------------------------------------

A1111_HIRES_ADETAILER = (
    "masterpiece, best quality, 1girl, (red hair:1.2), <lora:add_detail:0.6>\n"
    "city street: night, rain\n"
    "Negative prompt: (worst quality, low quality:1.4), easynegative\n"
    "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3310944651, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, Clip skip: 2, "
    "ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, ADetailer dilate erode: 4, "
    "ADetailer mask blur: 4, ADetailer denoising strength: 0.4, ADetailer inpaint only masked: True, "
    "ADetailer inpaint padding: 32, ADetailer model 2nd: hand_yolov8n.pt, ADetailer confidence 2nd: 0.35, "
    "ADetailer dilate erode 2nd: 4, ADetailer mask blur 2nd: 4, ADetailer denoising strength 2nd: 0.4, "
    "ADetailer inpaint only masked 2nd: True, ADetailer inpaint padding 2nd: 32, ADetailer version: 25.3.0, "
    "Hires upscale: 2, Hires upscaler: R-ESRGAN 4x+, "
    'Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1'
)

A1111_SDXL_REFINER = (
    "photo of an astronaut riding a horse\n"
    "Steps: 30, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 6.5, Seed: 42, "
    "Size: 1024x1024, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, VAE hash: 235745af8d, VAE: sdxl_vae, "
    "Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.8, Version: v1.9.4"
)

A1111_LEGACY = (
    "a cat\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: 6ce0161689, "
    'Model: v1-5-pruned-emaonly, Lora hashes: "a: 123, b: 456", Version: v1.6.0'
)


def test_parse_a1111_with_multiline_prompt_colons_and_quoted_values() -> None:
    parsed = parse_infotext(A1111_HIRES_ADETAILER)
    assert parsed.prompt == (
        "masterpiece, best quality, 1girl, (red hair:1.2), <lora:add_detail:0.6>\ncity street: night, rain"
    )
    assert parsed.negative_prompt == "(worst quality, low quality:1.4), easynegative"
    assert list(parsed.params)[:4] == ["Steps", "Sampler", "Schedule type", "CFG scale"]
    assert parsed.params["ADetailer model 2nd"] == "hand_yolov8n.pt"
    assert parsed.params["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert parsed.params["Version"] == "v1.10.1"
    assert len(parsed.params) == 29


def test_parse_legacy_a1111_infotext() -> None:
    parsed = parse_infotext(A1111_LEGACY)
    assert parsed == ParsedInfotext(
        "a cat",
        "",
        {
            "Steps": "20",
            "Sampler": "DPM++ 2M Karras",
            "CFG scale": "7",
            "Seed": "1234",
            "Size": "512x768",
            "Model hash": "6ce0161689",
            "Model": "v1-5-pruned-emaonly",
            "Lora hashes": "a: 123, b: 456",
            "Version": "v1.6.0",
        },
    )


def test_last_line_with_fewer_than_three_pairs_belongs_to_the_prompt() -> None:
    parsed = parse_infotext("portrait of a knight\nstyle: baroque, lighting: rim light")
    assert parsed == ParsedInfotext("portrait of a knight\nstyle: baroque, lighting: rim light", "", {})


def test_negative_prompt_spans_lines_and_crlf_is_accepted() -> None:
    text = "a\r\nb\r\nNegative prompt: x,\r\ny\r\nSteps: 1, Sampler: Euler, CFG scale: 2\r\n"
    assert parse_infotext(text) == ParsedInfotext(
        "a\nb", "x,\ny", {"Steps": "1", "Sampler": "Euler", "CFG scale": "2"}
    )


@pytest.mark.timeout(10)
@pytest.mark.parametrize("line", ["word " * 40_000, "a" + " " * 200_000 + "b", "k: " + " " * 200_000 + "x"])
def test_parsing_a_huge_line_takes_linear_time(line: str) -> None:
    assert parse_infotext(line).params == {}


def test_parse_empty_and_prompt_only_text() -> None:
    assert parse_infotext("") == ParsedInfotext("", "", {})
    assert parse_infotext("  一只猫, 坐着  \n") == ParsedInfotext("一只猫, 坐着", "", {})


# -- infotext -> RunConfig ---------------------------------------------------------------------


def test_a1111_hires_adetailer_to_config() -> None:
    config = infotext_to_config(A1111_HIRES_ADETAILER)
    t2i = config.txt2img
    assert (config.seed, t2i.steps, t2i.sampler, t2i.scheduler, t2i.cfg_scale) == (
        3310944651,
        25,
        "DPM++ 2M",
        "Karras",
        7.0,
    )
    assert (t2i.width, t2i.height, t2i.model, t2i.clip_skip) == (512, 768, "v1-5-pruned-emaonly", 2)
    assert (t2i.hires_enabled, t2i.hires_upscale_factor, t2i.hires_upscaler_name, t2i.hires_denoise) == (
        True,
        2.0,
        "R-ESRGAN 4x+",
        0.45,
    )
    assert not config.img2img.enabled and config.adetailer.enabled
    face, hand = config.adetailer.units
    assert (face.adetailer_model, face.adetailer_confidence) == ("face_yolov8n.pt", 0.3)
    assert (hand.adetailer_model, hand.adetailer_confidence, hand.adetailer_strength) == (
        "hand_yolov8n.pt",
        0.35,
        0.4,
    )


def test_a1111_refiner_and_vae_to_config() -> None:
    t2i = infotext_to_config(A1111_SDXL_REFINER).txt2img
    assert (t2i.refiner_enabled, t2i.refiner_model_name, t2i.refiner_switch_at) == (
        True,
        "sd_xl_refiner_1.0",
        0.8,
    )
    assert (t2i.sampler, t2i.scheduler, t2i.cfg_scale, t2i.vae) == (
        "DPM++ 2M SDE",
        "Exponential",
        6.5,
        "sdxl_vae",
    )
    assert not t2i.hires_enabled


def test_legacy_sampler_names_are_split_and_missing_schedule_means_automatic() -> None:
    assert infotext_to_config(A1111_LEGACY).txt2img.scheduler == "Karras"
    old = A1111_LEGACY.replace("DPM++ 2M Karras", "Euler a")
    assert (infotext_to_config(old).txt2img.sampler, infotext_to_config(old).txt2img.scheduler) == (
        "Euler a",
        "Automatic",
    )


def test_a1111_img2img_infotext_becomes_an_img2img_first_config() -> None:
    text = (
        "a castle\nSteps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 9, "
        "Size: 512x512, "
        "Model: v1-5-pruned-emaonly, Denoising strength: 0.6, Mask blur: 4, Version: v1.10.1"
    )
    config = infotext_to_config(text)
    assert not config.txt2img.enabled
    i2i = config.img2img
    assert (i2i.enabled, i2i.steps, i2i.sampler, i2i.cfg_scale, i2i.denoise, i2i.model) == (
        True,
        30,
        "Euler a",
        7.0,
        0.6,
        "v1-5-pruned-emaonly",
    )


def test_adetailer_units_keep_their_tab_positions() -> None:
    text = (
        "x\nSteps: 20, Sampler: Euler, CFG scale: 7, "
        "ADetailer model 3rd: hand_yolov8n.pt, ADetailer mask blur 3rd: 8"
    )
    units = infotext_to_config(text).adetailer.units
    assert [u.adetailer_model for u in units] == ["None", "None", "hand_yolov8n.pt"]
    assert units[2].adetailer_mask_blur == 8


FULL = {
    "txt2img": {
        "sampler": "Euler a",
        "scheduler": "Exponential",
        "cfg_scale": 6.5,
        "clip_skip": 2,
        "vae": "sdxl_vae",
        "hires_enabled": True,
        "hires_resize_width": 768,
        "hires_resize_height": 1152,
        "hires_upscaler_name": "4x-UltraSharp",
        "hires_steps": 12,
        "hires_denoise": 0.35,
        "refiner_enabled": True,
        "refiner_model_name": "sd_xl_refiner_1.0",
        "refiner_switch_at": 0.7,
    },
    "img2img": {
        "enabled": True,
        "model": "realistic",
        "prompt": "a door",
        "negative_prompt": "",
        "denoise": 0.25,
        "steps": 15,
        "cfg_scale": 4.0,
        "sampler": "DDIM",
        "scheduler": "Uniform",
    },
    "upscale": {"enabled": True, "upscale_model": "R-ESRGAN 4x+", "upscale_factor": 1.5},
    "adetailer": {
        "enabled": True,
        "units": [
            {
                "adetailer_prompt": "smiling face",
                "adetailer_mask_k": 1,
                "adetailer_mask_filter_method": "Confidence",
                "adetailer_mask_min_ratio": 0.01,
                "adetailer_x_offset": -8,
                "adetailer_mask_merge_invert": "Merge",
                "adetailer_inpaint_only_masked": False,
                "adetailer_inpaint_only_masked_padding": 32,
                "adetailer_use_inpaint_width_height": True,
                "adetailer_inpaint_width": 768,
                "adetailer_use_checkpoint": True,
                "adetailer_checkpoint": "inpaint_v26",
                "adetailer_use_sampler": True,
                "adetailer_sampler": "DPM++ SDE",
                "adetailer_scheduler": "Karras",
                "adetailer_use_clip_skip": True,
                "adetailer_clip_skip": 2,
            },
            {
                "adetailer_model": "hand_yolov8n.pt",
                "adetailer_model_classes": "hand, finger",
                "adetailer_use_noise_multiplier": True,
                "adetailer_noise_multiplier": 1.05,
                "adetailer_use_vae": True,
                "adetailer_vae": "sdxl_vae",
                "adetailer_use_cfg_scale": True,
                "adetailer_cfg_scale": 5.5,
            },
        ],
    },
}


def test_round_trip_of_every_field_infotext_covers() -> None:
    config = make(**FULL)
    assert infotext_to_config(build(config)) == config


def test_round_trip_of_an_upscale_only_config() -> None:
    # No sampling stage: no seed and no txt2img settings are written, and the input image is the user's.
    config = RunConfig.from_dict({"prompt": PROMPT, **UPSCALE_ONLY})
    assert infotext_to_config(build(config, {})) == config.model_copy(update={"input_image_path": None})


_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(',:"\\\n []()<>,猫日本語éß')),
        st.characters(exclude_categories=("Cs",), exclude_characters="\r"),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(prompt=_TEXT, negative=_TEXT, img2img_prompt=st.none() | _TEXT, unit_prompt=_TEXT)
def test_round_trip_of_arbitrary_prompts(
    prompt: str, negative: str, img2img_prompt: str | None, unit_prompt: str
) -> None:
    # The whole text is stripped (A1111), so leading whitespace of the prompt cannot survive, and a
    # prompt line starting with "Negative prompt:" is the negative prompt by definition.
    prompt = prompt.lstrip()
    assume(not any(line.startswith("Negative prompt:") for line in prompt.split("\n")))
    config = make(
        prompt=prompt,
        negative_prompt=negative,
        img2img={"enabled": True, "prompt": img2img_prompt},
        adetailer={"enabled": True, "units": [{"adetailer_prompt": unit_prompt}]},
    )
    text = build(config)
    parsed = parse_infotext(text)
    assert (parsed.prompt, parsed.negative_prompt) == (prompt, negative)
    assert infotext_to_config(parsed) == config


@settings(max_examples=200, deadline=None, database=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list('Steps:, 0123456789x"\\\nSizeADetailer model 2nd.-')), max_size=80
    )
)
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        infotext_to_config(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no generation parameters found"),
        ("just some words, nothing else", "no generation parameters found"),
        ("x\nFoo: 1, Bar: 2, Baz: 3", "no generation parameters found"),
        ("x\nSteps: twenty, Sampler: Euler, CFG scale: 7", "Steps: 'twenty' is not a whole number"),
        ("x\nSteps: 20, Sampler: Euler, CFG scale: seven", "CFG scale: 'seven' is not a number"),
        ("x\nSteps: 20, Sampler: Euler, CFG scale: nan", "CFG scale: 'nan' is not a number"),
        ("x\nSteps: 20.5, Sampler: Euler, CFG scale: 7", "Steps: '20.5' is not a whole number"),
        ("x\nSteps: 20, Sampler: Euler, Size: big", "Size: 'big' is not a size like 512x768"),
        ("x\nSteps: 20, Sampler: Euler, Size: 513x768", "txt2img.width: must be a multiple of 8"),
        ("x\nSteps: 20, Sampler: Euler Turbo, CFG scale: 7", "unknown sampler 'Euler Turbo'"),
        ("x\nSteps: 500, Sampler: Euler, CFG scale: 7", "txt2img.steps: must be at most 150"),
        ("x\nSteps: 20, Sampler: Euler, ADetailer inpaint only masked: yes", "is not True or False"),
        ("x\nSteps: 20, Sampler: Euler, ADetailer model 16th: face.pt", "at most 15 units"),
    ],
)
def test_bad_infotext_raises_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        infotext_to_config(text)


def test_non_text_input_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="must be text, not bytes"):
        infotext_to_config(b"Steps: 20")  # type: ignore[arg-type]


def test_whole_floats_are_accepted_where_ints_are_expected() -> None:
    assert infotext_to_config("x\nSteps: 20.0, Sampler: Euler, CFG scale: 7.0").txt2img.steps == 20


# -- image metadata ----------------------------------------------------------------------------


def _save_png(path: Path, parameters: str | None, config: RunConfig | None) -> Path:
    image = Image.new("RGB", (8, 8))
    if config is not None:
        image.save(path, pnginfo=png_metadata(parameters or "", config))
    elif parameters is not None:
        image.save(path, pnginfo=_parameters_only(parameters))
    else:
        image.save(path)
    return path


def _parameters_only(parameters: str) -> PngInfo:
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, parameters)
    return info


def test_png_round_trip_with_non_latin_text(tmp_path: Path) -> None:
    config = make(prompt="東京の夜景, ネオン: 雨\nzweite Zeile", negative_prompt="размытый")
    text = build(config)
    path = _save_png(tmp_path / "out.png", text, config)
    with Image.open(path) as image:
        assert set(image.text) == {PARAMETERS_KEY, RUN_CONFIG_KEY}
    meta = read_image_metadata(path)
    assert (meta.parameters, meta.run_config, meta.run_config_error) == (text, config, None)
    assert parse_infotext(meta.parameters).prompt == config.prompt


def test_png_latin1_text_is_stored_as_text_chunk(tmp_path: Path) -> None:
    path = _save_png(tmp_path / "out.png", build(make(prompt="café crème")), make(prompt="café crème"))
    assert b"tEXtparameters\x00" in path.read_bytes()


def test_config_from_image_prefers_the_embedded_run_config(tmp_path: Path) -> None:
    config = make(batch_size=4, txt2img={"model": "dreamshaper_8.safetensors"})
    path = _save_png(tmp_path / "out.png", build(config), config)
    assert config_from_image(path) == config


def test_config_from_image_falls_back_to_parameters(tmp_path: Path) -> None:
    path = _save_png(tmp_path / "a1111.png", A1111_SDXL_REFINER, None)
    assert read_image_metadata(path).run_config is None
    assert config_from_image(path).txt2img.refiner_model_name == "sd_xl_refiner_1.0"


def test_config_from_image_without_parameters(tmp_path: Path) -> None:
    path = _save_png(tmp_path / "plain.png", None, None)
    assert read_image_metadata(path) == ImageMetadata(None, None)
    with pytest.raises(ConfigError, match=re.escape("plain.png' carries no generation parameters")):
        config_from_image(path)


def test_config_from_image_names_the_file_when_parameters_are_bad(tmp_path: Path) -> None:
    path = _save_png(tmp_path / "bad.png", "x\nSteps: 20, Sampler: Euler, Size: 500x500", None)
    with pytest.raises(ConfigError, match=r"(?s)parameters of .*bad\.png.*multiple of 8"):
        config_from_image(path)


def test_unusable_embedded_run_config_keeps_parameters_readable(tmp_path: Path) -> None:
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, A1111_LEGACY)
    info.add_text(RUN_CONFIG_KEY, '{"schema_version": 99}')
    path = tmp_path / "future.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    meta = read_image_metadata(path)
    assert meta.parameters == A1111_LEGACY and meta.run_config is None
    assert meta.run_config_error is not None and "newer StableNew Qt" in meta.run_config_error
    with pytest.raises(ConfigError, match="newer StableNew Qt"):
        config_from_image(path)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00truncated"])
def test_unreadable_file_raises_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"cannot read image metadata from .*broken\.png"):
        read_image_metadata(path)


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config_from_image(tmp_path / "nope.png")


@pytest.mark.parametrize(
    ("suffix", "encoding"), [(".jpg", "utf-16-be"), (".webp", "utf-16-le"), (".jpg", "utf-16")]
)
def test_jpeg_and_webp_exif_user_comment(tmp_path: Path, suffix: str, encoding: str) -> None:
    text = "渋谷の交差点, 夜\n" + BASE_LINE
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\0" + text.encode(encoding)
    path = tmp_path / f"a1111{suffix}"
    Image.new("RGB", (8, 8)).save(path, exif=exif)
    meta = read_image_metadata(path)
    assert (meta.parameters, meta.run_config) == (text, None)
    assert config_from_image(path).txt2img.steps == 20


def _png_with_trailing_text(path: Path, key: str, text: str) -> None:
    """A PNG whose tEXt chunk comes after the pixel data (some tools write it there)."""
    import struct
    import zlib

    Image.new("RGB", (16, 16), (1, 2, 3)).save(path)
    data = path.read_bytes()
    iend = data.rindex(b"IEND") - 4
    body = key.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    path.write_bytes(data[:iend] + chunk + data[iend:])


def test_text_before_the_pixels_is_read_without_decoding_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import PngImagePlugin

    path = tmp_path / "early.png"
    info = PngInfo()
    info.add_text("parameters", "a cat\nSteps: 3, Seed: 1")
    Image.new("RGB", (16, 16)).save(path, pnginfo=info)

    def no_decoding(_self: object) -> None:
        raise AssertionError("the pixels were decoded to read the metadata")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    assert read_image_metadata(path).parameters == "a cat\nSteps: 3, Seed: 1"


def test_text_after_the_pixels_is_still_found(tmp_path: Path) -> None:
    path = tmp_path / "late.png"
    _png_with_trailing_text(path, "parameters", "a dog\nSteps: 4, Seed: 2")
    with Image.open(path) as image:
        assert "parameters" not in image.info  # really after the pixel data
    assert read_image_metadata(path).parameters == "a dog\nSteps: 4, Seed: 2"
