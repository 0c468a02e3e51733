"""The weight change ("updown") each LoRA/LyCORIS module type makes, by A1111's formulas.

Re-implemented from the behaviour of A1111 1.10's ``extensions-builtin/Lora`` (``network.py``
``finalize_updown``/``calc_scale``/``apply_weight_decompose``, ``network_lora.py``,
``network_hada.py``, ``network_lokr.py``, ``network_ia3.py``, ``network_full.py``,
``network_norm.py``, ``lyco_helpers.py``). For a layer with weight ``W``:

* LoRA: ``up @ down`` (reshaped to ``W``'s shape; a 3x3 ``down`` makes a conv delta), or with a
  Tucker core ``lora_mid``: ``einsum("nmkl,in,mj->ijkl", mid, up, down)``. rank = ``down.shape[0]``.
* LoHa: ``(w1a @ w1b) * (w2a @ w2b)``; with Tucker cores ``t1``/``t2`` each factor is
  ``einsum("ijkl,jr,ip->prkl", t, wb, wa)``. rank = ``w1b.shape[0]``.
* LoKr: ``kron(w1, w2)`` where each factor may be given whole or as ``a @ b`` (``w2`` may have a
  Tucker core ``t2``). rank = the low-rank factor's ``b.shape[0]`` (the w2 one if both).
* IA3: ``W * w`` (``w`` per output row, or per input column when ``on_input``).
* Full: ``diff`` (and ``diff_b`` for the bias). Norm: ``w_norm`` and ``b_norm`` for norm layers.

Then A1111's ``finalize_updown``: add a module ``bias`` part if any, reshape, multiply by the
scale (the ``scale`` part, else ``alpha / rank`` when both are known, else 1), and for DoRA
(``dora_scale``) re-normalise: ``(W + d) * dora_scale / ||W + d||`` (column norms, as A1111)
minus ``W``. The multiplier is applied by the caller, after all of this (A1111 multiplies last).
Everything is computed in float32 and cast to the layer's dtype by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stablenew_qt.core.extra_networks import ModuleType

if TYPE_CHECKING:
    import torch

__all__ = ["Updown", "depends_on_weight", "updown"]

Updown = tuple["torch.Tensor", "torch.Tensor | None"]


def depends_on_weight(kind: ModuleType) -> bool:
    """True for types whose delta is computed from the layer's current weight (DoRA, IA3): when
    stacked, a later network sees the weight with the earlier ones merged, as in A1111."""
    return kind in (ModuleType.DORA, ModuleType.IA3)


def updown(kind: ModuleType, parts: Mapping[str, torch.Tensor], weight: torch.Tensor) -> Updown:
    """The delta (float32, shaped like ``weight``) and bias delta (or None) of one module."""
    import torch

    w = {k: v.to(device=weight.device, dtype=torch.float32) for k, v in parts.items()}
    base = weight.to(torch.float32)
    if kind in (ModuleType.LORA, ModuleType.LOCON, ModuleType.LORA_CP, ModuleType.DORA):
        delta, shape, rank = _lora(w)
        return _finalize(w, delta, base, shape, rank, None)
    if kind is ModuleType.LOHA:
        delta, shape, rank = _loha(w)
        return _finalize(w, delta, base, shape, rank, None)
    if kind is ModuleType.LOKR:
        delta, shape, lokr_rank = _lokr(w, base)
        return _finalize(w, delta, base, shape, lokr_rank, None)
    if kind is ModuleType.IA3:
        return _ia3(w, base)
    if kind is ModuleType.FULL:
        return _finalize(w, w["diff"], base, list(w["diff"].shape), None, w.get("diff_b"))
    if kind is ModuleType.NORM:
        return _finalize(w, w["w_norm"], base, list(w["w_norm"].shape), None, w.get("b_norm"))
    raise ValueError(f"{kind.value} modules cannot be applied")


def _conventional(up: torch.Tensor, down: torch.Tensor, shape: list[int]) -> torch.Tensor:
    return (up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)).reshape(shape)


def _cp(t: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    """lyco_helpers.make_weight_cp: contract the Tucker core with both factor matrices."""
    import torch

    return torch.einsum("ijkl,jr,ip->prkl", t, wb, wa)


def _lora(w: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, list[int], int]:
    import torch

    up, down = w["lora_up.weight"], w["lora_down.weight"]
    shape = [up.shape[0], down.shape[1]]
    mid = w.get("lora_mid.weight")
    if mid is not None:
        delta = torch.einsum(
            "nmkl,in,mj->ijkl", mid, up.reshape(up.shape[0], -1), down.reshape(down.shape[0], -1)
        )
        return delta, shape + list(mid.shape[2:]), down.shape[0]
    if down.dim() == 4:
        shape += list(down.shape[2:])
    return _conventional(up, down, shape), shape, down.shape[0]


def _loha(w: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, list[int], int]:
    w1a, w1b, w2a, w2b = w["hada_w1_a"], w["hada_w1_b"], w["hada_w2_a"], w["hada_w2_b"]
    t1, t2 = w.get("hada_t1"), w.get("hada_t2")
    if t1 is not None:
        shape = [w1a.shape[1], w1b.shape[1], *t1.shape[2:]]
        first = _cp(t1, w1a, w1b)
    else:
        shape = [w1a.shape[0], w1b.shape[1]]
        if w1b.dim() == 4:
            shape += list(w1b.shape[2:])
        first = _conventional(w1a, w1b, shape)
    second = _cp(t2, w2a, w2b) if t2 is not None else _conventional(w2a, w2b, shape)
    return first * second, shape, w1b.shape[0]


def _lokr(w: Mapping[str, torch.Tensor], base: torch.Tensor) -> tuple[torch.Tensor, list[int], int | None]:
    import torch

    rank: int | None = None
    if "lokr_w1" in w:
        w1 = w["lokr_w1"]
    else:
        w1, rank = w["lokr_w1_a"] @ w["lokr_w1_b"], w["lokr_w1_b"].shape[0]
    if "lokr_w2" in w:
        w2 = w["lokr_w2"]
    elif "lokr_t2" in w:
        w2, rank = _cp(w["lokr_t2"], w["lokr_w2_a"], w["lokr_w2_b"]), w["lokr_w2_b"].shape[0]
    else:
        w2, rank = w["lokr_w2_a"] @ w["lokr_w2_b"], w["lokr_w2_b"].shape[0]
    shape = [w1.shape[0] * w2.shape[0], w1.shape[1] * w2.shape[1]]
    if base.dim() == 4:
        shape = list(base.shape)
    if w2.dim() == 4:
        w1 = w1.unsqueeze(2).unsqueeze(2)
    return torch.kron(w1, w2.contiguous()).reshape(shape), shape, rank


def _ia3(w: Mapping[str, torch.Tensor], base: torch.Tensor) -> Updown:
    scale = w["weight"]
    on_input = bool(w["on_input"].item()) if "on_input" in w else False
    shape = [scale.shape[0], base.shape[1]]
    if on_input:
        shape.reverse()
    else:
        scale = scale.reshape(-1, 1)
    return _finalize(w, base * scale, base, shape, None, None)


def _finalize(
    w: Mapping[str, torch.Tensor],
    delta: torch.Tensor,
    base: torch.Tensor,
    shape: list[int],
    rank: int | None,
    ex_bias: torch.Tensor | None,
) -> Updown:
    bias = w.get("bias")
    if bias is not None:
        delta = (delta.reshape(bias.shape) + bias).reshape(shape)
    if len(shape) == 4:
        delta = delta.reshape(shape)
    if delta.numel() == base.numel():
        delta = delta.reshape(base.shape)
    delta = delta * _scale(w, rank)
    dora = w.get("dora_scale")
    if dora is not None:
        delta = _decompose(delta, base, dora)
    return delta, ex_bias


def _scale(w: Mapping[str, torch.Tensor], rank: int | None) -> float:
    if "scale" in w:
        return float(w["scale"].item())
    if rank is not None and "alpha" in w:
        return float(w["alpha"].item()) / rank
    return 1.0


def _decompose(delta: torch.Tensor, base: torch.Tensor, dora: torch.Tensor) -> torch.Tensor:
    """A1111's apply_weight_decompose: scale the merged weight's columns to ``dora``'s norms."""
    merged = base + delta
    columns = merged.shape[1]
    norm = (
        merged.transpose(0, 1)
        .reshape(columns, -1)
        .norm(dim=1, keepdim=True)
        .reshape(columns, *[1] * (merged.dim() - 1))
        .transpose(0, 1)
    )
    result: torch.Tensor = merged * (dora / norm) - base
    return result
