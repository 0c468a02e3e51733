"""Tiny random LoRA / LyCORIS files and A1111-format embeddings for the demo models.

Keys follow kohya's layout exactly as real files do: ``lora_unet_<path>`` with diffusers paths for
SD 1.x, LDM/SGM paths for SDXL (a hand-written table for the demo SDXL UNet, independent of the
engine's key table), ``lora_te_`` / ``lora_te1_`` / ``lora_te2_`` with the ``text_model.`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

# Demo SD 1.5 layers a LoRA patches: linear (attention, MLP, time embedding), 3x3 and 1x1 convs.
SD15_UNET_LAYERS = (
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0",
    "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj",
    "up_blocks.0.attentions.1.transformer_blocks.0.ff.net.2",
    "down_blocks.1.attentions.0.proj_in",  # 1x1 conv in SD 1.x
    "down_blocks.0.resnets.0.conv1",  # 3x3 conv (LoCon)
    "up_blocks.0.resnets.0.conv_shortcut",  # 1x1 conv
    "mid_block.resnets.1.time_emb_proj",
)
TE_LAYERS = (
    "encoder.layers.0.self_attn.q_proj",
    "encoder.layers.1.mlp.fc1",
    "encoder.layers.0.self_attn.out_proj",
)
TE2_LAYERS = ("text_model.encoder.layers.0.self_attn.v_proj", "text_model.encoder.layers.1.mlp.fc2")

# The demo SDXL UNet (layers_per_block 1) in kohya's SGM spelling, written out by hand.
_IN, _OUT = "down_blocks.1.attentions.0.transformer_blocks.0", "up_blocks.0.attentions.1.transformer_blocks.0"
SDXL_SGM_LAYERS = {
    "input_blocks.3.1.transformer_blocks.0.attn1.to_q": f"{_IN}.attn1.to_q",
    "input_blocks.3.1.transformer_blocks.0.attn2.to_v": f"{_IN}.attn2.to_v",
    "middle_block.1.proj_in": "mid_block.attentions.0.proj_in",  # linear in SDXL
    "output_blocks.1.1.transformer_blocks.0.ff.net.2": f"{_OUT}.ff.net.2",
    "input_blocks.1.0.in_layers.2": "down_blocks.0.resnets.0.conv1",
    "output_blocks.3.0.out_layers.3": "up_blocks.1.resnets.1.conv2",
    "middle_block.2.emb_layers.1": "mid_block.resnets.1.time_emb_proj",
}

Layers = dict[str, tuple[str, Any]]  # kohya module key -> (component, layer)


def kohya_key(prefix: str, path: str) -> str:
    return prefix + path.replace(".", "_")


def te_key(prefix: str, path: str) -> str:
    return kohya_key(prefix, path if path.startswith("text_model.") else "text_model." + path)


def sd15_layers(
    pipe: Any, unet: tuple[str, ...] = SD15_UNET_LAYERS, te: tuple[str, ...] = TE_LAYERS
) -> Layers:
    layers = {kohya_key("lora_unet_", p): ("unet", pipe.unet.get_submodule(p)) for p in unet}
    layers.update({te_key("lora_te_", p): ("text_encoder", pipe.text_encoder.get_submodule(p)) for p in te})
    return layers


def sdxl_layers(pipe: Any) -> Layers:
    layers = {
        kohya_key("lora_unet_", sgm): ("unet", pipe.unet.get_submodule(d))
        for sgm, d in SDXL_SGM_LAYERS.items()
    }
    layers.update(
        {te_key("lora_te1_", p): ("text_encoder", pipe.text_encoder.get_submodule(p)) for p in TE_LAYERS}
    )
    layers.update(
        {te_key("lora_te2_", p): ("text_encoder_2", pipe.text_encoder_2.get_submodule(p)) for p in TE2_LAYERS}
    )
    return layers


def _out_in(layer: Any) -> tuple[int, int, tuple[int, ...]]:
    weight = layer.weight
    return weight.shape[0], weight.shape[1], tuple(weight.shape[2:])


def lora_parts(
    layer: Any, g: torch.Generator, rank: int = 2, alpha: float | None = 1.0
) -> dict[str, torch.Tensor]:
    """kohya LoRA parts: down [r, in(, k, k)], up [out, r(, 1, 1)], alpha."""
    out, inp, kernel = _out_in(layer)
    down = torch.randn(rank, inp, *kernel, generator=g) * 0.3
    up = torch.randn(out, rank, *((1, 1) if kernel else ()), generator=g) * 0.3
    parts = {"lora_down.weight": down, "lora_up.weight": up}
    if alpha is not None:
        parts["alpha"] = torch.tensor(float(alpha))
    return parts


def lora_cp_parts(layer: Any, g: torch.Generator, rank: int = 2) -> dict[str, torch.Tensor]:
    """LoCon with a Tucker core: down [r, in, 1, 1], mid [r, r, k, k], up [out, r, 1, 1]."""
    out, inp, kernel = _out_in(layer)
    return {
        "lora_down.weight": torch.randn(rank, inp, 1, 1, generator=g) * 0.3,
        "lora_mid.weight": torch.randn(rank, rank, *kernel, generator=g) * 0.3,
        "lora_up.weight": torch.randn(out, rank, 1, 1, generator=g) * 0.3,
        "alpha": torch.tensor(1.5),
    }


def dora_parts(layer: Any, g: torch.Generator, rank: int = 2) -> dict[str, torch.Tensor]:
    """LoRA parts plus a DoRA ``dora_scale`` [1, in(, 1, 1)] (A1111's column-norm convention)."""
    parts = lora_parts(layer, g, rank)
    weight = layer.weight.detach().float()
    columns = weight.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1)
    jitter = 1 + 0.2 * torch.rand(weight.shape[1], generator=g)
    parts["dora_scale"] = (columns * jitter).reshape(1, weight.shape[1], *[1] * (weight.dim() - 2))
    return parts


def loha_parts(
    layer: Any, g: torch.Generator, rank: int = 2, tucker: bool = False
) -> dict[str, torch.Tensor]:
    out, inp, kernel = _out_in(layer)
    if tucker:  # conv only: w*a [r, out], w*b [r, in], t [r, r, k, k]
        parts = {
            "hada_w1_a": torch.randn(rank, out, generator=g) * 0.3,
            "hada_w1_b": torch.randn(rank, inp, generator=g) * 0.3,
            "hada_w2_a": torch.randn(rank, out, generator=g) * 0.3,
            "hada_w2_b": torch.randn(rank, inp, generator=g) * 0.3,
            "hada_t1": torch.randn(rank, rank, *kernel, generator=g) * 0.3,
            "hada_t2": torch.randn(rank, rank, *kernel, generator=g) * 0.3,
        }
    else:
        flat = inp * (kernel[0] * kernel[1] if kernel else 1)
        parts = {
            "hada_w1_a": torch.randn(out, rank, generator=g) * 0.3,
            "hada_w1_b": torch.randn(rank, flat, generator=g) * 0.3,
            "hada_w2_a": torch.randn(out, rank, generator=g) * 0.3,
            "hada_w2_b": torch.randn(rank, flat, generator=g) * 0.3,
        }
    parts["alpha"] = torch.tensor(1.0)
    return parts


def lokr_parts(layer: Any, g: torch.Generator, rank: int = 2) -> dict[str, torch.Tensor]:
    """LoKr with a whole w1 [2, 2] and a low-rank w2 = w2_a @ w2_b (conv: w2 4-D)."""
    out, inp, kernel = _out_in(layer)
    parts = {"lokr_w1": torch.randn(2, 2, generator=g) * 0.5, "alpha": torch.tensor(1.0)}
    if kernel:
        parts["lokr_w2"] = torch.randn(out // 2, inp // 2, *kernel, generator=g) * 0.3
    else:
        parts["lokr_w2_a"] = torch.randn(out // 2, rank, generator=g) * 0.3
        parts["lokr_w2_b"] = torch.randn(rank, inp // 2, generator=g) * 0.3
    return parts


def ia3_parts(layer: Any, g: torch.Generator, on_input: bool = False) -> dict[str, torch.Tensor]:
    out, inp, _kernel = _out_in(layer)
    size = inp if on_input else out
    return {"weight": torch.randn(size, generator=g) * 0.3, "on_input": torch.tensor(on_input)}


def full_parts(layer: Any, g: torch.Generator) -> dict[str, torch.Tensor]:
    parts = {"diff": torch.randn(*layer.weight.shape, generator=g) * 0.05}
    if getattr(layer, "bias", None) is not None:
        parts["diff_b"] = torch.randn(*layer.bias.shape, generator=g) * 0.05
    return parts


def norm_parts(layer: Any, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "w_norm": torch.randn(*layer.weight.shape, generator=g) * 0.1,
        "b_norm": torch.randn(*layer.bias.shape, generator=g) * 0.1,
    }


PartsMaker = Callable[[Any, torch.Generator], dict[str, torch.Tensor]]


def build(layers: Layers, make: PartsMaker = lora_parts, seed: int = 0) -> dict[str, torch.Tensor]:
    """A file's tensors: ``make`` applied to each layer under its kohya key."""
    g = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for key, (_component, layer) in layers.items():
        for part, tensor in make(layer, g).items():
            tensors[f"{key}.{part}"] = tensor.contiguous()
    return tensors


def write(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(tensors), str(path), metadata=dict(metadata or {}))
    return path


def write_pt_embedding(path: Path, vectors: torch.Tensor, stored_name: str = "something-else") -> Path:
    """An A1111-format ``.pt`` embedding (``string_to_param``), storing a different name inside."""
    data = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": vectors},
        "name": stored_name,
        "step": 1000,
        "sd_checkpoint": "abcdef12",
        "sd_checkpoint_name": "model",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path
