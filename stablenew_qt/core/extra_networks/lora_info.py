"""What a LoRA file is, read from its safetensors header alone: module types, parts, family.

Keys follow kohya's layout (``lora_unet_<module>.lora_down.weight``, ``lora_te_``, ``lora_te1_``,
``lora_te2_``, with ``.alpha``) or diffusers' (``unet.<module>.lora_A.weight``). Each module's
parts decide its type as A1111's ``extensions-builtin/Lora/network_*.py`` do: ``lora_up``/
``lora_down`` (LoRA; a 3x3 down is LoCon; ``lora_mid`` is LoCon's CP form; ``dora_scale`` DoRA),
``hada_w1_a``.. (LoHa), ``lokr_w1``.. (LoKr), ``weight`` + ``on_input`` (IA3), ``diff`` (full),
``w_norm``/``b_norm`` (norm), ``oft_blocks``/``oft_diag`` (OFT), ``a1.weight``.. (GLoRA).

The family (SD 1.x, SD 2, SDXL) comes first from the training metadata A1111 reads
(``ss_base_model_version`` starting ``sdxl_``, ``ss_v2``), then ``modelspec.architecture``, then
the widths in the key shapes (text encoder 768 / 1024 / 768+1280, cross-attention context 768 /
1024 / 2048), then key names (``lora_te2_``, SDXL's deeper transformer stacks, SD 1.x's attention
in the first input block). A1111 itself only looks at the metadata; we look further so that a
mismatch can be refused before anything loads, and only on firm evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .header import SafetensorsHeader, TensorInfo

__all__ = [
    "SUPPORTED_TYPES",
    "LoraAnalysis",
    "ModuleType",
    "NetworkFamily",
    "analyse_lora",
    "family_from_metadata",
    "training_tags",
]


class NetworkFamily(StrEnum):
    """The model line a LoRA or embedding was made for; the values are A1111's ``SdVersion`` names."""

    SD1 = "SD1"
    SD2 = "SD2"
    SDXL = "SDXL"
    OTHER = "Other"  # made for another architecture (Flux, SD3, ...): fits none of ours
    UNKNOWN = "Unknown"

    @property
    def label(self) -> str:
        """A short badge text: ``"SD 1.x"``, ``"SDXL"``, ``"?"``."""
        return _LABELS[self]


_LABELS = {
    NetworkFamily.SD1: "SD 1.x",
    NetworkFamily.SD2: "SD 2.x",
    NetworkFamily.SDXL: "SDXL",
    NetworkFamily.OTHER: "other",
    NetworkFamily.UNKNOWN: "?",
}


class ModuleType(StrEnum):
    """The kind of one patched layer, as A1111's LoRA extension tells them apart."""

    LORA = "LoRA"
    LOCON = "LoCon"  # LoRA on a k x k convolution
    LORA_CP = "LoCon (CP)"  # LoRA with a Tucker/CP ``lora_mid`` core
    DORA = "DoRA"
    LOHA = "LoHa"
    LOKR = "LoKr"
    IA3 = "IA3"
    FULL = "Full"
    NORM = "Norm"
    OFT = "OFT"
    GLORA = "GLoRA"
    UNKNOWN = "unknown"


#: The module types the engine applies (the others are refused by name before anything loads).
SUPPORTED_TYPES = frozenset(
    {
        ModuleType.LORA,
        ModuleType.LOCON,
        ModuleType.LORA_CP,
        ModuleType.DORA,
        ModuleType.LOHA,
        ModuleType.LOKR,
        ModuleType.IA3,
        ModuleType.FULL,
        ModuleType.NORM,
    }
)

_KOHYA_PREFIXES = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder"}
_KOHYA_PREFIXES["lora_te2_"] = "text_encoder_2"
_DIFFUSERS_PREFIXES = {"unet.": "unet", "text_encoder.": "text_encoder", "text_encoder_2.": "text_encoder_2"}
_DIFFUSERS_PART = re.compile(
    r"[._](lora_[AB]|lora\.(?:down|up)|lora_linear_layer\.(?:down|up)|lora_magnitude_vector)\b"
)
_BUNDLE = "bundle_emb."
_CONTEXT_WIDTH = {768: NetworkFamily.SD1, 1024: NetworkFamily.SD2, 2048: NetworkFamily.SDXL}
_TE_WIDTH = {768: NetworkFamily.SD1, 1024: NetworkFamily.SD2, 1280: NetworkFamily.SDXL}


@dataclass(frozen=True)
class LoraAnalysis:
    """The header's account of a LoRA file."""

    modules: Mapping[str, ModuleType]  # module key (``lora_unet_...``) -> type
    components: frozenset[str]  # "unet", "text_encoder", "text_encoder_2", "other"
    family: NetworkFamily
    family_source: str  # "metadata", "modelspec", "shapes", "key names" or "" when unknown
    bundled_embeddings: tuple[str, ...]

    @property
    def types(self) -> frozenset[ModuleType]:
        """Every module type in the file."""
        return frozenset(self.modules.values())

    @property
    def network_type(self) -> str:
        """One label for the file: the most specific type found (``"LoHa"``, ``"LoCon"``, ``"LoRA"``)."""
        for kind in _TYPE_PRIORITY:
            if kind in self.types:
                return kind.value
        return "empty"

    @property
    def unsupported(self) -> frozenset[ModuleType]:
        """Module types the engine cannot apply (the run is refused, naming them)."""
        return self.types - SUPPORTED_TYPES


_TYPE_PRIORITY = (
    ModuleType.OFT,
    ModuleType.GLORA,
    ModuleType.UNKNOWN,
    ModuleType.LOKR,
    ModuleType.LOHA,
    ModuleType.IA3,
    ModuleType.DORA,
    ModuleType.LORA_CP,
    ModuleType.FULL,
    ModuleType.NORM,
    ModuleType.LOCON,
    ModuleType.LORA,
)


def analyse_lora(header: SafetensorsHeader) -> LoraAnalysis:
    """Module types, model parts and family of the LoRA whose header is ``header``."""
    groups, bundled = _group(header.tensors)
    modules = {key: _module_type(parts) for key, parts in groups.items()}
    components = frozenset(_component(key) for key in groups)
    family, source = family_from_metadata(header.metadata)
    if family is NetworkFamily.UNKNOWN:
        family, source = _family_from_keys(groups, components)
    return LoraAnalysis(modules, components, family, source, tuple(sorted(bundled)))


def family_from_metadata(metadata: Mapping[str, str]) -> tuple[NetworkFamily, str]:
    """The family the training metadata declares (A1111's rule first), or UNKNOWN."""
    base = metadata.get("ss_base_model_version", "")
    if base.startswith("sdxl_"):
        return NetworkFamily.SDXL, "metadata"
    if metadata.get("ss_v2", "") == "True" or base.startswith("sd_v2"):
        return NetworkFamily.SD2, "metadata"
    if base.startswith("sd_v1"):
        return NetworkFamily.SD1, "metadata"
    if base.startswith(("flux", "sd3", "hunyuan", "lumina", "chroma")):
        return NetworkFamily.OTHER, "metadata"
    architecture = metadata.get("modelspec.architecture", "").lower()
    if architecture.startswith("stable-diffusion-xl"):
        return NetworkFamily.SDXL, "modelspec"
    if architecture.startswith("stable-diffusion-v1"):
        return NetworkFamily.SD1, "modelspec"
    if architecture.startswith("stable-diffusion-v2"):
        return NetworkFamily.SD2, "modelspec"
    if architecture:
        return NetworkFamily.OTHER, "modelspec"
    return NetworkFamily.UNKNOWN, ""


def training_tags(metadata: Mapping[str, str], limit: int = 20) -> tuple[tuple[str, int], ...]:
    """The most frequent training tags from ``ss_tag_frequency`` (``{folder: {tag: count}}``), summed
    over folders, most frequent first; empty when absent or malformed."""
    raw = metadata.get("ss_tag_frequency")
    if not raw:
        return ()
    try:
        folders = json.loads(raw)
    except (ValueError, RecursionError):
        return ()
    counts: dict[str, int] = {}
    if isinstance(folders, dict):
        for tags in folders.values():
            if isinstance(tags, dict):
                for tag, count in tags.items():
                    if isinstance(tag, str) and isinstance(count, int) and tag.strip():
                        counts[tag.strip()] = counts.get(tag.strip(), 0) + count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(ranked[:limit])


def _group(tensors: Mapping[str, TensorInfo]) -> tuple[dict[str, dict[str, TensorInfo]], set[str]]:
    groups: dict[str, dict[str, TensorInfo]] = {}
    bundled: set[str] = set()
    for key, info in tensors.items():
        if key.startswith(_BUNDLE):
            bundled.add(key[len(_BUNDLE) :].split(".", 1)[0])
            continue
        module, part = _split_key(key)
        groups.setdefault(module, {})[part] = info
    return groups, bundled


def _split_key(key: str) -> tuple[str, str]:
    """``lora_unet_x.lora_down.weight`` -> (``lora_unet_x``, ``lora_down.weight``); diffusers'
    ``unet.a.b.lora_A.weight`` -> (``unet.a.b``, ``lora_A.weight``)."""
    if not key.startswith(tuple(_DIFFUSERS_PREFIXES)):
        module, _, part = key.partition(".")
        return module, part
    found = _DIFFUSERS_PART.search(key)
    if found is None:
        module, _, part = key.rpartition(".")
        return module, part
    return key[: found.start()], key[found.start() + 1 :]


def _component(module: str) -> str:
    for prefix, component in (*_KOHYA_PREFIXES.items(), *_DIFFUSERS_PREFIXES.items()):
        if module.startswith(prefix):
            return component
    return "other"


def _module_type(parts: Mapping[str, TensorInfo]) -> ModuleType:
    has = parts.__contains__
    lora_parts = any(p.startswith(("lora_A", "lora.", "lora_linear_layer")) for p in parts)
    if (has("lora_up.weight") and has("lora_down.weight")) or lora_parts:
        return _lora_type(parts)
    if all(has(p) for p in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")):
        return ModuleType.LOHA
    if has("oft_blocks") or has("oft_diag"):
        return ModuleType.OFT
    if (has("lokr_w1") or (has("lokr_w1_a") and has("lokr_w1_b"))) and (
        has("lokr_w2") or (has("lokr_w2_a") and has("lokr_w2_b"))
    ):
        return ModuleType.LOKR
    if all(has(p) for p in ("a1.weight", "a2.weight", "b1.weight", "b2.weight")):
        return ModuleType.GLORA
    if has("weight"):
        return ModuleType.IA3
    if has("diff"):
        return ModuleType.FULL
    if has("w_norm") and has("b_norm"):
        return ModuleType.NORM
    return ModuleType.UNKNOWN


def _lora_type(parts: Mapping[str, TensorInfo]) -> ModuleType:
    if "dora_scale" in parts:
        return ModuleType.DORA
    if "lora_mid.weight" in parts:
        return ModuleType.LORA_CP
    down = parts.get("lora_down.weight")
    if down is not None and len(down.shape) == 4 and down.shape[2:] != (1, 1):
        return ModuleType.LOCON
    return ModuleType.LORA


def _family_from_keys(
    groups: Mapping[str, Mapping[str, TensorInfo]], components: frozenset[str]
) -> tuple[NetworkFamily, str]:
    by_shape = _family_from_shapes(groups)
    if by_shape is not NetworkFamily.UNKNOWN:
        return by_shape, "shapes"
    names = " ".join(groups)
    if "text_encoder_2" in components:
        return NetworkFamily.SDXL, "key names"
    if re.search(r"transformer_blocks[._][1-9]", names):  # SD 1.x and 2.x have one block per stack
        return NetworkFamily.SDXL, "key names"
    if re.search(r"lora_unet_input_blocks_[12]_1_|lora_unet_output_blocks_(?:9|1[01])_1_", names):
        return NetworkFamily.SD1, "key names"  # attention at full resolution: SD 1.x (and 2.x), never SDXL
    return NetworkFamily.UNKNOWN, ""


def _family_from_shapes(groups: Mapping[str, Mapping[str, TensorInfo]]) -> NetworkFamily:
    for module, parts in groups.items():
        width = _input_width(parts)
        if width is None:
            continue
        if "attn2" in module and ("to_k" in module or "to_v" in module) and width in _CONTEXT_WIDTH:
            return _CONTEXT_WIDTH[width]
        if module.startswith(("lora_te_", "lora_te1_", "text_encoder.")) and "self_attn" in module:
            if width == 768 and any(m.startswith(("lora_te2_", "text_encoder_2.")) for m in groups):
                return NetworkFamily.SDXL
            if width in (768, 1024):
                return _TE_WIDTH[width]
        if module.startswith(("lora_te2_", "text_encoder_2.")) and width == 1280:
            return NetworkFamily.SDXL
    return NetworkFamily.UNKNOWN


def _input_width(parts: Mapping[str, TensorInfo]) -> int | None:
    """The patched layer's input features, where the parts show them."""
    for part in ("lora_down.weight", "lora_A.weight", "hada_w1_b", "diff"):
        info = parts.get(part)
        if info is not None and len(info.shape) >= 2:
            return info.shape[1]
    return None
