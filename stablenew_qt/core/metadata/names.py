"""Other generators' sampler, schedule and model names, translated to A1111's.

ComfyUI, Fooocus and SwarmUI share ComfyUI's sampler and scheduler names; InvokeAI and NovelAI
have their own. A name that maps to ``None`` has no A1111 equivalent: the reader keeps the
default and says so in a note.
"""

from __future__ import annotations

import re

#: ComfyUI ``sampler_name`` (also Fooocus and SwarmUI) -> A1111 sampler. ComfyUI's ``ddim`` is
#: Euler on DDIM's timesteps, which is what A1111's DDIM computes too; ``_gpu`` variants differ only
#: in where the Brownian noise is drawn.
COMFY_SAMPLERS: dict[str, str | None] = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun",
    "dpmpp_2m_sde_heun_gpu": "DPM++ 2M SDE Heun",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lcm": "LCM",
    "restart": "Restart",
}

#: ComfyUI ``scheduler`` (also Fooocus and SwarmUI) -> A1111 schedule type.
COMFY_SCHEDULERS: dict[str, str | None] = {
    "normal": "Normal",
    "karras": "Karras",
    "exponential": "Exponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
    "ddim_uniform": "DDIM",
    "beta": "Beta",
    "kl_optimal": "KL Optimal",
    "align_your_steps": "Align Your Steps",
}

#: NovelAI ``sampler`` -> A1111 sampler (``ddim_v3`` is NovelAI's DDIM for its v3 models).
NOVELAI_SAMPLERS: dict[str, str | None] = {
    "k_euler": "Euler",
    "k_euler_ancestral": "Euler a",
    "k_dpmpp_2s_ancestral": "DPM++ 2S a",
    "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_sde": "DPM++ SDE",
    "k_dpmpp_2m_sde": "DPM++ 2M SDE",
    "k_dpm_2": "DPM2",
    "k_dpm_2_ancestral": "DPM2 a",
    "k_lms": "LMS",
    "k_heun": "Heun",
    "k_dpm_fast": "DPM fast",
    "k_dpm_adaptive": "DPM adaptive",
    "ddim": "DDIM",
    "ddim_v3": "DDIM",
    "plms": "PLMS",
}

#: NovelAI ``noise_schedule`` -> A1111 schedule type ("native" is the sampler's own).
NOVELAI_SCHEDULES: dict[str, str | None] = {
    "native": "Automatic",
    "karras": "Karras",
    "exponential": "Exponential",
    "polyexponential": "Polyexponential",
}

#: InvokeAI 3+ ``scheduler`` without its ``_k`` (Karras) suffix -> A1111 sampler. InvokeAI's
#: ``dpmpp_2s`` is diffusers' single-step solver, not A1111's ancestral DPM++ 2S a.
INVOKEAI_SAMPLERS: dict[str, str | None] = {
    "ddim": "DDIM",
    "pndm": "PLMS",
    "lms": "LMS",
    "heun": "Heun",
    "euler": "Euler",
    "euler_a": "Euler a",
    "kdpm_2": "DPM2",
    "kdpm_2_a": "DPM2 a",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_sde": "DPM++ SDE",
    "unipc": "UniPC",
    "lcm": "LCM",
}

#: InvokeAI 1.x/2.x sampler names -> InvokeAI 3 names (InvokeAI's own importer mapping).
INVOKEAI_LEGACY_SAMPLERS: dict[str, str] = {
    "ddim": "ddim",
    "plms": "pndm",
    "k_lms": "lms",
    "k_dpm_2": "kdpm_2",
    "k_dpm_2_a": "kdpm_2_a",
    "dpmpp_2": "dpmpp_2s",
    "k_dpmpp_2": "dpmpp_2m",
    "k_euler": "euler",
    "k_euler_a": "euler_a",
    "k_heun": "heun",
}

#: SD.Next's diffusers sampler labels that differ from A1111's.
SDNEXT_SAMPLERS: dict[str, str] = {"DPM SDE": "DPM++ SDE", "PNDM": "PLMS", "UniPC": "UniPC"}

_CHECKPOINT_SUFFIX = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|sft|gguf|onnx)$", re.IGNORECASE)


def model_stem(name: str) -> str:
    """A model file's A1111 name: no folder, no weights extension (``SDXL/juggernaut.safetensors``
    -> ``juggernaut``)."""
    base = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return _CHECKPOINT_SUFFIX.sub("", base)


def format_weight(weight: float) -> str:
    """A weight as A1111 prompts write it: at most four decimals, no trailing zeros."""
    text = f"{weight:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def lora_tag(name: str, unet: float, text_encoder: float | None = None) -> str:
    """A1111's extra-network tag for a LoRA: ``<lora:name:w>``, or ``<lora:name:te:unet>`` when the
    text-encoder weight differs from the UNet weight (A1111 reads the first number as the text
    encoder's multiplier and the second as the UNet's)."""
    stem = model_stem(name)
    if text_encoder is None or text_encoder == unet:
        return f"<lora:{stem}:{format_weight(unet)}>"
    return f"<lora:{stem}:{format_weight(text_encoder)}:{format_weight(unet)}>"


def with_tags(prompt: str, tags: list[str]) -> str:
    """``prompt`` with extra-network tags appended (A1111 removes them before encoding, so where
    they stand does not change the image)."""
    tags = [tag for tag in tags if tag not in prompt]
    return " ".join([prompt, *tags]) if prompt else " ".join(tags)
