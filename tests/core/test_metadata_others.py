"""Fooocus, InvokeAI (v1 Dream, v2 sd-metadata, v3+ invokeai_metadata), NovelAI and SwarmUI
images read into RunConfigs, with the notes about what had no equivalent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from metadata_samples import json_png, png

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.metadata import GenerationSettings, read_generation_settings
from stablenew_qt.core.metadata.nai_emphasis import novelai_to_a1111


def read(tmp_path: Path, chunks: dict[str, Any], size: tuple[int, int] = (64, 64)) -> GenerationSettings:
    return read_generation_settings(json_png(tmp_path / "image.png", chunks, size))


# -- Fooocus --------------------------------------------------------------------------------------

FOOOCUS: dict[str, Any] = {
    "adm_guidance": "(1.5, 0.8, 0.3)",
    "base_model": "juggernautXL_v8Rundiffusion",
    "base_model_hash": "aeb7e9e689",
    "full_negative_prompt": ["(worst quality, low quality:1.4)", "unrealistic, saturated"],
    "full_prompt": ["a lighthouse, cinematic, dramatic light", "a lighthouse at dusk, highly detailed"],
    "guidance_scale": 4,
    "loras": [["sd_xl_offset_example-lora_1.0", 0.1, "4852686128"], ["ink_style", 0.75, "x"]],
    "lora_combined_1": "sd_xl_offset_example-lora_1.0 : 0.1",
    "metadata_scheme": "fooocus",
    "negative_prompt": "",
    "performance": "Speed",
    "prompt": "a lighthouse",
    "prompt_expansion": "a lighthouse at dusk",
    "refiner_model": "None",
    "refiner_switch": 0.5,
    "resolution": "(1152, 896)",
    "sampler": "dpmpp_2m_sde_gpu",
    "scheduler": "karras",
    "seed": "1234567890123",
    "sharpness": 2,
    "steps": 30,
    "styles": "['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']",
    "vae": "Default (model)",
    "version": "Fooocus v2.5.5",
}


def test_fooocus_json_with_styles_and_loras(tmp_path: Path) -> None:
    s = read(tmp_path, {"parameters": FOOOCUS, "fooocus_scheme": "fooocus"})
    c, t = s.config, s.config.txt2img
    assert s.generator == "Fooocus"
    assert c.prompt == (
        "a lighthouse, cinematic, dramatic light BREAK a lighthouse at dusk, highly detailed "
        "<lora:sd_xl_offset_example-lora_1.0:0.1> <lora:ink_style:0.75>"
    )
    assert c.negative_prompt == "(worst quality, low quality:1.4) BREAK unrealistic, saturated"
    assert (t.model, t.steps, t.cfg_scale, t.sampler, t.scheduler, t.width, t.height) == (
        "juggernautXL_v8Rundiffusion",
        30,
        4.0,
        "DPM++ 2M SDE",
        "Karras",
        1152,
        896,
    )
    assert (c.seed, t.refiner_enabled, t.vae) == (1234567890123 % 2**32, False, None)
    assert any("Fooocus styles ['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']" in n for n in s.notes)
    assert "Fooocus's sharpness (2) has no equivalent here" in s.notes
    assert "Fooocus's adm guidance ((1.5, 0.8, 0.3)) has no equivalent here" in s.notes


def test_fooocus_refiner_and_lora_combined_only(tmp_path: Path) -> None:
    data = {k: v for k, v in FOOOCUS.items() if k not in ("loras", "fooocus_scheme")}
    data.update(
        refiner_model="sd_xl_refiner_1.0.safetensors",
        refiner_switch=0.667,
        lora_combined_2="True : ink : 0.3",
    )
    s = read(tmp_path, {"parameters": data})  # no fooocus_scheme chunk: recognised by its keys
    t = s.config.txt2img
    assert (t.refiner_enabled, t.refiner_model_name, t.refiner_switch_at) == (
        True,
        "sd_xl_refiner_1.0",
        0.667,
    )
    assert s.config.prompt.endswith("<lora:sd_xl_offset_example-lora_1.0:0.1> <lora:ink:0.3>")


def test_fooocus_a1111_scheme_is_a1111_text(tmp_path: Path) -> None:
    text = (
        "a cat\nNegative prompt: dog\nSteps: 30, Sampler: DPM++ 2M SDE Karras, Seed: 5, Size: 1152x896, "
        "CFG scale: 4, Sharpness: 2, Model: juggernautXL, Performance: Speed, Scheduler: karras, "
        'Lora weights: "ink: 0.5, detail: 0.25", Version: Fooocus v2.5.5'
    )
    s = read(tmp_path, {"parameters": text, "fooocus_scheme": "a1111"})
    assert (s.generator, s.config.txt2img.sampler, s.config.txt2img.scheduler) == (
        "Fooocus",
        "DPM++ 2M SDE",
        "Karras",
    )
    assert s.config.prompt == "a cat <lora:ink:0.5> <lora:detail:0.25>"
    assert "'Sharpness: 2' has no equivalent here" in s.notes


def test_unknown_json_parameters_say_so(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"its parameters are JSON that no known generator writes \(it names 'Ruined"
    ):
        read(tmp_path, {"parameters": {"Prompt": "x", "software": "RuinedFooocus"}})


# -- InvokeAI -------------------------------------------------------------------------------------


def test_invokeai_v3_metadata(tmp_path: Path) -> None:
    meta = {
        "generation_mode": "sdxl_txt2img",
        "positive_prompt": "a koi pond",
        "negative_prompt": "blurry",
        "width": 1024,
        "height": 1024,
        "seed": 1357,
        "rand_device": "cpu",
        "cfg_scale": 6.5,
        "steps": 35,
        "scheduler": "dpmpp_2m_k",
        "clip_skip": 1,
        "model": {"model_name": "stable-diffusion-xl-base-1-0", "base_model": "sdxl", "model_type": "main"},
        "loras": [{"lora": {"model_name": "watercolor", "base_model": "sdxl"}, "weight": 0.6}],
        "refiner_model": {"model_name": "sdxl-refiner-1-0", "base_model": "sdxl-refiner"},
        "refiner_start": 0.75,
        "refiner_steps": 20,
        "controlnets": [{"control_model": "canny"}],
    }
    s = read(tmp_path, {"invokeai_metadata": meta, "invokeai_graph": {"nodes": {}}})
    c, t = s.config, s.config.txt2img
    assert s.generator == "InvokeAI"
    assert (c.prompt, c.negative_prompt, c.seed) == ("a koi pond <lora:watercolor:0.6>", "blurry", 1357)
    assert (t.sampler, t.scheduler, t.steps, t.cfg_scale, t.clip_skip, t.model) == (
        "DPM++ 2M",
        "Karras",
        35,
        6.5,
        2,
        "stable-diffusion-xl-base-1-0",
    )
    assert (t.refiner_enabled, t.refiner_model_name, t.refiner_switch_at) == (True, "sdxl-refiner-1-0", 0.75)
    assert "InvokeAI controlnets (1) have no equivalent here" in s.notes
    assert "the refiner's own steps are not used here" in s.notes


def test_invokeai_v5_metadata_with_high_resolution_fix(tmp_path: Path) -> None:
    meta = {
        "generation_mode": "txt2img",
        "positive_prompt": "(a fox)1.2 in a field",
        "negative_prompt": "",
        "width": 1024,
        "height": 768,
        "seed": 8,
        "cfg_scale": 7.5,
        "steps": 30,
        "scheduler": "euler_a",
        "model": {"key": "abc", "hash": "blake3:x", "name": "Dreamshaper 8", "base": "sd-1", "type": "main"},
        "loras": [{"model": {"key": "k", "name": "detail", "base": "sd-1", "type": "lora"}, "weight": 1.0}],
        "hrf_enabled": True,
        "hrf_method": "ESRGAN",
        "hrf_strength": 0.45,
    }
    s = read(tmp_path, {"invokeai_metadata": meta})
    t = s.config.txt2img
    assert (t.sampler, t.scheduler, t.model) == ("Euler a", "Automatic", "Dreamshaper 8")
    # InvokeAI's own rule: the optimal area (512² for SD1.5) at the image's aspect ratio.
    assert (t.width, t.height, t.hires_resize_width, t.hires_resize_height) == (592, 440, 1024, 768)
    # 1024×768 is over twice the first pass's area, so InvokeAI picks its 4x ESRGAN.
    assert (t.hires_enabled, t.hires_denoise, t.hires_upscaler_name, t.hires_steps) == (
        True,
        0.45,
        "RealESRGAN_x4plus",
        0,
    )
    assert any("Compel's syntax" in n for n in s.notes)


def test_invokeai_v2_sd_metadata_with_bracketed_negative(tmp_path: Path) -> None:
    meta = {
        "model": "stable diffusion",
        "model_weights": "stable-diffusion-1.5",
        "app_id": "invoke-ai/InvokeAI",
        "app_version": "2.3.5",
        "image": {
            "prompt": [{"prompt": "a medieval town, sunny [blurry, people]", "weight": 1.0}],
            "steps": 40,
            "cfg_scale": 8.5,
            "threshold": 0,
            "perlin": 0,
            "height": 640,
            "width": 512,
            "seed": 2468,
            "seamless": False,
            "hires_fix": True,
            "type": "txt2img",
            "postprocessing": None,
            "sampler": "k_euler_a",
            "variations": [],
        },
    }
    s = read(tmp_path, {"sd-metadata": meta, "Dream": '"ignored" -s 1'})
    c, t = s.config, s.config.txt2img
    assert (c.prompt, c.negative_prompt, c.seed) == ("a medieval town, sunny", "blurry, people", 2468)
    assert (t.steps, t.cfg_scale, t.width, t.height, t.sampler, t.model) == (
        40,
        8.5,
        512,
        640,
        "Euler a",
        "stable-diffusion-1.5",
    )
    assert "InvokeAI's high-resolution fix has no equivalent here" in s.notes


def test_invokeai_v1_dream_command(tmp_path: Path) -> None:
    dream = '"a cozy cabin in the woods [snow]" -s 50 -S 3141592 -W 512 -H 512 -C 7.5 -A k_lms -G 0.8'
    s = read(tmp_path, {"Dream": dream})
    c, t = s.config, s.config.txt2img
    assert (c.prompt, c.negative_prompt, c.seed) == ("a cozy cabin in the woods", "snow", 3141592)
    assert (t.steps, t.cfg_scale, t.width, t.height, t.sampler) == (50, 7.5, 512, 512, "LMS")
    assert "Dream options with no equivalent here: -G 0.8" in s.notes


def test_invokeai_dream_img2img(tmp_path: Path) -> None:
    s = read(tmp_path, {"Dream": '"a dragon" -s 30 -S 1 -I init.png -f 0.6 -A ddim'})
    assert (s.config.img2img.enabled, s.config.img2img.denoise, s.config.img2img.sampler) == (
        True,
        0.6,
        "DDIM",
    )
    assert "img2img from init.png: choose it as the input image" in s.notes


def test_invokeai_bad_json_names_the_generator(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match="looks like an InvokeAI image, but its 'invokeai_metadata' metadata is not readable JSON",
    ):
        read(tmp_path, {"invokeai_metadata": "{not json"})


# -- NovelAI --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nai", "a1111"),
    [
        ("{red hair}, blue eyes", "(red hair:1.05), blue eyes"),
        ("{{{masterpiece}}}, [[lowres]]", "(masterpiece:1.1576), (lowres:0.907)"),
        ("{a {b} c}", "(a:1.05) (b:1.1025) (c:1.05)"),
        ("smile (happy), {cat", "smile \\(happy\\), (cat:1.05)"),
        ("1.5::rain::, 0.5::fog::", "(rain:1.5), (fog:0.5)"),
        ("plain words", "plain words"),
        ("stray } and ]", "stray } and ]".replace("}", "").replace("]", "")),
    ],
)
def test_novelai_emphasis_becomes_a1111_weights(nai: str, a1111: str) -> None:
    assert novelai_to_a1111(nai)[0] == a1111


NOVELAI_COMMENT = {
    "prompt": "1girl, {{silver hair}}, [blurry background], masterpiece",
    "steps": 28,
    "height": 1216,
    "width": 832,
    "scale": 5.0,
    "uncond_scale": 1.0,
    "cfg_rescale": 0.2,
    "seed": 4180632921,
    "n_samples": 1,
    "noise_schedule": "karras",
    "sampler": "k_euler_ancestral",
    "sm": True,
    "sm_dyn": False,
    "uc": "lowres, {bad anatomy}",
    "request_type": "PromptGenerateRequest",
    "signed_hash": "abc",
}


def test_novelai_v3_png(tmp_path: Path) -> None:
    chunks = {
        "Title": "AI generated image",
        "Description": NOVELAI_COMMENT["prompt"],
        "Software": "NovelAI",
        "Source": "Stable Diffusion XL C1E1DE52",
        "Generation time": "4.2",
        "Comment": NOVELAI_COMMENT,
    }
    s = read(tmp_path, chunks)
    c, t = s.config, s.config.txt2img
    assert s.generator == "NovelAI"
    assert c.prompt == "1girl, (silver hair:1.1025), (blurry background:0.9524), masterpiece"
    assert c.negative_prompt == "lowres, (bad anatomy:1.05)"
    assert (t.sampler, t.scheduler, t.steps, t.cfg_scale, t.width, t.height, c.seed) == (
        "Euler a",
        "Karras",
        28,
        5.0,
        832,
        1216,
        4180632921,
    )
    assert t.clip_skip == 1  # SDXL-based: no clip skip
    assert c.eta_noise_seed_delta == 0
    assert any("rewritten as A1111 weights" in n for n in s.notes)
    assert "NovelAI's SMEA has no equivalent here" in s.notes
    assert "NovelAI's cfg rescale 0.2 has no equivalent here" in s.notes


def test_novelai_v1_sets_clip_skip_and_v4_character_prompts(tmp_path: Path) -> None:
    v1 = read(
        tmp_path,
        {
            "Software": "NovelAI",
            "Source": "Stable Diffusion 81274D13",
            "Comment": {"steps": 28, "scale": 11, "seed": 1, "sampler": "k_euler_ancestral", "uc": "x"},
            "Description": "{cat}",
        },
        size=(512, 768),
    )
    assert (v1.config.prompt, v1.config.txt2img.clip_skip, v1.config.txt2img.width) == ("(cat:1.05)", 2, 512)
    assert v1.config.eta_noise_seed_delta == 31337  # as A1111's own NovelAI reader sets it
    comment = {
        **NOVELAI_COMMENT,
        "v4_prompt": {
            "caption": {
                "base_caption": "two girls, park",
                "char_captions": [{"char_caption": "girl, red dress", "centers": [{"x": 0.3, "y": 0.5}]}],
            }
        },
    }
    v4 = read(
        tmp_path, {"Software": "NovelAI", "Source": "NovelAI Diffusion V4.5 1229B44F", "Comment": comment}
    )
    assert v4.config.prompt == "two girls, park"
    assert "NovelAI character prompts are not placed here: girl, red dress" in v4.notes


def test_novelai_with_broken_comment(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="looks like a NovelAI image, but its Comment chunk is not NovelAI's JSON"
    ):
        read(tmp_path, {"Software": "NovelAI", "Comment": "{oops"})


# -- SwarmUI --------------------------------------------------------------------------------------


def test_swarmui_params(tmp_path: Path) -> None:
    data = {
        "sui_image_params": {
            "prompt": "a photo of a cat",
            "negativeprompt": "ugly",
            "model": "OfficialStableDiffusion/sd_xl_base_1.0",
            "seed": "1",
            "steps": "20",
            "cfgscale": 7.0,
            "aspectratio": "1:1",
            "width": 1024,
            "height": 1024,
            "sampler": "dpmpp_2m",
            "scheduler": "karras",
            "clipstopatlayer": -2,
            "loras": ["pixel-art", "detail"],
            "loraweights": ["0.8", "0.4"],
            "fluxguidancescale": 3.5,
            "swarm_version": "0.9.3.1",
        },
        "sui_extra_data": {"date": "2024-11-13"},
    }
    s = read(tmp_path, {"parameters": data})
    c, t = s.config, s.config.txt2img
    assert (s.generator, c.seed, t.steps, t.cfg_scale, t.model, t.clip_skip) == (
        "SwarmUI",
        1,
        20,
        7.0,
        "sd_xl_base_1.0",
        2,
    )
    assert (t.sampler, t.scheduler) == ("DPM++ 2M", "Karras")
    assert c.prompt == "a photo of a cat <lora:pixel-art:0.8> <lora:detail:0.4>"
    assert "SwarmUI's fluxguidancescale (3.5) has no equivalent here" in s.notes


def test_swarmui_refiner_and_upscale(tmp_path: Path) -> None:
    base = {"prompt": "x", "model": "sd_xl_base_1.0", "steps": 30, "width": 1024, "height": 1024}
    refiner = read(
        tmp_path,
        {
            "parameters": {
                "sui_image_params": {
                    **base,
                    "refinermodel": "sd_xl_refiner_1.0",
                    "refinercontrolpercentage": 0.2,
                    "refinermethod": "StepSwap",
                }
            }
        },
    ).config.txt2img
    assert (refiner.refiner_enabled, refiner.refiner_model_name, refiner.refiner_switch_at) == (
        True,
        "sd_xl_refiner_1.0",
        0.8,
    )
    hires = read(
        tmp_path,
        {
            "parameters": {
                "sui_image_params": {
                    **base,
                    "refinercontrolpercentage": 0.4,
                    "refinerupscale": 2,
                    "refinerupscalemethod": "model-4x-UltraSharp.pth",
                    "refinersteps": 15,
                }
            }
        },
    ).config.txt2img
    assert (
        hires.hires_enabled,
        hires.hires_upscale_factor,
        hires.hires_upscaler_name,
        hires.hires_denoise,
        hires.hires_steps,
    ) == (
        True,
        2.0,
        "4x-UltraSharp",
        0.4,
        15,
    )


def test_swarmui_jpeg_user_comment(tmp_path: Path) -> None:
    from metadata_samples import jpeg_with_comment

    data = json.dumps({"sui_image_params": {"prompt": "ü", "steps": 9}})
    s = read_generation_settings(
        jpeg_with_comment(tmp_path / "s.jpg", b"UNICODE\0" + data.encode("utf-16-be"))
    )
    assert (s.generator, s.config.prompt, s.config.txt2img.steps) == ("SwarmUI", "ü", 9)


def test_png_text_only_hints(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no generation settings in this image"):
        read_generation_settings(png(tmp_path / "x.png", {"Title": "hello"}))
