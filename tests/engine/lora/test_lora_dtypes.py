"""Removing LoRAs is bit-exact in half precision too: bf16 on the CPU, fp16 on CUDA; and the facts
about diffusers 0.42 that decide which files go through peft and which through our hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lora_files import build, dora_parts, loha_parts, sd15_layers, write
from test_lora_apply import outputs
from test_lora_lycoris import CONV3, LINEAR, TE_LINEAR

from stablenew_qt.core.extra_networks import ExtraNetworksCatalog
from stablenew_qt.engine.device import DeviceChoice
from stablenew_qt.engine.family import ModelFamily
from stablenew_qt.engine.lora import LoraActivation, LoraManager
from stablenew_qt.engine.models import ModelCatalog
from stablenew_qt.engine.pipelines import PipelineCache


def _weights(pipe: Any) -> dict[str, bytes]:
    out = {}
    for component in ("unet", "text_encoder"):
        for name, tensor in getattr(pipe, component).state_dict().items():
            if "lora_" not in name:
                key = f"{component}.{name.replace('.base_layer', '')}"
                out[key] = tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
    return out


def _half_round_trip(pipe: Any, family: ModelFamily, models_dir: Path) -> None:
    """Apply a peft LoRA and a hook-patched LoHa, change weights ten times, remove them: bit-exact."""
    write(models_dir / "Lora" / "plain.safetensors", build(sd15_layers(pipe), seed=1))
    write(
        models_dir / "Lora" / "loha.safetensors",
        build(sd15_layers(pipe, LINEAR + CONV3, TE_LINEAR), loha_parts, seed=2),
    )
    write(
        models_dir / "Lora" / "dora.safetensors",
        build(sd15_layers(pipe, LINEAR, TE_LINEAR), dora_parts, seed=3),
    )
    catalog = ExtraNetworksCatalog(models_dir)
    plain, loha, dora = (catalog.resolve_lora(n) for n in ("plain", "loha", "dora"))
    weights, base = _weights(pipe), outputs(pipe)
    manager = LoraManager(pipe, family)
    for step in range(10):
        w = 0.2 + 0.15 * step
        manager.apply([LoraActivation(plain, w, w), LoraActivation(loha, 1 - w, w)])
        assert not torch.equal(outputs(pipe)[-1], base[-1])
    manager.apply([LoraActivation(dora, 0.9, 0.9), LoraActivation(plain, 0.5, 0.5)])
    manager.deactivate()
    assert all(torch.equal(a, b) for a, b in zip(outputs(pipe), base, strict=True))
    assert _weights(pipe) == weights
    manager.unload_all()
    assert _weights(pipe) == weights and all(
        torch.equal(a, b) for a, b in zip(outputs(pipe), base, strict=True)
    )


def test_bf16_on_cpu_removing_loras_is_bit_exact(demo_models: dict[str, Path], models_dir: Path) -> None:
    device = DeviceChoice(torch.device("cpu"), torch.bfloat16)
    cache = PipelineCache(
        ModelCatalog(models_dir, extra_checkpoints=demo_models), device, hasher=lambda _p: None
    )
    loaded = cache.base("demo-tiny-sd15")
    assert loaded.pipe.unet.dtype == torch.bfloat16
    _half_round_trip(loaded.pipe, loaded.family, models_dir)


@pytest.mark.gpu
def test_fp16_on_cuda_removing_loras_is_bit_exact(demo_models: dict[str, Path], models_dir: Path) -> None:
    device = DeviceChoice(torch.device("cuda"), torch.float16)
    cache = PipelineCache(
        ModelCatalog(models_dir, extra_checkpoints=demo_models), device, hasher=lambda _p: None
    )
    loaded = cache.base("demo-tiny-sd15")
    assert loaded.pipe.unet.dtype == torch.float16 and loaded.pipe.unet.device.type == "cuda"
    _half_round_trip(loaded.pipe, loaded.family, models_dir)


# -- diffusers 0.42 facts our routing relies on (a failure here means: revisit files.PEFT_TYPES) --


@pytest.mark.parametrize(
    ("suffix", "tensor"),
    [
        ("lora_mid.weight", torch.zeros(2, 2, 3, 3)),
        ("hada_w1_a", torch.zeros(8, 2)),
        ("lokr_w1", torch.zeros(2, 2)),
    ],
)
def test_diffusers_refuses_lycoris_keys(suffix: str, tensor: torch.Tensor, reference_pipe: Any) -> None:
    pipe = reference_pipe()
    key = "lora_unet_down_blocks_0_resnets_0_conv1"
    state = {
        f"{key}.lora_down.weight": torch.zeros(2, 8, 3, 3),
        f"{key}.lora_up.weight": torch.zeros(8, 2, 1, 1),
    }
    state[f"{key}.{suffix}"] = tensor
    with pytest.raises(ValueError, match="have not been correctly renamed"):
        pipe.load_lora_weights(state, adapter_name="x")


def test_diffusers_drops_dora_scale_silently(reference_pipe: Any) -> None:
    pipe = reference_pipe()
    layer = pipe.unet.get_submodule(LINEAR[0])
    state = {
        f"lora_unet_{LINEAR[0].replace('.', '_')}.{k}": v
        for k, v in dora_parts(layer, torch.Generator().manual_seed(0)).items()
    }
    pipe.load_lora_weights(state, adapter_name="d")
    wrapped = pipe.unet.get_submodule(LINEAR[0])
    assert not wrapped.use_dora.get("d", False), "diffusers loaded a plain LoRA: the DoRA scale is gone"
