"""Test helper: write a diffusers SD 1.x pipeline as a single-file checkpoint in the original layout.

Real ``.safetensors`` checkpoints (A1111, Civitai) use the LDM key names: ``model.diffusion_model.*``
for the UNet, ``first_stage_model.*`` for the VAE, ``cond_stage_model.transformer.text_model.*`` for
the CLIP text encoder. diffusers' single-file loader only converts *from* that layout, so a test
that wants a checkpoint must write it. The mapping below inverts ``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint`` and ``convert_ldm_clip_checkpoint`` in
``diffusers/loaders/single_file_utils.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer.text_model."

_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_to_ldm(state: Mapping[str, Any], layers_per_block: int) -> dict[str, Any]:
    """UNet2DConditionModel state dict -> LDM ``UNetModel`` keys (without the ``model.`` prefix)."""
    up_with_attention = {
        int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions", k))
    }
    return {_unet_key(key, layers_per_block, up_with_attention): value for key, value in state.items()}


def _unet_key(key: str, per_block: int, up_with_attention: set[int]) -> str:
    for diffusers_name, ldm_name in _UNET_FIXED.items():
        if key.startswith(diffusers_name + "."):
            return ldm_name + key[len(diffusers_name) :]
    step = per_block + 1
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = 1 + int(m[1]) * step + int(m[3])
        return _block(f"input_blocks.{index}", m[2], m[4])
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * step + per_block}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = 1 if m[1] == "attentions" else 2 * int(m[2])
        return _block(f"middle_block.{index}", m[1], m[3])
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        return _block(f"output_blocks.{int(m[1]) * step + int(m[3])}", m[2], m[4])
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(m[1])
        slot = 2 if block in up_with_attention else 1
        return f"output_blocks.{block * step + per_block}.{slot}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key!r}")


def _block(prefix: str, kind: str, rest: str) -> str:
    if kind == "attentions":
        # Midblock attention sits at index 1 in LDM; down/up attentions at slot 1 after the resnet.
        return f"{prefix}.{rest}" if prefix.startswith("middle_block") else f"{prefix}.1.{rest}"
    head, _, tail = rest.partition(".")
    renamed = f"{_UNET_RESNET.get(head, head)}.{tail}"
    return f"{prefix}.{renamed}" if prefix.startswith("middle_block") else f"{prefix}.0.{renamed}"


def vae_to_ldm(state: Mapping[str, Any], num_blocks: int) -> dict[str, Any]:
    """AutoencoderKL state dict -> LDM ``AutoencoderKL`` keys (without the ``first_stage_model.``)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        ldm_key = _vae_key(key, num_blocks)
        if ".mid.attn_1." in ldm_key and ldm_key.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]  # the original stores these as 1x1 convolutions
        out[ldm_key] = value
    return out


def _vae_key(key: str, num_blocks: int) -> str:
    key = key.replace("conv_norm_out.", "norm_out.")
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_vae_resnet(m[3])}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
        rest = m[2]
        for diffusers_name, ldm_name in _VAE_ATTENTION.items():
            if rest.startswith(diffusers_name + "."):
                rest = ldm_name + rest[len(diffusers_name) :]
                break
        return f"{m[1]}.mid.attn_1.{rest}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{_vae_resnet(m[3])}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"decoder.up.{num_blocks - 1 - int(m[1])}.block.{m[2]}.{_vae_resnet(m[3])}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{num_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
    return key  # conv_in, conv_out, norm_out, quant_conv, post_quant_conv keep their names


def _vae_resnet(rest: str) -> str:
    return rest.replace("conv_shortcut.", "nin_shortcut.")


def clip_to_ldm(state: Mapping[str, Any]) -> dict[str, Any]:
    """CLIPTextModel state dict -> ``cond_stage_model.transformer.text_model.*`` keys.

    transformers 5 flattened CLIPTextModel, so its keys lack the ``text_model.`` level that real
    files (and older transformers) have; both forms are accepted.
    """
    return {CLIP_PREFIX + key.removeprefix("text_model."): value for key, value in state.items()}


def sd15_checkpoint(pipe: Any) -> dict[str, Any]:
    """All tensors of an SD 1.x pipeline (UNet, VAE, CLIP) under their original checkpoint names.

    Adds the ``position_ids`` buffer and the DDPM schedule buffers that real files carry, so the
    loader is tested against the same extra keys it meets in the wild.
    """
    import torch

    unet = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config.layers_per_block)
    vae = vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels))
    clip = clip_to_ldm(pipe.text_encoder.state_dict())
    positions = pipe.text_encoder.config.max_position_embeddings
    checkpoint: dict[str, Any] = {
        **{UNET_PREFIX + k: v for k, v in unet.items()},
        **{VAE_PREFIX + k: v for k, v in vae.items()},
        **clip,
        CLIP_PREFIX + "embeddings.position_ids": torch.arange(positions)[None],
        "alphas_cumprod": pipe.scheduler.alphas_cumprod.clone(),
        "betas": pipe.scheduler.betas.clone(),
    }
    return {key: value.detach().contiguous().clone() for key, value in checkpoint.items()}


def write_sd15_checkpoint(pipe: Any, path: Path) -> Path:
    """Save ``sd15_checkpoint(pipe)`` as a ``.safetensors`` file at ``path`` and return the path."""
    from safetensors.torch import save_file

    save_file(sd15_checkpoint(pipe), str(path))
    return path
