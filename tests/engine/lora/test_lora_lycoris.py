"""LyCORIS types, DoRA and Tucker LoCon through the hook patcher, against A1111's merge (1e-5, float32)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lora_files import (
    build,
    dora_parts,
    full_parts,
    ia3_parts,
    kohya_key,
    loha_parts,
    lokr_parts,
    lora_cp_parts,
    norm_parts,
    sd15_layers,
    te_key,
    write,
)
from lora_reference import merge_into
from test_lora_apply import TOLERANCE, max_diff, outputs

from stablenew_qt.core.extra_networks import ExtraNetworksCatalog, ModuleType
from stablenew_qt.engine.errors import ModelError
from stablenew_qt.engine.lora import LoraActivation, LoraManager
from stablenew_qt.engine.pipelines import PipelineCache

LINEAR = (
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
    "up_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k",
)
CONV3 = ("down_blocks.0.resnets.0.conv1", "up_blocks.1.resnets.1.conv2")
CONV1 = ("up_blocks.0.resnets.0.conv_shortcut",)
NORMS = ("down_blocks.1.attentions.0.norm", "down_blocks.1.attentions.0.transformer_blocks.0.norm2")
TE_LINEAR = ("encoder.layers.0.self_attn.q_proj", "encoder.layers.1.self_attn.out_proj")

CASES: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...], ModuleType]] = {
    "LoHa": (loha_parts, LINEAR + CONV3 + CONV1, TE_LINEAR, ModuleType.LOHA),
    "LoHa Tucker": (lambda layer, g: loha_parts(layer, g, tucker=True), CONV3, (), ModuleType.LOHA),
    "LoKr": (lokr_parts, LINEAR + CONV3, TE_LINEAR, ModuleType.LOKR),
    "IA3": (ia3_parts, LINEAR, TE_LINEAR, ModuleType.IA3),
    "IA3 on input": (lambda layer, g: ia3_parts(layer, g, on_input=True), LINEAR, (), ModuleType.IA3),
    "Full": (full_parts, LINEAR + CONV3, TE_LINEAR, ModuleType.FULL),
    "Norm": (norm_parts, NORMS, ("encoder.layers.0.layer_norm1",), ModuleType.NORM),
    "DoRA": (dora_parts, LINEAR + CONV3, TE_LINEAR, ModuleType.DORA),
    "LoCon CP": (lora_cp_parts, CONV3, (), ModuleType.LORA_CP),
}


@pytest.fixture
def sd15(pipeline_cache: PipelineCache) -> Any:
    return pipeline_cache.base("demo-tiny-sd15")


@pytest.mark.parametrize("case", list(CASES))
def test_each_type_equals_the_a1111_merge(
    case: str, sd15: Any, models_dir: Path, reference_pipe: Any
) -> None:
    make, unet_layers, te_layers, kind = CASES[case]
    tensors = build(sd15_layers(sd15.pipe, unet_layers, te_layers), make, seed=11)
    write(models_dir / "Lora" / "net.safetensors", tensors)
    entry = ExtraNetworksCatalog(models_dir).resolve_lora("net")
    assert entry.module_types == {kind}
    base = outputs(sd15.pipe)
    manager = LoraManager(sd15.pipe, sd15.family)
    manager.apply([LoraActivation(entry, te=0.6, unet=0.9)])
    assert manager.adapter_loads == 0, f"{case} is applied by the hook patcher, not by diffusers"
    reference = reference_pipe()
    merge_into(sd15_layers(reference, unet_layers, te_layers), tensors, te=0.6, unet=0.9)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE
    assert max_diff(outputs(sd15.pipe), base) > 1e-3
    manager.deactivate()
    assert all(torch.equal(a, b) for a, b in zip(outputs(sd15.pipe), base, strict=True))
    assert manager.patcher.hooked_layers == 0


def test_a_weight_change_reuses_the_cached_deltas(sd15: Any, models_dir: Path, reference_pipe: Any) -> None:
    tensors = build(sd15_layers(sd15.pipe, LINEAR + CONV3, TE_LINEAR), loha_parts, seed=2)
    write(models_dir / "Lora" / "loha.safetensors", tensors)
    entry = ExtraNetworksCatalog(models_dir).resolve_lora("loha")
    manager = LoraManager(sd15.pipe, sd15.family)
    manager.apply([LoraActivation(entry, 1.0, 1.0)])
    network = next(iter(manager._residents.values())).network
    assert network is not None
    cached = {k: id(v) for k, v in network.cache.items()}
    manager.apply([LoraActivation(entry, 0.3, 1.4)])
    assert {k: id(v) for k, v in network.cache.items()} == cached and manager.file_reads == 1
    reference = reference_pipe()
    merge_into(sd15_layers(reference, LINEAR + CONV3, TE_LINEAR), tensors, te=0.3, unet=1.4)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE


@pytest.mark.parametrize("order", ["lora first", "dora first"])
def test_dora_stacked_with_a_lora_applies_in_prompt_order(
    order: str, sd15: Any, models_dir: Path, reference_pipe: Any
) -> None:
    plain = build(sd15_layers(sd15.pipe, LINEAR, TE_LINEAR), seed=3)
    dora = build(sd15_layers(sd15.pipe, LINEAR, TE_LINEAR), dora_parts, seed=4)
    write(models_dir / "Lora" / "plain.safetensors", plain)
    write(models_dir / "Lora" / "dora.safetensors", dora)
    catalog = ExtraNetworksCatalog(models_dir)
    networks = [("plain", plain, 0.8), ("dora", dora, 0.7)]
    if order == "dora first":
        networks.reverse()
    manager = LoraManager(sd15.pipe, sd15.family)
    manager.apply([LoraActivation(catalog.resolve_lora(n), w, w) for n, _t, w in networks])
    reference = reference_pipe()
    for _name, tensors, weight in networks:  # A1111 merges one after another into the patched weight
        merge_into(sd15_layers(reference, LINEAR, TE_LINEAR), tensors, te=weight, unet=weight)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE


def test_a_lora_for_sd15_on_the_inpainting_unet_is_padded_like_a1111(
    pipeline_cache: PipelineCache, models_dir: Path, demo_models: dict[str, Path]
) -> None:
    import diffusers

    inpaint = pipeline_cache.base("demo-tiny-sd15-inpaint")
    sd15 = pipeline_cache.base("demo-tiny-sd15")
    layers = sd15_layers(sd15.pipe, ("conv_in", *LINEAR), ())
    tensors = build(layers, seed=5)  # conv_in made for 4 input channels
    write(models_dir / "Lora" / "sd.safetensors", tensors)
    LoraManager(inpaint.pipe, inpaint.family).apply(
        [LoraActivation(ExtraNetworksCatalog(models_dir).resolve_lora("sd"))]
    )
    reference = diffusers.StableDiffusionInpaintPipeline.from_pretrained(
        str(demo_models["demo-tiny-sd15-inpaint"]), safety_checker=None, requires_safety_checker=False
    )
    merge_into(sd15_layers(reference, ("conv_in", *LINEAR), ()), tensors, te=1.0, unet=1.0)
    g = torch.Generator().manual_seed(0)
    x, context = torch.randn(1, 9, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        got = inpaint.pipe.unet(x, 300, encoder_hidden_states=context).sample
        want = reference.unet(x, 300, encoder_hidden_states=context).sample
    assert (got - want).abs().max().item() < TOLERANCE


@pytest.mark.parametrize(
    ("parts", "kind"),
    [
        ({"oft_blocks": torch.zeros(2, 8, 8)}, "OFT"),
        (
            {
                "a1.weight": torch.zeros(2, 16),
                "a2.weight": torch.zeros(16, 2),
                "b1.weight": torch.zeros(2, 16),
                "b2.weight": torch.zeros(16, 2),
            },
            "GLoRA",
        ),
    ],
)
def test_unsupported_types_are_refused_by_name(
    parts: dict[str, torch.Tensor], kind: str, sd15: Any, models_dir: Path
) -> None:
    key = kohya_key("lora_unet_", LINEAR[0])
    write(models_dir / "Lora" / "odd.safetensors", {f"{key}.{p}": t for p, t in parts.items()})
    entry = ExtraNetworksCatalog(models_dir).resolve_lora("odd")
    manager = LoraManager(sd15.pipe, sd15.family)
    with pytest.raises(ModelError, match=f"LoRA 'odd' uses {kind} modules, which cannot be applied"):
        manager.apply([LoraActivation(entry)])
    assert manager.file_reads == 0


def test_a_file_mixing_lora_and_loha_modules_applies_both(
    sd15: Any, models_dir: Path, reference_pipe: Any
) -> None:
    tensors = build(sd15_layers(sd15.pipe, LINEAR, ()), seed=6)
    tensors.update(build(sd15_layers(sd15.pipe, CONV3, ()), loha_parts, seed=7))
    write(models_dir / "Lora" / "mixed.safetensors", tensors)
    entry = ExtraNetworksCatalog(models_dir).resolve_lora("mixed")
    assert entry.network_type == "LoHa"
    LoraManager(sd15.pipe, sd15.family).apply([LoraActivation(entry, 0.5, 0.5)])
    reference = reference_pipe()
    merge_into(sd15_layers(reference, LINEAR + CONV3, ()), tensors, te=0.5, unet=0.5)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE


def test_te_key_helper_matches_real_files() -> None:
    assert te_key("lora_te_", "encoder.layers.0.mlp.fc1") == "lora_te_text_model_encoder_layers_0_mlp_fc1"
