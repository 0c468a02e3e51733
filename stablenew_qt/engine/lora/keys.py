"""Which layer of a diffusers pipeline a kohya LoRA module key names.

kohya (and A1111, which reads the same files) names a module by its path with dots turned into
underscores: ``lora_unet_<path>``, ``lora_te_<path>`` (SD 1.x text encoder), ``lora_te1_`` and
``lora_te2_`` (SDXL's two). SD 1.x files use diffusers' UNet paths (``down_blocks_1_attentions_0``);
SDXL files (and LyCORIS files trained on A1111) use the original LDM/SGM paths
(``input_blocks_4_1``, ``middle_block_1``, ``output_blocks_2_2``). Rather than parse names (an
underscore is ambiguous), we build the table the other way: every layer of the loaded model under
each name a file may use for it, including the LDM name derived from the UNet's config.

Text-encoder paths get the ``text_model.`` prefix real files carry (transformers 5 dropped it from
``CLIPTextModel``'s module names but kept it in ``CLIPTextModelWithProjection``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["COMPONENT_PREFIXES", "LayerTable", "Target", "base_layer", "ldm_unet_path"]

#: kohya key prefix -> pipeline component.
COMPONENT_PREFIXES = {
    "lora_unet_": "unet",
    "lora_te_": "text_encoder",
    "lora_te1_": "text_encoder",
    "lora_te2_": "text_encoder_2",
}
_TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_BLOCK = re.compile(
    r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)(?:\.(.*))?$"
)
_MID = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)(?:\.(.*))?$")


@dataclass(frozen=True)
class Target:
    """A layer a LoRA module patches: the pipeline component and the layer's diffusers path."""

    component: str
    path: str


def base_layer(module: Any) -> Any:
    """The original layer of ``module`` (peft wraps patched layers; the original is ``base_layer``)."""
    while hasattr(module, "base_layer"):
        module = module.base_layer
    return module


class LayerTable:
    """kohya module key -> :class:`Target`, for the components of one pipeline."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = {name: module for name, module in components.items() if module is not None}
        self._targets: dict[str, Target] = {}
        for component, model in self.components.items():
            for key, path in _names(component, model):
                self._targets.setdefault(key, Target(component, path))

    def target(self, module_key: str) -> Target | None:
        """Where ``module_key`` (``lora_unet_down_blocks_0_resnets_0_conv1``) points, or None."""
        return self._targets.get(module_key)

    def layer(self, target: Target) -> Any:
        """The original (unwrapped) layer at ``target``."""
        return base_layer(self.components[target.component].get_submodule(target.path))


def _names(component: str, model: Any) -> Iterator[tuple[str, str]]:
    prefixes = [p for p, c in COMPONENT_PREFIXES.items() if c == component]
    ldm = _LdmNames(model.config) if component == "unet" else None
    for raw_path, _module in model.named_modules():
        path = _without_peft(raw_path)
        if not path:
            continue
        spellings = [path]
        if component in _TEXT_ENCODERS and not path.startswith("text_model."):
            spellings.append("text_model." + path)
        if ldm is not None:
            spellings.extend(ldm.paths(path))
        for prefix in prefixes:
            for spelling in spellings:
                yield prefix + spelling.replace(".", "_"), path


def _without_peft(path: str) -> str:
    """A module path with peft's wrapper parts removed (``x.base_layer`` is the layer ``x``);
    peft's own sub-modules (``x.lora_A.name``) give ""."""
    parts = path.split(".")
    if any(p.startswith(("lora_", "base_layer_")) for p in parts):
        return ""
    return ".".join(p for p in parts if p != "base_layer")


class _LdmNames:
    """diffusers UNet path -> the LDM/SGM path of the same layer, from the UNet's config."""

    def __init__(self, config: Any) -> None:
        layers = getattr(config, "layers_per_block", None)
        self.layers = layers if isinstance(layers, int) else None
        up_types = tuple(getattr(config, "up_block_types", ()) or ())
        self.up_has_attention = tuple("CrossAttn" in t for t in up_types)

    def paths(self, path: str) -> list[str]:
        if self.layers is None:
            return []
        if path in _TOP_LEVEL:
            return [_TOP_LEVEL[path]]
        found = _BLOCK.match(path)
        if found:
            return [p for p in [self._block(*found.groups())] if p]
        mid = _MID.match(path)
        if mid:
            kind, index, rest = mid.groups()
            slot = {("resnets", "0"): "0", ("attentions", "0"): "1", ("resnets", "1"): "2"}.get((kind, index))
            if slot is None:
                return []
            return [_join(f"middle_block.{slot}", _inner(kind, rest))]
        return []

    def _block(self, side: str, block: str, kind: str, index: str, rest: str | None) -> str | None:
        assert self.layers is not None
        b, i, span = int(block), int(index), self.layers + 1
        if side == "down_blocks":
            if kind == "downsamplers":
                return _join(f"input_blocks.{(b + 1) * span}.0", "op" if rest == "conv" else rest)
            slot = "0" if kind == "resnets" else "1"
            return _join(f"input_blocks.{1 + b * span + i}.{slot}", _inner(kind, rest))
        if kind == "upsamplers":
            has_attention = b < len(self.up_has_attention) and self.up_has_attention[b]
            return _join(f"output_blocks.{b * span + self.layers}.{2 if has_attention else 1}", rest)
        slot = "0" if kind == "resnets" else "1"
        return _join(f"output_blocks.{b * span + i}.{slot}", _inner(kind, rest))


def ldm_unet_path(path: str, config: Any) -> str | None:
    """The LDM/SGM spelling of the diffusers UNet ``path`` (``down_blocks.1.attentions.0.proj_in``
    -> ``input_blocks.4.1.proj_in`` for SD 1.x), or None when it has none."""
    paths = _LdmNames(config).paths(path)
    return paths[0] if paths else None


def _inner(kind: str, rest: str | None) -> str | None:
    if kind != "resnets" or rest is None:
        return rest
    head, _, tail = rest.partition(".")
    mapped = _RESNET_PARTS.get(head)
    if mapped is None:
        return rest
    return mapped + ("." + tail if tail else "")


def _join(base: str, rest: str | None) -> str:
    return f"{base}.{rest}" if rest else base
