"""RunConfig loading: documented defaults, JSON round trip, and a ConfigError that teaches for every
kind of mistake. Also input-image reading (core/images.py) and the shipped presets."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from pydantic import BaseModel, ValidationError

from stablenew_qt.core.config import (
    ADetailerConfig,
    ADetailerUnit,
    Img2ImgConfig,
    OutpaintConfig,
    RunConfig,
    Txt2ImgConfig,
    UpscaleConfig,
    load_run_config,
    with_changes,
)
from stablenew_qt.core.errors import ConfigError, ConfigProblem
from stablenew_qt.core.images import load_input_image, to_rgb
from stablenew_qt.core.samplers import SAMPLERS, SCHEDULERS
from stablenew_qt.core.sequencer import StageSequencer

PRESETS_DIR = Path(__file__).resolve().parents[2] / "stablenew_qt" / "resources" / "presets"
TOP_KEYS = (
    "schema_version, prompt, negative_prompt, seed, batch_size, batch_count, subseed, subseed_strength, "
    "seed_resize_from_w, seed_resize_from_h, rng_source, eta_noise_seed_delta, emphasis, "
    "sampler_settings, input_image_path, prompt_template, negative_prompt_template, "
    "txt2img, img2img, upscale, adetailer"
)

# The documented JSON shape (docs/run-config.md), written out so that a changed default is a decision.
EXPECTED_TOP = {
    "schema_version": 1,
    "prompt": "",
    "negative_prompt": "",
    "seed": -1,
    "batch_size": 1,
    "batch_count": 1,
    "subseed": -1,
    "subseed_strength": 0.0,
    "seed_resize_from_w": 0,
    "seed_resize_from_h": 0,
    "rng_source": "GPU",
    "eta_noise_seed_delta": 0,
    "emphasis": "Original",
    "sampler_settings": {
        "eta": None,
        "s_churn": 0.0,
        "s_tmin": 0.0,
        "s_tmax": 0.0,
        "s_noise": 1.0,
        "sgm_noise_multiplier": False,
        "always_discard_next_to_last_sigma": False,
    },
    "input_image_path": None,
    "prompt_template": None,
    "negative_prompt_template": None,
}
EXPECTED_TXT2IMG = {
    "enabled": True,
    "model": "",
    "vae": None,
    "sampler": "DPM++ 2M",
    "scheduler": "Karras",
    "steps": 30,
    "cfg_scale": 7.0,
    "width": 1024,
    "height": 1024,
    "clip_skip": 1,
    "refiner_enabled": False,
    "refiner_model_name": None,
    "refiner_switch_at": 0.8,
    "hires_enabled": False,
    "hires_upscale_factor": 2.0,
    "hires_resize_width": 0,
    "hires_resize_height": 0,
    "hires_upscaler_name": "Latent",
    "hires_steps": 0,
    "hires_denoise": 0.5,
    "hires_checkpoint": None,
    "hires_sampler": None,
    "hires_scheduler": None,
    "hires_prompt": "",
    "hires_negative_prompt": "",
}
EXPECTED_IMG2IMG = {
    "enabled": False,
    "model": None,
    "prompt": None,
    "negative_prompt": None,
    "denoise": 0.3,
    "steps": 20,
    "cfg_scale": 7.0,
    "sampler": None,
    "scheduler": None,
    "seed": None,
    "noise_multiplier": 1.0,
    "width": 0,
    "height": 0,
    "resize_mode": "just resize",
    "mask_path": None,
    "mask_from_alpha": False,
    "mask_blur": 4,
    "mask_mode": "inpaint masked",
    "masked_content": "original",
    "inpaint_area": "whole picture",
    "only_masked_padding": 32,
    "outpaint": {"left": 0, "right": 0, "top": 0, "bottom": 0},
}
EXPECTED_UPSCALE = {"enabled": False, "upscale_model": "Lanczos", "upscale_factor": 2.0}
EXPECTED_ADETAILER_GLOBALS = {
    "enabled": False,
    "bbox_sortby": "None",
    "same_seed_for_each_unit": False,
    "dynamic_denoise_power": 0.0,
    "match_inpaint_bbox_size": "Off",
}
# ADetailer's own defaults (stage-semantics §1.1); the legacy "DPM++ 2M Karras" is stored split.
EXPECTED_UNIT = {
    "adetailer_model": "face_yolov8n.pt",
    "adetailer_model_classes": "",
    "adetailer_tab_enable": True,
    "adetailer_prompt": "",
    "adetailer_negative_prompt": "",
    "adetailer_confidence": 0.3,
    "adetailer_mask_filter_method": "Area",
    "adetailer_mask_k": 0,
    "adetailer_mask_min_ratio": 0.0,
    "adetailer_mask_max_ratio": 1.0,
    "adetailer_x_offset": 0,
    "adetailer_y_offset": 0,
    "adetailer_dilate_erode": 4,
    "adetailer_mask_merge_invert": "None",
    "adetailer_mask_blur": 4,
    "adetailer_strength": 0.4,
    "adetailer_inpaint_only_masked": True,
    "adetailer_inpaint_only_masked_padding": 32,
    "adetailer_use_inpaint_width_height": False,
    "adetailer_inpaint_width": 512,
    "adetailer_inpaint_height": 512,
    "adetailer_use_steps": False,
    "adetailer_steps": 28,
    "adetailer_use_cfg_scale": False,
    "adetailer_cfg_scale": 7.0,
    "adetailer_use_checkpoint": False,
    "adetailer_checkpoint": None,
    "adetailer_use_vae": False,
    "adetailer_vae": None,
    "adetailer_use_sampler": False,
    "adetailer_sampler": "DPM++ 2M",
    "adetailer_scheduler": "Use same scheduler",
    "adetailer_use_noise_multiplier": False,
    "adetailer_noise_multiplier": 1.0,
    "adetailer_use_clip_skip": False,
    "adetailer_clip_skip": 1,
}


def config_error(data: Any) -> ConfigError:
    """The ConfigError that ``data`` (a dict, or JSON text/bytes) raises."""
    with pytest.raises(ConfigError) as info:
        if isinstance(data, str | bytes):
            RunConfig.from_json(data)
        else:
            RunConfig.from_dict(data)
    assert info.value.problems, "a ConfigError must list at least one problem"
    return info.value


def only_problem(data: Any) -> ConfigProblem:
    problems = config_error(data).problems
    assert len(problems) == 1, problems
    return problems[0]


def unit(**keys: Any) -> dict[str, Any]:
    """A run config dict with one ADetailer unit holding ``keys``."""
    return {"adetailer": {"units": [keys]}}


# -- defaults and round trip -------------------------------------------------------------------


def test_defaults_match_documented_json_shape() -> None:
    dumped = RunConfig().model_dump(mode="json")
    assert list(dumped) == [*EXPECTED_TOP, "txt2img", "img2img", "upscale", "adetailer"]
    assert {k: dumped[k] for k in EXPECTED_TOP} == EXPECTED_TOP
    assert dumped["txt2img"] == EXPECTED_TXT2IMG
    assert dumped["img2img"] == EXPECTED_IMG2IMG
    assert dumped["upscale"] == EXPECTED_UPSCALE
    adetailer = dict(dumped["adetailer"])
    units = adetailer.pop("units")
    assert adetailer == EXPECTED_ADETAILER_GLOBALS
    assert units == [EXPECTED_UNIT]


def test_empty_object_gives_defaults() -> None:
    assert RunConfig.from_json("{}") == RunConfig()
    assert RunConfig.from_dict({"txt2img": {}, "adetailer": {"units": [{}]}}) == RunConfig()


def test_round_trip_through_json_is_exact() -> None:
    config = RunConfig.from_dict(
        {
            "prompt": 'a lighthouse, "storm" — ünïcode ✓',
            "negative_prompt": "blurry",
            "seed": 4294967295,
            "batch_size": 3,
            "txt2img": {
                "model": "sd_xl_base_1.0.safetensors",
                "cfg_scale": 6.5,
                "width": 832,
                "height": 1216,
                "refiner_enabled": True,
                "refiner_model_name": "sd_xl_refiner_1.0.safetensors",
                "refiner_switch_at": 0.65,
                "hires_enabled": True,
                "hires_denoise": 0.35,
            },
            "img2img": {"enabled": True, "prompt": "", "seed": -1, "sampler": "Euler a"},
            "upscale": {"enabled": True, "upscale_model": "4x-UltraSharp", "upscale_factor": 1.5},
            "adetailer": {
                "enabled": True,
                "units": [{"adetailer_model": "hand_yolov8n.pt"}, {"adetailer_tab_enable": False}],
                "bbox_sortby": "Area (large to small)",
            },
        }
    )
    text = config.to_json()
    again = RunConfig.from_json(text)
    assert again == config
    assert again.to_json() == text
    assert RunConfig.from_json(config.to_json(indent=None)) == config
    assert "ünïcode ✓" in text  # written as UTF-8 text, not \u escapes
    assert RunConfig.from_json(text.encode("utf-8")) == config


def test_integer_for_float_field_is_accepted_as_float() -> None:
    config = RunConfig.from_json('{"txt2img": {"cfg_scale": 7, "hires_upscale_factor": 2}}')
    assert config.txt2img.cfg_scale == 7.0
    assert isinstance(config.txt2img.cfg_scale, float)
    assert '"cfg_scale": 7.0' in config.to_json()


def test_units_list_becomes_tuple_and_keeps_order() -> None:
    config = RunConfig.from_dict(
        {"adetailer": {"units": [{"adetailer_model": "a.pt"}, {"adetailer_model": "b.pt"}]}}
    )
    assert isinstance(config.adetailer.units, tuple)
    assert [u.adetailer_model for u in config.adetailer.units] == ["a.pt", "b.pt"]


# -- malformed JSON and non-objects ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"seed": 1,\n  "prompt": }', "not valid JSON at line 2, column 13: Expecting value"),
        ("", "not valid JSON at line 1, column 1: Expecting value"),
        (
            "{'seed': 1}",
            "not valid JSON at line 1, column 2: Expecting property name enclosed in double quotes",
        ),
        ('{"seed": 1} x', "not valid JSON at line 1, column 13: Extra data"),
    ],
)
def test_malformed_json_names_line_and_column(text: str, message: str) -> None:
    assert only_problem(text) == ConfigProblem("", message)


def test_trailing_comma_names_its_position() -> None:
    # The reason wording changed in Python 3.13; the position is what the user needs.
    problem = only_problem('{"seed": 1,\n "prompt": "x",\n}')
    assert problem.field == ""
    assert problem.message.startswith("not valid JSON at line 3, column 1: ")


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1, 2]", "list"), ('"hello"', "str"), ("42", "int"), ("null", "NoneType"), ("true", "bool")],
)
def test_json_that_is_not_an_object_is_refused(text: str, kind: str) -> None:
    assert only_problem(text) == ConfigProblem("", f"a run config must be a JSON object, not {kind}")


# -- wrong types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"seed": "5"}, "seed", "must be a whole number, got '5'"),
        ({"seed": True}, "seed", "must be a whole number, got True"),
        ({"seed": 5.0}, "seed", "must be a whole number, got 5.0"),
        ({"batch_size": None}, "batch_size", "must be a whole number, got None"),
        ({"txt2img": {"steps": "30"}}, "txt2img.steps", "must be a whole number, got '30'"),
        ({"txt2img": {"steps": False}}, "txt2img.steps", "must be a whole number, got False"),
        ({"txt2img": {"width": 1024.0}}, "txt2img.width", "must be a whole number, got 1024.0"),
        ({"txt2img": {"cfg_scale": "7"}}, "txt2img.cfg_scale", "must be a number, got '7'"),
        ({"txt2img": {"cfg_scale": True}}, "txt2img.cfg_scale", "must be a number, got True"),
        ({"prompt": 3}, "prompt", "must be text in quotes, got 3"),
        ({"txt2img": {"model": 1.5}}, "txt2img.model", "must be text in quotes, got 1.5"),
        ({"txt2img": {"enabled": "yes"}}, "txt2img.enabled", "must be true or false, got 'yes'"),
        ({"txt2img": {"enabled": 1}}, "txt2img.enabled", "must be true or false, got 1"),
        ({"txt2img": None}, "txt2img", "must be an object with keys, got None"),
        ({"txt2img": []}, "txt2img", "must be an object with keys, got list"),
        ({"adetailer": {"units": {}}}, "adetailer.units", "must be a list, got dict"),
        (
            unit(adetailer_confidence="high"),
            "adetailer.units[0].adetailer_confidence",
            "must be a number, got 'high'",
        ),
    ],
)
def test_wrong_type_names_field_and_expected_type(data: dict[str, Any], field: str, message: str) -> None:
    assert config_error(data).problems[0] == ConfigProblem(field, message)


def test_error_text_is_field_colon_message() -> None:
    assert str(config_error({"seed": "5"})) == "seed: must be a whole number, got '5'"


def test_every_problem_is_listed_in_order() -> None:
    error = config_error({"seed": -2, "batch_size": 0, "txt2img": {"steps": 0, "width": 1001}})
    assert error.problems == (
        ConfigProblem("seed", "must be at least -1, got -2"),
        ConfigProblem("batch_size", "must be at least 1, got 0"),
        ConfigProblem("txt2img.steps", "must be at least 1, got 0"),
        ConfigProblem("txt2img.width", "must be a multiple of 8, for example 1000 or 1008"),
    )
    assert str(error).splitlines() == [str(p) for p in error.problems]


# -- unknown keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"promt": "x"}, "promt", "unknown key 'promt'; did you mean 'prompt'?"),
        ({"zzz": 1}, "zzz", f"unknown key 'zzz'; valid keys here: {TOP_KEYS}"),
        ({"txt2img": {"stepz": 20}}, "txt2img.stepz", "unknown key 'stepz'; did you mean 'steps'?"),
        (
            {"txt2img": {"hires_upscaler": "Latent"}},
            "txt2img.hires_upscaler",
            "unknown key 'hires_upscaler'; did you mean 'hires_upscaler_name'?",
        ),
        (
            {"img2img": {"denoising_strength": 0.5}},
            "img2img.denoising_strength",
            "unknown key 'denoising_strength'; did you mean 'denoise'?",
        ),
        (
            unit(adetailer_modle="x.pt"),
            "adetailer.units[0].adetailer_modle",
            "unknown key 'adetailer_modle'; did you mean 'adetailer_model'?",
        ),
        (
            unit(ad_confidence=0.5),
            "adetailer.units[0].ad_confidence",
            "unknown key 'ad_confidence'; did you mean 'adetailer_confidence'?",
        ),
        (
            {"adetailer": {"sort_by": "None"}},
            "adetailer.sort_by",
            "unknown key 'sort_by'; did you mean 'bbox_sortby'?",
        ),
    ],
)
def test_unknown_key_suggests_closest_valid_key(data: dict[str, Any], field: str, message: str) -> None:
    assert config_error(data).problems[0] == ConfigProblem(field, message)


def test_unknown_key_in_second_unit_points_at_that_unit() -> None:
    data = {"adetailer": {"units": [{}, {"adetailer_modle": "x.pt"}]}}
    assert only_problem(data) == ConfigProblem(
        "adetailer.units[1].adetailer_modle", "unknown key 'adetailer_modle'; did you mean 'adetailer_model'?"
    )


def test_invalid_only_unit_reports_one_problem() -> None:
    """pydantic's tuple min_length counts only valid items; the count check must not pile on."""
    assert len(config_error(unit(adetailer_modle="x.pt")).problems) == 1


# -- out-of-range values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"txt2img": {"steps": 0}}, "txt2img.steps", "must be at least 1, got 0"),
        ({"txt2img": {"steps": 151}}, "txt2img.steps", "must be at most 150, got 151"),
        ({"txt2img": {"width": 1001}}, "txt2img.width", "must be a multiple of 8, for example 1000 or 1008"),
        ({"txt2img": {"height": 70}}, "txt2img.height", "must be a multiple of 8, for example 64 or 72"),
        ({"txt2img": {"width": 32}}, "txt2img.width", "must be at least 64, got 32"),
        ({"txt2img": {"width": 4104}}, "txt2img.width", "must be at most 4096, got 4104"),
        ({"txt2img": {"refiner_switch_at": 0}}, "txt2img.refiner_switch_at", "must be more than 0.0, got 0"),
        ({"txt2img": {"refiner_switch_at": 1}}, "txt2img.refiner_switch_at", "must be less than 1.0, got 1"),
        (
            {"txt2img": {"refiner_switch_at": 1.0}},
            "txt2img.refiner_switch_at",
            "must be less than 1.0, got 1.0",
        ),
        (
            {"txt2img": {"hires_resize_width": 100}},
            "txt2img.hires_resize_width",
            "must be a multiple of 8, for example 96 or 104",
        ),
        ({"txt2img": {"hires_upscaler_name": ""}}, "txt2img.hires_upscaler_name", "must not be empty"),
        ({"txt2img": {"cfg_scale": 30.5}}, "txt2img.cfg_scale", "must be at most 30.0, got 30.5"),
        ({"img2img": {"denoise": 1.5}}, "img2img.denoise", "must be at most 1.0, got 1.5"),
        ({"img2img": {"seed": -3}}, "img2img.seed", "must be at least -1, got -3"),
        ({"seed": -2}, "seed", "must be at least -1, got -2"),
        ({"seed": 2**32}, "seed", "must be at most 4294967295, got 4294967296"),
        ({"batch_size": 0}, "batch_size", "must be at least 1, got 0"),
        ({"upscale": {"upscale_factor": 0.5}}, "upscale.upscale_factor", "must be at least 1.0, got 0.5"),
        (
            unit(adetailer_confidence=1.01),
            "adetailer.units[0].adetailer_confidence",
            "must be at most 1.0, got 1.01",
        ),
        (
            unit(adetailer_mask_filter_method="Size"),
            "adetailer.units[0].adetailer_mask_filter_method",
            "must be one of 'Area' or 'Confidence', got 'Size'",
        ),
        (
            {"adetailer": {"match_inpaint_bbox_size": "on"}},
            "adetailer.match_inpaint_bbox_size",
            "must be one of 'Off', 'Strict (SDXL only)' or 'Free', got 'on'",
        ),
        ({"adetailer": {"units": [{}] * 16}}, "adetailer.units", "must have 1 to 15 units, got 16"),
        ({"adetailer": {"units": []}}, "adetailer.units", "must have 1 to 15 units, got 0"),
        (
            unit(adetailer_mask_min_ratio=0.6, adetailer_mask_max_ratio=0.5),
            "adetailer.units[0]",
            "adetailer_mask_min_ratio (0.6) must not exceed adetailer_mask_max_ratio (0.5)",
        ),
    ],
)
def test_out_of_range_names_field_and_allowed_range(data: dict[str, Any], field: str, message: str) -> None:
    assert config_error(data).problems[0] == ConfigProblem(field, message)


@pytest.mark.parametrize(
    "data",
    [
        {"txt2img": {"width": 1000, "height": 64, "steps": 1}},
        {"txt2img": {"width": 4096, "steps": 150, "refiner_switch_at": 0.01}},
        {"txt2img": {"refiner_switch_at": 0.99, "hires_resize_width": 0, "hires_resize_height": 8}},
        {"seed": 0, "img2img": {"denoise": 1.0, "seed": 4294967295}},
        {"seed": 4294967295, "batch_size": 64},
        unit(adetailer_mask_min_ratio=0.5, adetailer_mask_max_ratio=0.5),
    ],
)
def test_boundary_values_are_accepted(data: dict[str, Any]) -> None:
    RunConfig.from_dict(data)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(value: str) -> None:
    problem = config_error(f'{{"txt2img": {{"cfg_scale": {value}}}}}').problems[0]
    assert problem.field == "txt2img.cfg_scale"
    assert problem.message.startswith("must be a")


# -- schema version ----------------------------------------------------------------------------


def test_newer_schema_version_says_update() -> None:
    assert only_problem({"schema_version": 2, "bogus": 1}) == ConfigProblem(
        "schema_version",
        "this config was written by a newer StableNew Qt (schema 2); this version reads schema 1: "
        "update StableNew Qt",
    )


@pytest.mark.parametrize(
    ("value", "shown", "expected"),
    [
        (0, "0", "must be 1, got {shown}"),
        ("1", "'1'", "must be a whole number, got {shown}"),
        (None, "None", "must be a whole number, got {shown}"),
    ],
)
def test_other_schema_versions_are_refused(value: Any, shown: str, expected: str) -> None:
    assert only_problem({"schema_version": value}) == ConfigProblem(
        "schema_version", expected.format(shown=shown)
    )


def test_missing_schema_version_reads_as_current() -> None:
    assert RunConfig.from_dict({}).schema_version == 1


def test_schema_version_true_is_refused() -> None:
    assert only_problem('{"schema_version": true}') == ConfigProblem(
        "schema_version", "must be a whole number, got True"
    )


# -- samplers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legacy", "sampler", "scheduler"),
    [
        ("DPM++ 2M Karras", "DPM++ 2M", "Karras"),
        ("DPM++ 2M SDE Exponential", "DPM++ 2M SDE", "Exponential"),
        ("DPM++ 2M SDE Heun Karras", "DPM++ 2M SDE Heun", "Karras"),
        ("Euler a SGM Uniform", "Euler a", "SGM Uniform"),
        ("DDIM DDIM", "DDIM", "DDIM"),
    ],
)
def test_legacy_combined_sampler_name_is_split(legacy: str, sampler: str, scheduler: str) -> None:
    config = RunConfig.from_dict({"txt2img": {"sampler": legacy}, "img2img": {"sampler": legacy}})
    assert (config.txt2img.sampler, config.txt2img.scheduler) == (sampler, scheduler)
    assert (config.img2img.sampler, config.img2img.scheduler) == (sampler, scheduler)
    assert f'"sampler": "{sampler}"' in config.to_json()


def test_explicit_scheduler_wins_over_legacy_suffix() -> None:
    config = RunConfig.from_dict({"txt2img": {"sampler": "DPM++ 2M Karras", "scheduler": "Exponential"}})
    assert (config.txt2img.sampler, config.txt2img.scheduler) == ("DPM++ 2M", "Exponential")


def test_adetailer_unit_legacy_sampler_is_split() -> None:
    config = RunConfig.from_dict(unit(adetailer_use_sampler=True, adetailer_sampler="DPM++ 2M Karras"))
    only = config.adetailer.units[0]
    assert (only.adetailer_sampler, only.adetailer_scheduler) == ("DPM++ 2M", "Karras")
    kept = ADetailerUnit.model_validate(
        {"adetailer_sampler": "Euler a Karras", "adetailer_scheduler": "Use same scheduler"}
    )
    assert (kept.adetailer_sampler, kept.adetailer_scheduler) == ("Euler a", "Use same scheduler")


def test_legacy_split_does_not_change_the_callers_dict() -> None:
    data = {"txt2img": {"sampler": "DPM++ 2M Karras"}, **unit(adetailer_sampler="DPM++ 2M Karras")}
    before = copy.deepcopy(data)
    RunConfig.from_dict(data)
    assert data == before


@pytest.mark.parametrize(
    ("data", "field", "name"),
    [
        ({"txt2img": {"sampler": "Euler b"}}, "txt2img.sampler", "Euler b"),
        ({"txt2img": {"sampler": "DPM++ 2M Turbo"}}, "txt2img.sampler", "DPM++ 2M Turbo"),
        ({"img2img": {"sampler": "k_euler"}}, "img2img.sampler", "k_euler"),
        (
            unit(adetailer_sampler="Use same sampler"),
            "adetailer.units[0].adetailer_sampler",
            "Use same sampler",
        ),
    ],
)
def test_unknown_sampler_lists_valid_samplers(data: dict[str, Any], field: str, name: str) -> None:
    problem = config_error(data).problems[0]
    assert problem.field == field
    assert problem.message.startswith(f"unknown sampler {name!r}; valid samplers: DPM++ 2M, ")
    listed = problem.message.split("valid samplers: ", 1)[1].split(", ")
    assert listed == list(SAMPLERS)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"txt2img": {"scheduler": "karras"}}, "txt2img.scheduler"),
        ({"img2img": {"scheduler": "Use same scheduler"}}, "img2img.scheduler"),
        (unit(adetailer_scheduler="Nope"), "adetailer.units[0].adetailer_scheduler"),
    ],
)
def test_unknown_schedule_type_lists_valid_ones(data: dict[str, Any], field: str) -> None:
    problem = config_error(data).problems[0]
    assert problem.field == field
    listed = problem.message.split("valid schedule types: ", 1)[1].split(", ")
    assert problem.message.startswith("unknown schedule type ")
    assert listed == list(SCHEDULERS)


# -- files -------------------------------------------------------------------------------------


def test_load_run_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"prompt": "cat", "txt2img": {"steps": 12}}', encoding="utf-8")
    config = load_run_config(path)
    assert (config.prompt, config.txt2img.steps) == ("cat", 12)
    assert load_run_config(str(path)) == config


def test_load_run_config_accepts_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "caf\xc3\xa9"}')
    assert load_run_config(path).prompt == "café"


def test_load_run_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    error = config_error_from_file(path)
    message = f"config file {str(path)!r}: it does not exist; give a RunConfig JSON file"
    assert error.problems == (ConfigProblem("", message),)


def test_load_run_config_on_a_directory(tmp_path: Path) -> None:
    error = config_error_from_file(tmp_path)
    (problem,) = error.problems
    reason = "it is a folder, not a regular file; give a RunConfig JSON file"
    assert problem.message == f"config file {str(tmp_path)!r}: {reason}"


def test_load_run_config_on_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"prompt": "café"}'.encode("latin-1"))
    assert config_error_from_file(path).problems == (
        ConfigProblem("", f"config file {str(path)!r}: not valid JSON: the file is not UTF-8 text"),
    )


def test_load_run_config_on_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "image.json"
    path.write_bytes(png_bytes(Image.new("RGB", (8, 8))))
    message = config_error_from_file(path).problems[0].message
    assert message.startswith(f"config file {str(path)!r}: not valid JSON")


def config_error_from_file(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    return info.value


# -- immutability and changes ------------------------------------------------------------------


def test_config_is_frozen() -> None:
    config = RunConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.seed = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        config.txt2img.steps = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        config.adetailer.units[0].adetailer_strength = 0.9  # type: ignore[misc]
    assert config == RunConfig()
    assert hash(config) == hash(RunConfig())


def test_with_changes_returns_a_validated_copy() -> None:
    config = RunConfig()
    changed = with_changes(config, seed=42, txt2img=config.txt2img.model_copy(update={"steps": 12}))
    assert (changed.seed, changed.txt2img.steps) == (42, 12)
    assert (config.seed, config.txt2img.steps) == (-1, 30)
    assert with_changes(config, txt2img={"sampler": "Euler a"}).txt2img == Txt2ImgConfig(sampler="Euler a")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"seed": -5}, ConfigProblem("seed", "must be at least -1, got -5")),
        ({"batch_size": "2"}, ConfigProblem("batch_size", "must be a whole number, got '2'")),
        ({"promt": "x"}, ConfigProblem("promt", "unknown key 'promt'; did you mean 'prompt'?")),
        (
            {"txt2img": {"width": 1001}},
            ConfigProblem("txt2img.width", "must be a multiple of 8, for example 1000 or 1008"),
        ),
    ],
)
def test_with_changes_validates(changes: dict[str, Any], problem: ConfigProblem) -> None:
    with pytest.raises(ConfigError) as info:
        with_changes(RunConfig(), **changes)
    assert info.value.problems == (problem,)


def test_with_changes_catches_values_model_copy_would_let_through() -> None:
    bad = RunConfig().txt2img.model_copy(update={"steps": 0})  # model_copy does not validate
    with pytest.raises(ConfigError) as info:
        with_changes(RunConfig(), txt2img=bad)
    assert info.value.problems == (ConfigProblem("txt2img.steps", "must be at least 1, got 0"),)


# -- robustness bugs (owner: config.py / validation.py) ------------------------------------------


def test_deeply_nested_json_is_a_config_error() -> None:
    assert "nested too deeply" in str(config_error("[" * 100_000))


def test_huge_integer_literal_is_a_config_error() -> None:
    assert str(config_error('{"seed": ' + "9" * 5000 + "}")).startswith("not valid JSON: ")


def test_huge_integer_value_is_a_config_error() -> None:
    assert only_problem({"seed": 10**5000}) == ConfigProblem(
        "seed", "must be at most 4294967295, got a number with about 5001 digits"
    )


def test_lone_surrogate_is_refused_so_every_config_can_be_saved_as_utf8() -> None:
    assert only_problem('{"txt2img": {"model": "a\\ud800"}}') == ConfigProblem(
        "txt2img.model", "contains a character that is not valid Unicode text (a lone surrogate)"
    )


# -- presets -----------------------------------------------------------------------------------


def preset_paths() -> list[Path]:
    return sorted(PRESETS_DIR.glob("*.json"))


def test_the_documented_presets_exist() -> None:
    names = {p.name for p in preset_paths()}
    assert {"sd15-portrait.json", "sdxl-base-refiner.json", "sdxl-hires-adetailer.json"} <= names


@pytest.mark.parametrize("path", preset_paths(), ids=lambda p: p.name)
def test_every_preset_validates_and_plans(path: Path) -> None:
    config = load_run_config(path)
    plan = StageSequencer().build_execution_plan(config, check_files=False)
    assert plan.names[0] == "txt2img"
    assert plan.warnings == ()
    assert config.txt2img.model.endswith(".safetensors")
    assert RunConfig.from_json(config.to_json()) == config
    # Every value the preset spells out is read as written (no legacy rewriting, no typos).
    assert_subset(json.loads(path.read_text(encoding="utf-8")), config.model_dump(mode="json"))


def assert_subset(written: Any, loaded: Any, where: str = "") -> None:
    if isinstance(written, dict):
        for key, value in written.items():
            assert_subset(value, loaded[key], f"{where}.{key}")
    elif isinstance(written, list):
        assert len(written) == len(loaded), where
        for i, (w, got) in enumerate(zip(written, loaded, strict=True)):
            assert_subset(w, got, f"{where}[{i}]")
    else:
        assert written == loaded, where


@pytest.mark.parametrize(
    ("name", "stages", "refiner", "hires"),
    [
        ("sd15-portrait.json", ("txt2img",), False, False),
        ("sdxl-base-refiner.json", ("txt2img",), True, False),
        ("sdxl-hires-adetailer.json", ("txt2img", "adetailer"), False, True),
    ],
)
def test_preset_plans(name: str, stages: tuple[str, ...], refiner: bool, hires: bool) -> None:
    plan = StageSequencer().build_execution_plan(load_run_config(PRESETS_DIR / name), check_files=False)
    assert plan.names == stages
    assert (plan.first.refiner_enabled, plan.first.hires_enabled) == (refiner, hires)


# -- docs/run-config.md stays in step with the models -----------------------------------------

RUN_CONFIG_DOC = Path(__file__).resolve().parents[2] / "docs" / "run-config.md"


@pytest.mark.parametrize(
    "model",
    [RunConfig, Txt2ImgConfig, Img2ImgConfig, OutpaintConfig, UpscaleConfig, ADetailerConfig, ADetailerUnit],
)
def test_every_key_is_documented_with_its_default(model: type[BaseModel]) -> None:
    doc = RUN_CONFIG_DOC.read_text(encoding="utf-8")
    defaults = model().model_dump(mode="json")
    for key in model.model_fields:
        rows = [line for line in doc.splitlines() if line.startswith(f"| `{key}` |")]
        assert rows, f"{model.__name__}.{key} is missing from docs/run-config.md"
        if not isinstance(defaults[key], dict | list):
            shown = f"`{json.dumps(defaults[key], ensure_ascii=False)}`"
            assert any(f"| {shown} |" in r for r in rows), f"{key}: documented default is not {shown}"


def test_documented_example_validates() -> None:
    doc = RUN_CONFIG_DOC.read_text(encoding="utf-8")
    example = doc.split("## Example", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    config = RunConfig.from_json(example)
    plan = StageSequencer().build_execution_plan(config, check_files=False)
    assert plan.names == ("txt2img", "upscale", "adetailer")
    assert plan.first.refiner_enabled and plan.first.hires_enabled


# -- input images (core/images.py) -------------------------------------------------------------


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def row(image: Image.Image) -> list[Any]:
    return [image.getpixel((x, 0)) for x in range(image.width)]


def test_to_rgb_keeps_rgb_as_is() -> None:
    image = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(image) is image


def test_to_rgb_rgba_transparency_becomes_white() -> None:
    image = Image.new("RGBA", (3, 1), (0, 0, 0, 0))
    image.putpixel((1, 0), (10, 20, 30, 255))
    image.putpixel((2, 0), (0, 0, 0, 128))
    out = to_rgb(image)
    assert out.mode == "RGB"
    assert row(out)[:2] == [(255, 255, 255), (10, 20, 30)]
    assert all(126 <= c <= 128 for c in row(out)[2])  # half-transparent black over white is grey


def test_to_rgb_la() -> None:
    image = Image.new("LA", (2, 1), (0, 0))
    image.putpixel((1, 0), (100, 255))
    assert row(to_rgb(image)) == [(255, 255, 255), (100, 100, 100)]


def test_to_rgb_palette_with_transparency() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0])
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    out = to_rgb(image)
    assert out.mode == "RGB"
    assert row(out) == [(255, 255, 255), (0, 255, 0)]


def test_to_rgb_palette_without_transparency() -> None:
    image = Image.new("P", (1, 1))
    image.putpalette([12, 34, 56])
    assert row(to_rgb(image)) == [(12, 34, 56)]


def test_to_rgb_cmyk() -> None:
    image = Image.new("CMYK", (2, 1), (0, 255, 255, 0))
    image.putpixel((1, 0), (0, 0, 0, 255))
    assert row(to_rgb(image)) == [(255, 0, 0), (0, 0, 0)]


def test_to_rgb_16_bit_is_scaled_not_clipped() -> None:
    image = Image.new("I;16", (256, 1))
    for x in range(256):
        image.putpixel((x, 0), x * 257)  # 0 .. 65535
    out = to_rgb(image)
    assert out.mode == "RGB"
    assert row(out) == [(v, v, v) for v in range(256)]


def test_to_rgb_16_bit_keeps_absolute_levels() -> None:
    # Scaled by bit depth, not stretched to the image's own min..max.
    image = Image.new("I;16", (3, 1))
    for x, value in enumerate((0, 128 * 257, 200 * 257)):
        image.putpixel((x, 0), value)
    assert row(to_rgb(image)) == [(0, 0, 0), (128, 128, 128), (200, 200, 200)]
    assert row(to_rgb(Image.new("I;16", (2, 1), 65535))) == [(255, 255, 255)] * 2


def float_image(*values: float) -> Image.Image:
    image = Image.new("F", (len(values), 1))
    for x, value in enumerate(values):
        image.putpixel((x, 0), value)
    return image


def test_to_rgb_float_image_in_unit_range_is_scaled() -> None:
    assert row(to_rgb(float_image(0.0, 0.2, 1.0))) == [(0, 0, 0), (51, 51, 51), (255, 255, 255)]


def test_to_rgb_float_image_above_one_is_read_as_8_bit_levels() -> None:
    assert row(to_rgb(float_image(0.0, 100.0, 300.0))) == [(0, 0, 0), (100, 100, 100), (255, 255, 255)]


def test_load_input_image_reads_rgb(tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    Image.new("RGBA", (6, 4), (0, 0, 0, 0)).save(path)
    image = load_input_image(path)
    assert (image.mode, image.size) == ("RGB", (6, 4))
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_load_input_image_keeps_the_alpha_only_when_asked_and_only_if_there_is_one(tmp_path: Path) -> None:
    """img2img's mask_from_alpha needs the transparency; an opaque or palette-free image stays RGB."""
    holed, opaque = tmp_path / "holed.png", tmp_path / "opaque.png"
    Image.new("RGBA", (6, 4), (10, 20, 30, 0)).save(holed)
    Image.new("L", (6, 4), 7).save(opaque)
    kept = load_input_image(holed, keep_alpha=True)
    assert kept.mode == "RGBA" and kept.getpixel((0, 0)) == (10, 20, 30, 0)
    assert load_input_image(opaque, keep_alpha=True).mode == "RGB"
    assert load_input_image(holed).getpixel((0, 0)) == (255, 255, 255)


def test_load_input_image_truncated_png(tmp_path: Path) -> None:
    data = png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    problem = load_error(path)
    assert problem.field == "input_image_path"
    assert str(path) in problem.message


def test_load_input_image_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image", encoding="utf-8")
    problem = load_error(path)
    assert problem.field == "input_image_path"
    assert problem.message.startswith(f"{str(path)!r} is not a readable image (")
    assert problem.message.endswith("); use a PNG, JPEG or WebP file")


def test_load_input_image_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.png"
    assert load_error(path) == ConfigProblem(
        "input_image_path", f"{str(path)!r}: it does not exist; choose an image file (PNG, JPEG, WebP)"
    )


def test_load_input_image_directory(tmp_path: Path) -> None:
    assert load_error(tmp_path, field="img2img.input") == ConfigProblem(
        "img2img.input",
        f"{str(tmp_path)!r}: it is a folder, not a regular file; choose an image file (PNG, JPEG, WebP)",
    )


def load_error(path: Path, field: str = "input_image_path") -> ConfigProblem:
    with pytest.raises(ConfigError) as info:
        load_input_image(path, field)
    (problem,) = info.value.problems
    return problem


def test_load_input_image_honours_exif_orientation(tmp_path: Path) -> None:
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    ImageDraw.Draw(stored).rectangle((0, 0, 19, 19), fill=(255, 0, 0))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    image = load_input_image(path)
    assert image.size == (20, 40)
    top, bottom = image.getpixel((10, 5)), image.getpixel((10, 34))
    assert top[0] > 200 and top[2] < 60, top  # the stored left half is now on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
