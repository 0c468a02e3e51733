"""ComfyUI images: the prompt graph walked back from the saved image's sampler (LoRA chains,
CLIPSetLastLayer, primitive seeds, hires and refiner passes, custom sampling), the workflow
graph when the prompt graph is missing, and graphs that cannot be used."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from metadata_samples import comfy_txt2img, json_png

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.metadata import GenerationSettings, read_generation_settings


def read(
    tmp_path: Path, prompt: Any = None, workflow: Any = None, size: tuple[int, int] = (64, 64)
) -> GenerationSettings:
    chunks = {k: v for k, v in (("prompt", prompt), ("workflow", workflow)) if v is not None}
    return read_generation_settings(json_png(tmp_path / "comfy.png", chunks, size))


def test_default_workflow(tmp_path: Path) -> None:
    s = read(tmp_path, comfy_txt2img())
    c, t = s.config, s.config.txt2img
    assert (s.generator, c.prompt, c.negative_prompt, c.seed) == (
        "ComfyUI",
        "a red fox in the snow",
        "blurry, watermark",
        42,
    )
    assert (t.model, t.sampler, t.scheduler, t.steps, t.cfg_scale, t.width, t.height) == (
        "v1-5-pruned-emaonly",
        "Euler",
        "Normal",
        20,
        8.0,
        512,
        512,
    )
    assert s.notes == ()


def test_lora_chain_clip_skip_and_primitive_seed(tmp_path: Path) -> None:
    g = comfy_txt2img(seed=["10", 0], model=["11", 0], sampler_name="dpmpp_2m", scheduler="karras")
    g["10"] = {"class_type": "PrimitiveNode", "inputs": {"value": 987654321}}
    g["12"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "detail_tweaker.safetensors",
            "strength_model": 0.5,
            "strength_clip": 0.5,
            "model": ["4", 0],
            "clip": ["4", 1],
        },
    }
    g["11"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "styles/ink_wash.safetensors",
            "strength_model": 0.8,
            "strength_clip": 0.6,
            "model": ["12", 0],
            "clip": ["12", 1],
        },
    }
    g["13"] = {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["11", 1]}}
    for encoder in ("6", "7"):
        g[encoder]["inputs"]["clip"] = ["13", 0]
    s = read(tmp_path, g)
    assert s.config.seed == 987654321
    assert (s.config.txt2img.sampler, s.config.txt2img.scheduler, s.config.txt2img.clip_skip) == (
        "DPM++ 2M",
        "Karras",
        2,
    )
    assert s.config.prompt == "a red fox in the snow <lora:ink_wash:0.6:0.8> <lora:detail_tweaker:0.5>"
    assert "LoRAs are kept as <lora:name:weight> tags in the prompt, as A1111 writes them" in s.notes


def test_hires_fix_with_latent_upscale_and_big_seed(tmp_path: Path) -> None:
    g = comfy_txt2img(seed=156680208700286)
    g["10"] = {
        "class_type": "LatentUpscaleBy",
        "inputs": {"upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["3", 0]},
    }
    g["11"] = {
        "class_type": "KSampler",
        "inputs": {
            "seed": 1,
            "steps": 12,
            "cfg": 8.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 0.55,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["10", 0],
        },
    }
    g["8"]["inputs"]["samples"] = ["11", 0]
    t = (s := read(tmp_path, g)).config.txt2img
    assert (
        t.hires_enabled,
        t.hires_upscale_factor,
        t.hires_steps,
        t.hires_denoise,
        t.hires_upscaler_name,
    ) == (
        True,
        1.5,
        12,
        0.55,
        "Latent (nearest-exact)",
    )
    assert s.config.seed == 156680208700286 % 2**32
    assert any("larger than A1111's 32-bit seeds" in n for n in s.notes)


def test_pixel_hires_with_upscale_model_vae_and_postprocess_upscale(tmp_path: Path) -> None:
    g = comfy_txt2img()
    g.update(
        {
            "20": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
            "21": {
                "class_type": "ImageUpscaleWithModel",
                "inputs": {"upscale_model": ["20", 0], "image": ["8", 0]},
            },
            "22": {
                "class_type": "ImageScaleBy",
                "inputs": {"upscale_method": "lanczos", "scale_by": 0.5, "image": ["21", 0]},
            },
            "23": {"class_type": "VAEEncode", "inputs": {"pixels": ["22", 0], "vae": ["4", 2]}},
            "24": {
                "class_type": "KSampler",
                "inputs": {
                    "seed": 42,
                    "steps": 15,
                    "cfg": 8.0,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "denoise": 0.4,
                    "model": ["4", 0],
                    "positive": ["6", 0],
                    "negative": ["7", 0],
                    "latent_image": ["23", 0],
                },
            },
            "25": {
                "class_type": "VAELoader",
                "inputs": {"vae_name": "vae-ft-mse-840000-ema-pruned.safetensors"},
            },
            "26": {"class_type": "VAEDecode", "inputs": {"samples": ["24", 0], "vae": ["25", 0]}},
            "27": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "RealESRGAN_x2plus.pth"}},
            "28": {
                "class_type": "ImageUpscaleWithModel",
                "inputs": {"upscale_model": ["27", 0], "image": ["26", 0]},
            },
        }
    )
    g["9"]["inputs"]["images"] = ["28", 0]
    s = read(tmp_path, g)
    t = s.config.txt2img
    assert (t.hires_enabled, t.hires_upscaler_name, t.hires_upscale_factor, t.hires_denoise) == (
        True,
        "4x-UltraSharp",
        2.0,
        0.4,
    )
    assert t.vae == "vae-ft-mse-840000-ema-pruned"
    assert (s.config.upscale.enabled, s.config.upscale.upscale_model, s.config.upscale.upscale_factor) == (
        True,
        "RealESRGAN_x2plus",
        2.0,
    )


def test_sdxl_base_and_refiner_with_ksampler_advanced(tmp_path: Path) -> None:
    g = comfy_txt2img()
    g["3"] = {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "add_noise": "enable",
            "noise_seed": 77,
            "steps": 25,
            "cfg": 7.0,
            "sampler_name": "dpmpp_2m_sde_gpu",
            "scheduler": "karras",
            "start_at_step": 0,
            "end_at_step": 20,
            "return_with_leftover_noise": "enable",
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    }
    g["4"]["inputs"]["ckpt_name"] = "sd_xl_base_1.0.safetensors"
    g["5"]["inputs"].update(width=1024, height=1024)
    g["30"] = {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"},
    }
    g["31"] = {
        "class_type": "CLIPTextEncodeSDXLRefiner",
        "inputs": {
            "ascore": 6,
            "width": 1024,
            "height": 1024,
            "text": "a red fox in the snow",
            "clip": ["30", 1],
        },
    }
    g["32"] = {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "add_noise": "disable",
            "noise_seed": 77,
            "steps": 25,
            "cfg": 7.0,
            "sampler_name": "dpmpp_2m_sde_gpu",
            "scheduler": "karras",
            "start_at_step": 20,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
            "model": ["30", 0],
            "positive": ["31", 0],
            "negative": ["7", 0],
            "latent_image": ["3", 0],
        },
    }
    g["8"]["inputs"]["samples"] = ["32", 0]
    s = read(tmp_path, g)
    t = s.config.txt2img
    assert (s.config.seed, t.model, t.sampler, t.scheduler, t.steps) == (
        77,
        "sd_xl_base_1.0",
        "DPM++ 2M SDE",
        "Karras",
        25,
    )
    assert (t.refiner_enabled, t.refiner_model_name, t.refiner_switch_at) == (True, "sd_xl_refiner_1.0", 0.8)
    assert not any("stops at step" in n for n in s.notes)


def test_img2img_from_load_image(tmp_path: Path) -> None:
    g = comfy_txt2img(denoise=0.6)
    g["5"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["40", 0], "vae": ["4", 2]}}
    g["40"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}}
    s = read(tmp_path, g)
    assert (s.config.txt2img.enabled, s.config.img2img.enabled, s.config.img2img.denoise) == (
        False,
        True,
        0.6,
    )
    assert (s.config.img2img.steps, s.config.img2img.model) == (20, "v1-5-pruned-emaonly")
    assert "img2img from photo.png in ComfyUI's input folder: choose it as the input image" in s.notes


def test_sampler_custom_advanced_with_flux_guidance(tmp_path: Path) -> None:
    g = comfy_txt2img()
    del g["3"]
    g.update(
        {
            "50": {"class_type": "RandomNoise", "inputs": {"noise_seed": 31337}},
            "51": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
            "52": {"class_type": "BasicGuider", "inputs": {"model": ["4", 0], "conditioning": ["51", 0]}},
            "53": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
            "54": {
                "class_type": "BasicScheduler",
                "inputs": {"scheduler": "simple", "steps": 24, "denoise": 1.0, "model": ["4", 0]},
            },
            "55": {
                "class_type": "SamplerCustomAdvanced",
                "inputs": {
                    "noise": ["50", 0],
                    "guider": ["52", 0],
                    "sampler": ["53", 0],
                    "sigmas": ["54", 0],
                    "latent_image": ["5", 0],
                },
            },
        }
    )
    g["8"]["inputs"]["samples"] = ["55", 0]
    s = read(tmp_path, g)
    t = s.config.txt2img
    assert (s.config.seed, t.sampler, t.scheduler, t.steps, t.cfg_scale) == (
        31337,
        "Euler",
        "Simple",
        24,
        1.0,
    )
    assert s.config.prompt == "a red fox in the snow" and s.config.negative_prompt == ""
    assert "Flux guidance 3.5 has no equivalent here" in s.notes


def test_conditioning_combine_concat_and_controlnet(tmp_path: Path) -> None:
    g = comfy_txt2img(positive=["60", 0], negative=["62", 1])
    g["59"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "aurora", "clip": ["4", 1]}}
    g["61"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "pine trees", "clip": ["4", 1]}}
    g["58"] = {
        "class_type": "ConditioningConcat",
        "inputs": {"conditioning_to": ["59", 0], "conditioning_from": ["61", 0]},
    }
    g["60"] = {
        "class_type": "ConditioningCombine",
        "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["58", 0]},
    }
    g["62"] = {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {
            "positive": ["60", 0],
            "negative": ["7", 0],
            "control_net": ["63", 0],
            "image": ["64", 0],
            "strength": 1.0,
        },
    }
    s = read(tmp_path, g)
    assert s.config.prompt == "a red fox in the snow :0.5 AND aurora BREAK pine trees :0.5"
    assert s.config.negative_prompt == "blurry, watermark"
    assert "ComfyUI node ControlNetApplyAdvanced ignored (no equivalent here)" in s.notes


def test_several_samplers_pick_the_one_feeding_the_first_save_node(tmp_path: Path) -> None:
    g = comfy_txt2img()
    other = copy.deepcopy(g)
    for key, node in other.items():
        node["inputs"] = {
            k: ([str(int(v[0]) + 100), v[1]] if isinstance(v, list) else v) for k, v in node["inputs"].items()
        }
        g[str(int(key) + 100)] = node
    g["103"]["inputs"]["steps"] = 99
    s = read(tmp_path, g)
    assert s.config.txt2img.steps == 20
    assert "ComfyUI samplers not on the way to the saved image are not used: 103 (KSampler)" in s.notes


def test_no_sampler_says_which_generator_and_why(tmp_path: Path) -> None:
    g = {k: v for k, v in comfy_txt2img().items() if v["class_type"] != "KSampler"}
    with pytest.raises(
        ConfigError,
        match=r"^comfy\.png: looks like a ComfyUI image, but its prompt graph has no sampler node$",
    ):
        read(tmp_path, g)


def test_malformed_prompt_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="looks like a ComfyUI image, but its prompt graph is not a ComfyUI graph"
    ):
        read(tmp_path, '{"3": {"class_type": "KSampler", "inputs": {')


def test_cyclic_graph_ends_with_a_result(tmp_path: Path) -> None:
    g = comfy_txt2img(model=["70", 0], latent_image=["71", 0])
    g["70"] = {"class_type": "ModelSamplingDiscrete", "inputs": {"sampling": "eps", "model": ["72", 0]}}
    g["72"] = {"class_type": "FreeU_V2", "inputs": {"b1": 1.3, "model": ["70", 0]}}
    g["71"] = {"class_type": "LatentBatch", "inputs": {"samples": ["71", 0]}}
    g["6"]["inputs"]["clip"] = ["73", 0]
    g["73"] = {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -1, "clip": ["73", 0]}}
    s = read(tmp_path, g, size=(320, 240))
    assert s.config.prompt == "a red fox in the snow"
    assert "ComfyUI node FreeU_V2 ignored (no equivalent here)" in s.notes
    assert s.config.txt2img.model == ""
    assert (s.config.txt2img.width, s.config.txt2img.height) == (320, 240)  # the image's own size


def workflow_of_default(seed_from_primitive: bool) -> dict[str, Any]:
    """ComfyUI's default workflow in its UI (``workflow`` chunk) form."""
    nodes: list[dict[str, Any]] = [
        {
            "id": 3,
            "type": "KSampler",
            "mode": 0,
            "widgets_values": [156, "randomize", 25, 6.5, "dpmpp_2m", "karras", 1],
            "inputs": [
                {"name": "model", "type": "MODEL", "link": 1},
                {"name": "positive", "type": "CONDITIONING", "link": 4},
                {"name": "negative", "type": "CONDITIONING", "link": 6},
                {"name": "latent_image", "type": "LATENT", "link": 2},
            ],
        },
        {
            "id": 4,
            "type": "CheckpointLoaderSimple",
            "mode": 0,
            "widgets_values": ["dreamshaper_8.safetensors"],
            "inputs": [],
        },
        {"id": 5, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [512, 768, 1], "inputs": []},
        {
            "id": 6,
            "type": "CLIPTextEncode",
            "mode": 0,
            "widgets_values": ["a castle"],
            "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
        },
        {
            "id": 7,
            "type": "CLIPTextEncode",
            "mode": 0,
            "widgets_values": ["fog"],
            "inputs": [{"name": "clip", "type": "CLIP", "link": 5}],
        },
        {
            "id": 8,
            "type": "VAEDecode",
            "mode": 0,
            "inputs": [
                {"name": "samples", "type": "LATENT", "link": 7},
                {"name": "vae", "type": "VAE", "link": 8},
            ],
        },
        {
            "id": 9,
            "type": "SaveImage",
            "mode": 0,
            "widgets_values": ["ComfyUI"],
            "inputs": [{"name": "images", "type": "IMAGE", "link": 9}],
        },
        # A bypassed FreeU between the checkpoint and the sampler, and a Reroute on the CLIP.
        {
            "id": 10,
            "type": "FreeU_V2",
            "mode": 4,
            "widgets_values": [1.3, 1.4, 0.9, 0.2],
            "inputs": [{"name": "model", "type": "MODEL", "link": 10}],
        },
        {"id": 11, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 11}]},
    ]
    links = [
        [1, 10, 0, 3, 0, "MODEL"],
        [10, 4, 0, 10, 0, "MODEL"],
        [2, 5, 0, 3, 3, "LATENT"],
        [3, 11, 0, 6, 0, "CLIP"],
        [11, 4, 1, 11, 0, "CLIP"],
        [4, 6, 0, 3, 1, "CONDITIONING"],
        [5, 4, 1, 7, 0, "CLIP"],
        [6, 7, 0, 3, 2, "CONDITIONING"],
        [7, 3, 0, 8, 0, "LATENT"],
        [8, 4, 2, 8, 1, "VAE"],
        [9, 8, 0, 9, 0, "IMAGE"],
    ]
    if seed_from_primitive:
        nodes.append(
            {"id": 12, "type": "PrimitiveNode", "mode": 0, "widgets_values": [4242, "fixed"], "inputs": []}
        )
        nodes[0]["inputs"].append({"name": "seed", "type": "INT", "link": 12, "widget": {"name": "seed"}})
        links.append([12, 12, 0, 3, 4, "INT"])
    return {"last_node_id": 12, "nodes": nodes, "links": links, "version": 0.4}


@pytest.mark.parametrize("seed_from_primitive", [False, True])
def test_workflow_graph_when_there_is_no_prompt_graph(tmp_path: Path, seed_from_primitive: bool) -> None:
    s = read(tmp_path, workflow=workflow_of_default(seed_from_primitive))
    t = s.config.txt2img
    assert (s.config.prompt, s.config.negative_prompt, s.config.seed) == (
        "a castle",
        "fog",
        4242 if seed_from_primitive else 156,
    )
    assert (t.model, t.steps, t.cfg_scale, t.sampler, t.scheduler, t.width, t.height) == (
        "dreamshaper_8",
        25,
        6.5,
        "DPM++ 2M",
        "Karras",
        512,
        768,
    )
    assert not any("FreeU" in n for n in s.notes)  # bypassed, as ComfyUI would run it
    assert any(n.startswith("read from the ComfyUI workflow") for n in s.notes)


def test_prompt_graph_wins_over_workflow(tmp_path: Path) -> None:
    s = read(tmp_path, comfy_txt2img(steps=33), workflow_of_default(False))
    assert s.config.txt2img.steps == 33


def test_unknown_sampler_name_is_noted(tmp_path: Path) -> None:
    s = read(tmp_path, comfy_txt2img(sampler_name="ipndm", scheduler="linear_quadratic"))
    assert s.config.txt2img.sampler == "DPM++ 2M"
    assert "ComfyUI sampler 'ipndm' has no A1111 equivalent; the default sampler is used" in s.notes
    assert "ComfyUI scheduler 'linear_quadratic' has no A1111 equivalent; Automatic is used" in s.notes


def test_out_of_range_values_are_dropped_with_a_note(tmp_path: Path) -> None:
    s = read(tmp_path, comfy_txt2img(steps=400, cfg=45.0))
    assert (s.config.txt2img.steps, s.config.txt2img.cfg_scale) == (30, 7.0)
    assert "Steps: must be at most 150, got 400; the default is used instead" in s.notes
    assert any(n.startswith("CFG scale: must be at most 30") for n in s.notes)


def test_workflow_json_text_is_accepted_as_a_string(tmp_path: Path) -> None:
    s = read(tmp_path, json.dumps(comfy_txt2img()))
    assert s.config.txt2img.steps == 20


def test_info_prints_a_comfyui_images_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stablenew_qt.cli import main

    path = json_png(tmp_path / "comfy.png", {"prompt": comfy_txt2img()})
    assert main(["info", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"] is None and out["generator"] == "ComfyUI"
    assert out["settings"] == read_generation_settings(path).config.model_dump(mode="json")
