"""Infotext both ways for A1111's seed, RNG, emphasis, sampler-parameter, hires-override and
noise-multiplier fields: the keys A1111 1.10 writes, where, and only when they are not the default.

Each rule is A1111 1.10's (``modules/processing.py`` ``create_infotext`` and
``StableDiffusionProcessingTxt2Img.init``, ``modules/sd_samplers_common.py``,
``modules/sd_samplers_kdiffusion.py``, ``modules/sd_samplers_timesteps.py``,
``modules/sd_hijack_clip.py``); see docs/run-config.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import StageInfo
from stablenew_qt.core.infotext import build_infotext, infotext_to_config, parse_infotext
from stablenew_qt.core.metadata import read_generation_settings
from stablenew_qt.core.samplers import SAMPLERS
from stablenew_qt.core.sequencer import StageName

VERSION = "0.1.0"
SD15 = StageInfo(model_name="v1-5-pruned-emaonly", model_hash="6ce0161689")
BASE = (
    "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1234, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
)
TAIL = f"Version: stablenew-qt {VERSION}"
NEW_KEYS = (
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "ENSD",
    "RNG",
    "Emphasis",
    "Eta",
    "Eta DDIM",
    "Sigma churn",
    "Sigma tmin",
    "Sigma tmax",
    "Sigma noise",
    "SGM noise multiplier",
    "Discard penultimate sigma",
    "Hires sampler",
    "Hires schedule type",
    "Hires prompt",
    "Hires negative prompt",
    "Noise multiplier",
)


def make(**fields: Any) -> RunConfig:
    data: dict[str, Any] = {
        "prompt": "a (red:1.2) lighthouse",
        "seed": 1234,
        "txt2img": {
            "model": "v1-5-pruned-emaonly",
            "sampler": "Euler a",
            "scheduler": "Automatic",
            "steps": 20,
            "width": 512,
            "height": 512,
        },
    }
    for key, value in fields.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return RunConfig.from_dict(data)


def build(config: RunConfig, **kwargs: Any) -> str:
    return build_infotext(
        config, seed=config.seed, stage_infos={StageName.TXT2IMG: SD15}, version=VERSION, **kwargs
    )


def params(config: RunConfig, **kwargs: Any) -> dict[str, str]:
    return parse_infotext(build(config, **kwargs)).params


def line(config: RunConfig) -> str:
    return build(config).rsplit("\n", 1)[-1]


# -- out: defaults omitted ---------------------------------------------------------------------


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_defaults_write_none_of_the_keys(sampler: str) -> None:
    config = make(
        txt2img={"sampler": sampler, "hires_enabled": True},
        img2img={"enabled": True},
        eta_noise_seed_delta=0,
    )
    assert not set(NEW_KEYS) & set(params(config))


# -- out: seed keys in create_infotext's fixed slots ---------------------------------------------


def test_variation_seed_and_seed_resize_sit_between_vae_and_denoising() -> None:
    config = make(subseed=42, subseed_strength=0.25, seed_resize_from_w=512, seed_resize_from_h=640)
    assert line(config) == (
        f"{BASE}, Variation seed: 42, Variation seed strength: 0.25, Seed resize from: 512x640, {TAIL}"
    )


def test_variation_seed_needs_a_strength_and_seed_resize_needs_both_sides() -> None:
    assert "Variation seed" not in params(make(subseed=42, subseed_strength=0.0))
    assert "Seed resize from" not in params(make(seed_resize_from_w=512))
    assert "Seed resize from" not in params(make(seed_resize_from_h=512))


def test_variation_seed_is_the_images_own() -> None:
    config = make(subseed=42, subseed_strength=0.5)
    assert params(config, subseed=45)["Variation seed"] == "45"


def test_ensd_and_rng_follow_clip_skip_in_that_order() -> None:
    config = make(txt2img={"clip_skip": 2}, eta_noise_seed_delta=31337, rng_source="CPU")
    assert line(config) == f"{BASE}, Clip skip: 2, ENSD: 31337, RNG: CPU, {TAIL}"


@pytest.mark.parametrize(
    ("sampler", "eta", "written"),
    [
        ("Euler a", None, True),  # an ancestral sampler at its default eta 1
        ("DPM2 a", 0.5, True),
        ("DPM fast", None, True),
        ("DPM adaptive", None, True),
        ("DPM++ 2S a", None, True),
        ("Euler a", 0.0, False),  # eta 0 draws no extra noise, so the delta is unused
        ("DPM++ 2M", None, False),  # not a sampler that seeds extra noise with it
        ("DPM++ SDE", None, False),  # Brownian-tree noise, seeded by the seed
        ("DDIM", 0.5, False),
    ],
)
def test_ensd_only_where_the_sampler_uses_it(sampler: str, eta: float | None, written: bool) -> None:
    config = make(txt2img={"sampler": sampler}, eta_noise_seed_delta=31337, sampler_settings={"eta": eta})
    assert ("ENSD" in params(config)) is written


@pytest.mark.parametrize(("source", "written"), [("GPU", None), ("CPU", "CPU"), ("NV", "NV")])
def test_rng_only_when_not_gpu(source: str, written: str | None) -> None:
    assert params(make(rng_source=source)).get("RNG") == written


# -- out: emphasis -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["No norm", "Ignore", "None"])
def test_emphasis_when_not_original_and_a_prompt_has_brackets(mode: str) -> None:
    assert params(make(emphasis=mode))["Emphasis"] == mode
    assert "Emphasis" not in params(make(emphasis=mode, prompt="a plain lighthouse"))
    assert params(make(emphasis=mode, prompt="plain", negative_prompt="[blurry]"))["Emphasis"] == mode
    assert "Emphasis" not in params(make(emphasis="Original"))


# -- out: sampler parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampler", "eta", "key"),
    [
        ("Euler a", 0.5, "Eta"),
        ("DPM++ 2M SDE", 0.0, "Eta"),
        ("DPM++ 3M SDE", 0.7, "Eta"),
        ("DDIM", 0.3, "Eta DDIM"),
        ("DDIM CFG++", 1.0, "Eta DDIM"),
        ("Euler a", 1.0, None),  # the k-diffusion default
        ("DDIM", 0.0, None),  # DDIM's default
        ("Euler", 0.5, None),  # Euler takes no eta
        ("PLMS", 0.5, None),
        ("UniPC", 0.5, None),
    ],
)
def test_eta_key_by_sampler_family(sampler: str, eta: float, key: str | None) -> None:
    written = {
        k: v for k, v in params(make(txt2img={"sampler": sampler}, sampler_settings={"eta": eta})).items()
    }
    assert [k for k in written if k.startswith("Eta")] == ([key] if key else [])
    if key:
        assert float(written[key]) == eta


def test_churn_parameters_only_for_samplers_that_take_them() -> None:
    churn = {"s_churn": 0.5, "s_tmin": 0.1, "s_tmax": 10.0, "s_noise": 0.9}
    assert line(make(txt2img={"sampler": "Euler"}, sampler_settings=churn)).startswith(
        BASE.replace("Euler a", "Euler")
        + ", Sigma churn: 0.5, Sigma tmin: 0.1, Sigma tmax: 10, Sigma noise: 0.9"
    )
    ancestral = params(make(txt2img={"sampler": "Euler a"}, sampler_settings=churn))
    assert [k for k in ancestral if k.startswith("Sigma")] == ["Sigma noise"]
    assert not [
        k for k in params(make(txt2img={"sampler": "DPM++ 2M"}, sampler_settings=churn)) if "Sigma" in k
    ]


def test_sigma_tmax_zero_is_infinity_and_not_written() -> None:
    written = params(make(txt2img={"sampler": "Heun"}, sampler_settings={"s_tmax": 0.0, "s_churn": 1.0}))
    assert "Sigma tmax" not in written
    assert written["Sigma churn"] == "1"


def test_sgm_noise_multiplier_only_scales_k_diffusion_txt2img() -> None:
    on = {"sgm_noise_multiplier": True}
    assert params(make(sampler_settings=on))["SGM noise multiplier"] == "True"
    assert "SGM noise multiplier" not in params(make(txt2img={"sampler": "DDIM"}, sampler_settings=on))
    img2img_only = make(
        txt2img={"enabled": False}, img2img={"enabled": True}, input_image_path="in.png", sampler_settings=on
    )
    assert "SGM noise multiplier" not in params(img2img_only)


@pytest.mark.parametrize(
    ("sampler", "written"), [("Euler", True), ("DDIM", True), ("DPM2", False), ("DPM++ 3M SDE", False)]
)
def test_discard_penultimate_sigma_unless_the_sampler_does_it_anyway(sampler: str, written: bool) -> None:
    config = make(txt2img={"sampler": sampler}, sampler_settings={"always_discard_next_to_last_sigma": True})
    assert ("Discard penultimate sigma" in params(config)) is written


def test_sampler_parameters_come_in_a1111s_order() -> None:
    config = make(
        sampler_settings={
            "eta": 0.5,
            "s_noise": 0.95,
            "sgm_noise_multiplier": True,
            "always_discard_next_to_last_sigma": True,
        }
    )
    assert line(config) == (
        f"{BASE}, Discard penultimate sigma: True, SGM noise multiplier: True, Eta: 0.5, "
        f"Sigma noise: 0.95, {TAIL}"
    )


# -- out: hires overrides and noise multiplier -------------------------------------------------


def test_hires_overrides_come_before_the_hires_size_keys() -> None:
    config = make(
        txt2img={
            "hires_enabled": True,
            "hires_sampler": "DPM++ 2M",
            "hires_scheduler": "Exponential",
            "hires_prompt": "a lighthouse, detailed",
            "hires_negative_prompt": "blurry: very",
        }
    )
    assert line(config) == (
        f"{BASE}, Denoising strength: 0.5, Hires sampler: DPM++ 2M, "
        'Hires prompt: "a lighthouse, detailed", Hires negative prompt: "blurry: very", '
        f"Hires schedule type: Exponential, Hires upscale: 2, Hires upscaler: Latent, {TAIL}"
    )


def test_hires_overrides_equal_to_the_first_pass_are_not_written() -> None:
    config = make(
        prompt="same",
        negative_prompt="neg",
        txt2img={
            "hires_enabled": True,
            "hires_sampler": "Euler a",
            "hires_scheduler": "Automatic",
            "hires_prompt": "same",
            "hires_negative_prompt": "neg",
        },
    )
    assert not {
        k for k in params(config) if k.startswith("Hires") and k not in ("Hires upscale", "Hires upscaler")
    }


def test_hires_schedule_type_is_the_resolved_label_when_it_differs() -> None:
    # Automatic resolves per sampler: DPM++ 2M's is Karras, Euler a's the model's own (not written).
    written = params(make(txt2img={"hires_enabled": True, "hires_sampler": "DPM++ 2M"}))
    assert written["Hires schedule type"] == "Karras"
    first_karras = make(txt2img={"sampler": "DPM++ 2M", "hires_enabled": True, "hires_sampler": "DPM2"})
    assert "Hires schedule type" not in params(first_karras)


def test_no_hires_schedule_type_for_a_timestep_hires_sampler() -> None:
    config = make(txt2img={"hires_enabled": True, "hires_sampler": "DDIM", "hires_scheduler": "Karras"})
    assert "Hires schedule type" not in params(config)
    assert params(config)["Hires sampler"] == "DDIM"


def test_hires_overrides_need_hires() -> None:
    assert "Hires sampler" not in params(make(txt2img={"hires_sampler": "DPM++ 2M"}))


def test_noise_multiplier_when_img2img_runs_and_not_1() -> None:
    assert params(make(img2img={"enabled": True, "noise_multiplier": 1.1}))["Noise multiplier"] == "1.1"
    assert "Noise multiplier" not in params(make(img2img={"enabled": False, "noise_multiplier": 1.1}))
    assert "Noise multiplier" not in params(make(img2img={"enabled": True, "noise_multiplier": 1.0}))


# -- in ----------------------------------------------------------------------------------------

#: Written by the rules above as A1111 1.10 writes a hires txt2img image with these settings.
A1111_TEXT = (
    "masterpiece, (lighthouse:1.2)\nNegative prompt: lowres\n"
    "Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 3, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Variation seed: 42, Variation seed strength: 0.3, "
    "Seed resize from: 512x512, Denoising strength: 0.5, ENSD: 31337, RNG: NV, Hires sampler: DPM++ 2M, "
    'Hires prompt: "masterpiece, detailed", Hires negative prompt: "lowres, jpeg", '
    "Hires schedule type: Karras, Hires upscale: 2, Hires upscaler: Latent, Emphasis: No norm, "
    "Discard penultimate sigma: True, SGM noise multiplier: True, Eta: 0.67, Sigma churn: 0.5, "
    "Sigma tmin: 0.1, Sigma tmax: 20, Sigma noise: 0.9, Version: v1.10.1"
)


def test_every_key_reads_back_to_its_field() -> None:
    config = infotext_to_config(A1111_TEXT)
    assert (config.subseed, config.subseed_strength) == (42, 0.3)
    assert (config.seed_resize_from_w, config.seed_resize_from_h) == (512, 512)
    assert (config.eta_noise_seed_delta, config.rng_source, config.emphasis) == (31337, "NV", "No norm")
    assert config.sampler_settings.model_dump() == {
        "eta": 0.67,
        "s_churn": 0.5,
        "s_tmin": 0.1,
        "s_tmax": 20.0,
        "s_noise": 0.9,
        "sgm_noise_multiplier": True,
        "always_discard_next_to_last_sigma": True,
    }
    t2i = config.txt2img
    assert (t2i.hires_sampler, t2i.hires_scheduler) == ("DPM++ 2M", "Karras")
    assert (t2i.hires_prompt, t2i.hires_negative_prompt) == ("masterpiece, detailed", "lowres, jpeg")


def test_eta_ddim_and_noise_multiplier_read_back() -> None:
    text = (
        "x\nSteps: 20, Sampler: DDIM, Schedule type: Automatic, CFG scale: 7, Seed: 1, Size: 512x512, "
        "Denoising strength: 0.75, Noise multiplier: 0.9, Eta DDIM: 0.2, Version: v1.10.1"
    )
    config = infotext_to_config(text)
    assert config.img2img.enabled and config.img2img.noise_multiplier == 0.9
    assert config.sampler_settings.eta == 0.2


@pytest.mark.parametrize("written", ["-1x-1", "0x0", "512x-1", "0x512"])
def test_seed_resize_off_as_a1111_s_api_wrote_it(written: str) -> None:
    # Older A1111 versions wrote the API's default, "Seed resize from: -1x-1", into every image.
    text = (
        f"x\nSteps: 14, Sampler: Euler a, CFG scale: 7.0, Seed: 3, Size: 512x512, Seed resize from: {written}"
    )
    config = infotext_to_config(text)
    assert (config.seed_resize_from_w, config.seed_resize_from_h) == (0, 0)


def test_use_same_sampler_and_scheduler_mean_the_first_pass() -> None:
    text = (
        "x\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.5, "
        "Hires sampler: Use same sampler, Hires schedule type: Use same scheduler, Hires upscale: 2"
    )
    t2i = infotext_to_config(text).txt2img
    assert t2i.hires_enabled and (t2i.hires_sampler, t2i.hires_scheduler) == (None, None)


def test_legacy_hires_sampler_name_is_split() -> None:
    text = "x\nSteps: 20, Sampler: Euler, Seed: 1, Denoising strength: 0.5, Hires sampler: DPM++ 2M Karras"
    t2i = infotext_to_config(text).txt2img
    assert (t2i.hires_sampler, t2i.hires_scheduler) == ("DPM++ 2M", "Karras")


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("RNG: TPU", "RNG: 'TPU' is not one of GPU, CPU, NV"),
        ("Emphasis: Loud", "Emphasis: 'Loud' is not one of Original, No norm, Ignore, None"),
        ("Variation seed strength: lots", "Variation seed strength: 'lots' is not a number"),
        ("Seed resize from: big", "Seed resize from: 'big' is not a size like 512x768"),
        ("SGM noise multiplier: yes", "SGM noise multiplier: 'yes' is not True or False"),
        ("ENSD: 1.5", "ENSD: '1.5' is not a whole number"),
    ],
)
def test_malformed_values_name_their_key(pair: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        infotext_to_config(f"x\nSteps: 20, Sampler: Euler, Seed: 1, {pair}")
    assert message in str(caught.value)


def test_a1111_reader_keeps_the_rest_when_rng_or_emphasis_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    info = PngInfo()
    info.add_text("parameters", "x\nSteps: 20, Sampler: Euler, Seed: 1, RNG: TPU, Emphasis: Loud, ENSD: 5")
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    settings = read_generation_settings(path)
    assert (settings.config.rng_source, settings.config.emphasis) == ("GPU", "Original")
    assert settings.config.eta_noise_seed_delta == 5
    assert settings.notes == (
        "A1111's RNG 'TPU' has no equivalent here; GPU is used",
        "A1111's Emphasis 'Loud' has no equivalent here; Original is used",
    )


def test_round_trip_of_every_new_field() -> None:
    config = make(
        negative_prompt="[blurry]",
        subseed=42,
        subseed_strength=0.3,
        seed_resize_from_w=448,
        seed_resize_from_h=576,
        rng_source="CPU",
        eta_noise_seed_delta=31337,
        emphasis="Ignore",
        sampler_settings={"eta": 0.6, "s_noise": 0.97, "sgm_noise_multiplier": True},
        txt2img={
            "hires_enabled": True,
            "hires_sampler": "Euler",
            "hires_scheduler": "Karras",
            "hires_prompt": "a lighthouse, sharp",
            "hires_negative_prompt": "soft",
        },
        img2img={"enabled": True, "noise_multiplier": 1.2},
    )
    config = config.model_copy(
        update={
            "sampler_settings": config.sampler_settings.model_copy(
                update={"always_discard_next_to_last_sigma": True}
            )
        }
    )
    assert infotext_to_config(build(config)) == config


# -- Hires checkpoint ------------------------------------------------------------------------------


def test_hires_checkpoint_is_written_with_its_hash_first_among_the_overrides() -> None:
    config = make(txt2img={"hires_enabled": True, "hires_checkpoint": "dreamshaper_8.safetensors"})
    info = StageInfo(
        model_name="v1-5-pruned-emaonly",
        model_hash="6ce0161689",
        params={"Hires checkpoint hash": "879db523c3"},
    )
    text = build_infotext(config, seed=1234, stage_infos={StageName.TXT2IMG: info}, version=VERSION)
    assert f"{BASE}, Denoising strength: 0.5, Hires checkpoint: dreamshaper_8 [879db523c3], " in text
    assert "Hires checkpoint hash" not in text
    assert infotext_to_config(text).txt2img.hires_checkpoint == "dreamshaper_8"


def test_hires_checkpoint_same_as_the_model_or_unset_is_not_written() -> None:
    for checkpoint in (None, "v1-5-pruned-emaonly"):
        assert "Hires checkpoint" not in params(
            make(txt2img={"hires_enabled": True, "hires_checkpoint": checkpoint})
        )


def test_use_same_checkpoint_reads_as_none() -> None:
    keys = "Denoising strength: 0.5, Hires checkpoint: Use same checkpoint, Hires upscale: 2"
    text = f"a lighthouse\n{BASE}, {keys}"
    config = infotext_to_config(text)
    assert config.txt2img.hires_enabled and config.txt2img.hires_checkpoint is None
