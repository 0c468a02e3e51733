"""The reference the LoRA tests compare with: A1111's weight merge, written out on its own.

``merge_into(layers, tensors, te, unet)`` does what A1111's ``network_apply_weights`` does to each
layer: ``W += multiplier * finalize(updown)`` (float32 here), one network after another. It is
deliberately written without the engine's code (plain matrix products, explicit loops).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def parts_of(tensors: Mapping[str, torch.Tensor], key: str) -> dict[str, torch.Tensor]:
    return {k[len(key) + 1 :]: v.float() for k, v in tensors.items() if k.startswith(key + ".")}


def _scale(parts: Mapping[str, torch.Tensor], rank: int | None) -> float:
    if "scale" in parts:
        return float(parts["scale"])
    if rank is not None and "alpha" in parts:
        return float(parts["alpha"]) / rank
    return 1.0


def _tucker(core: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """out[p, q, k, l] = sum_ij core[i, j, k, l] * a[i, p] * b[j, q]"""
    out = torch.zeros(a.shape[1], b.shape[1], *core.shape[2:])
    for i in range(core.shape[0]):
        for j in range(core.shape[1]):
            out += core[i, j][None, None] * torch.outer(a[i], b[j])[:, :, None, None]
    return out


def a1111_updown(
    parts: Mapping[str, torch.Tensor], weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """updown (scaled, DoRA applied, before the multiplier) and the extra bias of one module."""
    w = weight.float()
    bias = None
    if "lora_up.weight" in parts:
        up, down = parts["lora_up.weight"], parts["lora_down.weight"]
        rank = down.shape[0]
        if "lora_mid.weight" in parts:
            core = parts["lora_mid.weight"]  # [r_up, r_down, k, k]
            delta = _tucker(core.transpose(0, 1), down.reshape(rank, -1), up.reshape(up.shape[0], -1).T)
            delta = delta.transpose(0, 1)  # -> [out, in, k, k]
        else:
            delta = (up.flatten(1) @ down.flatten(1)).reshape(up.shape[0], *down.shape[1:])
    elif "hada_w1_a" in parts:
        rank = parts["hada_w1_b"].shape[0]
        if "hada_t1" in parts:
            first = _tucker(parts["hada_t1"], parts["hada_w1_a"], parts["hada_w1_b"])
            second = _tucker(parts["hada_t2"], parts["hada_w2_a"], parts["hada_w2_b"])
        else:
            first = (parts["hada_w1_a"] @ parts["hada_w1_b"]).reshape(w.shape)
            second = (parts["hada_w2_a"] @ parts["hada_w2_b"]).reshape(w.shape)
        delta = first * second
    elif "lokr_w1" in parts or "lokr_w1_a" in parts:
        w1 = parts["lokr_w1"] if "lokr_w1" in parts else parts["lokr_w1_a"] @ parts["lokr_w1_b"]
        rank = parts["lokr_w1_b"].shape[0] if "lokr_w1_b" in parts else None
        if "lokr_w2" in parts:
            w2 = parts["lokr_w2"]
        else:
            w2, rank = parts["lokr_w2_a"] @ parts["lokr_w2_b"], parts["lokr_w2_b"].shape[0]
        delta = torch.zeros(w.shape)
        rows, cols = w2.shape[0], w2.shape[1]
        for i in range(w1.shape[0]):
            for j in range(w1.shape[1]):
                delta[i * rows : (i + 1) * rows, j * cols : (j + 1) * cols] = w1[i, j] * w2
    elif "on_input" in parts:
        rank = None
        scale = parts["weight"]
        delta = w * (scale[None, :] if bool(parts["on_input"]) else scale[:, None])
    elif "diff" in parts:
        rank, delta, bias = None, parts["diff"].reshape(w.shape), parts.get("diff_b")
    else:
        rank, delta, bias = None, parts["w_norm"].reshape(w.shape), parts.get("b_norm")
    delta = delta * _scale(parts, rank)
    if "dora_scale" in parts:
        merged = w + delta
        column_norms = merged.transpose(0, 1).flatten(1).norm(dim=1)  # one per input column
        shape = [1, w.shape[1], *[1] * (w.dim() - 2)]
        delta = merged * (parts["dora_scale"].reshape(shape) / column_norms.reshape(shape)) - w
    return delta, bias


@torch.no_grad()
def merge_into(
    layers: Mapping[str, tuple[str, Any]], tensors: Mapping[str, torch.Tensor], te: float, unet: float
) -> None:
    """A1111's merge of one network (file ``tensors``) into ``layers`` (kohya key -> (component, layer))."""
    for key, (component, layer) in layers.items():
        parts = parts_of(tensors, key)
        if not parts:
            continue
        multiplier = unet if component == "unet" else te
        delta, bias = a1111_updown(parts, layer.weight)
        if delta.dim() == 4 and layer.weight.shape[1] == 9 and delta.shape[1] == 4:
            delta = torch.nn.functional.pad(delta, (0, 0, 0, 0, 0, 5))
        layer.weight += (multiplier * delta).to(layer.weight.dtype)
        if bias is not None:
            layer.bias += (multiplier * bias).to(layer.bias.dtype)
