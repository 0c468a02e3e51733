"""Applies what diffusers cannot (DoRA, Tucker LoCon, LoHa, LoKr, IA3, full, norm, and the LoRA
modules diffusers misplaces) with forward hooks.

No weight is ever written. Each patched layer gets one forward hook that adds, for every active
network on it, ``multiplier * op(x, delta)`` to the layer's output (``op`` is the layer's own
linear or convolution, so this equals running the layer with ``W + multiplier * delta``); norm
layers are recomputed with the patched weight and bias. Removing the hook restores the layer
exactly, in any dtype, because its parameters were never touched.

A plain LoRA module is kept as its two factors (``up(down(x)) * alpha / rank``, as peft runs it),
so it costs no more memory than the file. Other types' deltas are computed once (float32 maths,
stored in the layer's dtype on its device) and reused across jobs; only types whose delta depends
on the current weight (DoRA, IA3) are recomputed when networks before them on the same layer
change, because A1111 applies stacked networks one after another to the already-patched weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stablenew_qt.core.extra_networks import ModuleType

from ..errors import ModelError
from .formulas import depends_on_weight, updown
from .keys import LayerTable, Target

if TYPE_CHECKING:
    import torch

__all__ = ["HookPatcher", "PatchModule", "PatchNetwork"]


@dataclass
class PatchModule:
    """One module of a network file: the layer it patches, its type and its tensors (CPU)."""

    key: str
    target: Target
    kind: ModuleType
    parts: Mapping[str, torch.Tensor]


@dataclass
class Change:
    """A module's change to its layer before the multiplier: a full ``delta`` (and ``bias``), or
    for plain LoRA the low-rank factors ``down``/``up`` and ``scale`` (never materialised)."""

    delta: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    down: torch.Tensor | None = None
    up: torch.Tensor | None = None
    scale: float = 1.0

    def full(self, shape: torch.Size) -> torch.Tensor:
        """The change as a float32 tensor of ``shape`` (what an A1111 merge adds, unmultiplied)."""
        if self.delta is not None:
            return self.delta.float().reshape(shape)
        assert self.up is not None and self.down is not None
        product = self.up.float().flatten(1) @ self.down.float().flatten(1)
        return (product * self.scale).reshape(shape)

    @property
    def nbytes(self) -> int:
        tensors = (self.delta, self.bias, self.down, self.up)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@dataclass
class PatchNetwork:
    """A network applied by hooks: its modules, and their changes cached per module for reuse."""

    name: str
    modules: list[PatchModule]
    cache: dict[str, Change] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes held: the file's tensors plus every cached change."""
        raw = sum(t.numel() * t.element_size() for m in self.modules for t in m.parts.values())
        return raw + sum(change.nbytes for change in self.cache.values())


@dataclass
class _Contribution:
    change: Change
    multiplier: float


class _LayerHook:
    """The single hook on one layer, summing every active network's contribution."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.contributions: list[_Contribution] = []
        self.handle = layer.register_forward_hook(self._hook)

    def remove(self) -> None:
        self.handle.remove()

    def _hook(self, layer: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        import torch

        x = inputs[0]
        if not isinstance(layer, torch.nn.Linear | torch.nn.Conv2d):
            return self._renormalise(layer, x)
        for contribution in self.contributions:
            extra = _extra_output(layer, x, contribution.change)
            output = torch.add(output, extra, alpha=contribution.multiplier)
        return output

    def _renormalise(self, layer: Any, x: torch.Tensor) -> torch.Tensor:
        import torch

        weight, bias = layer.weight, layer.bias
        for c in self.contributions:
            weight = weight + c.multiplier * c.change.full(weight.shape).to(
                device=x.device, dtype=weight.dtype
            )
            if c.change.bias is not None:
                extra = c.multiplier * c.change.bias.to(device=x.device)
                bias = extra if bias is None else bias + extra
        if isinstance(layer, torch.nn.LayerNorm):
            return torch.nn.functional.layer_norm(x, layer.normalized_shape, weight, bias, layer.eps)
        return torch.nn.functional.group_norm(x, layer.num_groups, weight, bias, layer.eps)


def _extra_output(layer: Any, x: torch.Tensor, change: Change) -> torch.Tensor:
    """What ``change`` adds to ``layer``'s output for input ``x`` (the layer's own op on the change)."""
    import torch

    linear = isinstance(layer, torch.nn.Linear)
    bias = None if change.bias is None else change.bias.to(device=x.device)
    if change.delta is not None:
        delta = change.delta.to(device=x.device)
        return torch.nn.functional.linear(x, delta, bias) if linear else layer._conv_forward(x, delta, bias)
    assert change.down is not None and change.up is not None
    down, up = change.down.to(device=x.device), change.up.to(device=x.device)
    if linear:
        return torch.nn.functional.linear(torch.nn.functional.linear(x, down), up) * change.scale
    return torch.nn.functional.conv2d(layer._conv_forward(x, down, None), up) * change.scale


_LOW_RANK_PARTS = frozenset({"lora_up.weight", "lora_down.weight", "alpha"})
_PATCHABLE = ("Linear", "Conv2d", "LayerNorm", "GroupNorm")


class HookPatcher:
    """The hooks of one pipeline's layers; :meth:`activate` sets which networks are on."""

    def __init__(self, table: LayerTable) -> None:
        self.table = table
        self._hooks: dict[int, _LayerHook] = {}

    def check(self, network: PatchNetwork) -> None:
        """Raise ModelError when a module targets a layer type the hooks cannot patch."""
        for module in network.modules:
            layer = self.table.layer(module.target)
            if type(layer).__name__ not in _PATCHABLE:
                raise ModelError(
                    f"LoRA '{network.name}': module {module.key} patches a {type(layer).__name__} layer, "
                    "which cannot be patched"
                )

    def activate(self, active: Sequence[tuple[PatchNetwork, float, float]]) -> None:
        """Turn on exactly ``active`` ((network, te multiplier, unet multiplier) in prompt order;
        a network may appear more than once). Layers no network patches lose their hook."""
        per_layer: dict[int, tuple[Any, list[_Contribution]]] = {}
        for network, te, unet in active:
            for module in network.modules:
                layer = self.table.layer(module.target)
                multiplier = unet if module.target.component == "unet" else te
                entry = per_layer.setdefault(id(layer), (layer, []))
                entry[1].append(self._contribution(network, module, layer, entry[1], multiplier))
        for key in [k for k in self._hooks if k not in per_layer]:
            self._hooks.pop(key).remove()
        for key, (layer, contributions) in per_layer.items():
            hook = self._hooks.get(key) or self._hooks.setdefault(key, _LayerHook(layer))
            hook.contributions = contributions

    def clear(self) -> None:
        """Remove every hook: the layers compute exactly what they did before any network."""
        for hook in self._hooks.values():
            hook.remove()
        self._hooks.clear()

    @property
    def hooked_layers(self) -> int:
        return len(self._hooks)

    def _contribution(
        self,
        network: PatchNetwork,
        module: PatchModule,
        layer: Any,
        earlier: Iterable[_Contribution],
        multiplier: float,
    ) -> _Contribution:
        earlier = list(earlier)
        if depends_on_weight(module.kind) and earlier:
            return _Contribution(self._change_on(module, layer, earlier), multiplier)
        change = network.cache.get(module.key)
        if change is None:
            change = _low_rank(module, layer) or self._change_on(module, layer, [])
            network.cache[module.key] = change
        return _Contribution(change, multiplier)

    def _change_on(self, module: PatchModule, layer: Any, earlier: Sequence[_Contribution]) -> Change:
        weight = layer.weight.detach()
        current = weight.float()
        for c in earlier:  # A1111 patches in order: a later network sees the weight so far
            current = current + c.multiplier * c.change.full(current.shape).to(current.device)
        try:
            delta, bias = updown(module.kind, module.parts, current)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ModelError(
                f"LoRA module {module.key} does not fit layer {module.target.path}: {exc}"
            ) from exc
        delta = _pad_inpaint(delta, weight)
        if delta.shape != weight.shape:
            raise ModelError(
                f"LoRA module {module.key} makes a {list(delta.shape)} change for layer "
                f"{module.target.path}, whose weight is {list(weight.shape)}; "
                "the LoRA was made for another model"
            )
        bias_out = None if bias is None else bias.to(dtype=weight.dtype, device=weight.device)
        return Change(delta=delta.to(dtype=weight.dtype, device=weight.device), bias=bias_out)


def _low_rank(module: PatchModule, layer: Any) -> Change | None:
    """The factors of a plain LoRA module whose shapes fit ``layer`` exactly, else None."""
    import torch

    parts = module.parts
    if module.kind not in (ModuleType.LORA, ModuleType.LOCON) or set(parts) - _LOW_RANK_PARTS:
        return None
    weight = layer.weight
    down, up = parts["lora_down.weight"], parts["lora_up.weight"]
    rank = down.shape[0]
    if isinstance(layer, torch.nn.Linear) and down.dim() == 2 and up.dim() == 2:
        shapes_fit = down.shape[1] == weight.shape[1] and up.shape == (weight.shape[0], rank)
    elif isinstance(layer, torch.nn.Conv2d) and down.dim() == 4 and up.dim() == 4:
        fits_kernel = down.shape[2:] == weight.shape[2:]
        shapes_fit = (
            fits_kernel and down.shape[1] == weight.shape[1] and up.shape == (weight.shape[0], rank, 1, 1)
        )
    else:
        return None
    if not shapes_fit or getattr(layer, "groups", 1) != 1:
        return None
    scale = float(parts["alpha"].item()) / rank if "alpha" in parts else 1.0
    place = {"dtype": weight.dtype, "device": weight.device}
    return Change(down=down.to(**place), up=up.to(**place), scale=scale)


def _pad_inpaint(delta: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A1111 zero-pads a 4-channel conv_in change to an inpainting UNet's 9 input channels."""
    import torch

    if delta.dim() == 4 and weight.dim() == 4 and weight.shape[1] == 9 and delta.shape[1] == 4:
        return torch.nn.functional.pad(delta, (0, 0, 0, 0, 0, 5))
    return delta
