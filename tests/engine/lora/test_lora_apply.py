"""LoRAs on the demo SD 1.5 / SDXL pipelines through LoraManager: A1111-exact, unfused, resident.

Every "equals A1111" claim compares with ``lora_reference.merge_into`` (A1111's weight merge, written
independently) on a fresh copy of the same model, float32, tolerance 1e-5 absolute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lora_files import SD15_UNET_LAYERS, build, lora_parts, sd15_layers, sdxl_layers, write
from lora_reference import merge_into

from stablenew_qt.core.extra_networks import ExtraNetworksCatalog, LoraEntry
from stablenew_qt.engine.errors import ModelError
from stablenew_qt.engine.lora import LoraActivation, LoraManager, LoraRegistry
from stablenew_qt.engine.pipelines import PipelineCache

TOLERANCE = 1e-5


def outputs(pipe: Any, sdxl: bool = False) -> tuple[torch.Tensor, ...]:
    """Text-encoder hidden states and one UNet prediction on fixed inputs."""
    g = torch.Generator().manual_seed(1)
    ids = pipe.tokenizer(["a lighthouse at dusk"], padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        hidden = [pipe.text_encoder(ids.input_ids).last_hidden_state]
        if sdxl:
            hidden.append(pipe.text_encoder_2(ids.input_ids).last_hidden_state)
        dtype = pipe.unet.dtype
        x = torch.randn(1, 4, 8, 8, generator=g).to(dtype)
        context = torch.randn(1, 77, 64 if sdxl else 32, generator=g).to(dtype)
        extra = {}
        if sdxl:
            extra = {
                "added_cond_kwargs": {
                    "text_embeds": torch.randn(1, 32, generator=g).to(dtype),
                    "time_ids": torch.ones(1, 6).to(dtype),
                }
            }
        sample = pipe.unet(x, 500, encoder_hidden_states=context, **extra).sample
    return (*hidden, sample)


def max_diff(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    return max((x.float() - y.float()).abs().max().item() for x, y in zip(a, b, strict=True))


def entry(models_dir: Path, name: str) -> LoraEntry:
    return ExtraNetworksCatalog(models_dir).resolve_lora(name)


@pytest.fixture
def sd15(pipeline_cache: PipelineCache) -> Any:
    return pipeline_cache.base("demo-tiny-sd15")


def test_one_lora_equals_a1111_merge_with_alpha_and_convs(
    sd15: Any, models_dir: Path, reference_pipe: Any
) -> None:
    tensors = build(sd15_layers(sd15.pipe), lambda layer, g: lora_parts(layer, g, rank=2, alpha=1.0))
    write(models_dir / "Lora" / "detail.safetensors", tensors)
    manager = LoraManager(sd15.pipe, sd15.family)
    base = outputs(sd15.pipe)
    manager.apply([LoraActivation(entry(models_dir, "detail"), te=0.8, unet=0.8)])
    reference = reference_pipe()
    merge_into(sd15_layers(reference), tensors, te=0.8, unet=0.8)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE
    assert max_diff(outputs(sd15.pipe), base) > 1e-2, "the LoRA changed the outputs"
    assert manager.resident() == ["detail"] and manager.adapter_loads == 1


@pytest.mark.parametrize(("te", "unet"), [(1.0, 0.5), (0.0, 1.2), (0.7, 0.0)])
def test_te_and_unet_multipliers_apply_to_their_own_parts(
    sd15: Any, models_dir: Path, reference_pipe: Any, te: float, unet: float
) -> None:
    tensors = build(sd15_layers(sd15.pipe), seed=3)
    write(models_dir / "Lora" / "style.safetensors", tensors)
    LoraManager(sd15.pipe, sd15.family).apply([LoraActivation(entry(models_dir, "style"), te=te, unet=unet)])
    reference = reference_pipe()
    merge_into(sd15_layers(reference), tensors, te=te, unet=unet)
    got, want = outputs(sd15.pipe), outputs(reference)
    assert max_diff(got, want) < TOLERANCE
    if te == 0.0:
        assert torch.equal(got[0], outputs(reference_pipe())[0]), "te 0 leaves the text encoder alone"


def test_two_loras_stack_like_two_a1111_merges(sd15: Any, models_dir: Path, reference_pipe: Any) -> None:
    first = build(sd15_layers(sd15.pipe), seed=1)
    second = build(
        sd15_layers(sd15.pipe, unet=SD15_UNET_LAYERS[:4]),
        lambda layer, g: lora_parts(layer, g, rank=3, alpha=2.0),
        seed=2,
    )
    write(models_dir / "Lora" / "a.safetensors", first)
    write(models_dir / "Lora" / "sub" / "b.safetensors", second)
    catalog = ExtraNetworksCatalog(models_dir)
    manager = LoraManager(sd15.pipe, sd15.family)
    manager.apply(
        [
            LoraActivation(catalog.resolve_lora("a"), 0.6, 0.9),
            LoraActivation(catalog.resolve_lora("b"), 1.0, 0.4),
        ]
    )
    reference = reference_pipe()
    merge_into(sd15_layers(reference), first, te=0.6, unet=0.9)
    merge_into(sd15_layers(reference), second, te=1.0, unet=0.4)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE


def test_a_name_written_twice_applies_twice(sd15: Any, models_dir: Path, reference_pipe: Any) -> None:
    tensors = build(sd15_layers(sd15.pipe), seed=4)
    write(models_dir / "Lora" / "twice.safetensors", tensors)
    LoraManager(sd15.pipe, sd15.family).apply([LoraActivation(entry(models_dir, "twice"), 0.5, 0.5, count=2)])
    reference = reference_pipe()
    for _ in range(2):
        merge_into(sd15_layers(reference), tensors, te=0.5, unet=0.5)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE


def _base_weights(module: torch.nn.Module) -> dict[str, bytes]:
    """Every base parameter and buffer's bytes, under its name without peft's ``base_layer``."""
    out = {}
    for name, tensor in module.state_dict().items():
        if "lora_" in name:
            continue
        out[name.replace(".base_layer", "")] = (
            tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
        )
    return out


def test_removing_every_lora_restores_every_base_weight_bit_exactly(sd15: Any, models_dir: Path) -> None:
    write(models_dir / "Lora" / "a.safetensors", build(sd15_layers(sd15.pipe), seed=1))
    pipe = sd15.pipe
    before = {c: _base_weights(getattr(pipe, c)) for c in ("unet", "text_encoder")}
    state_keys = set(pipe.unet.state_dict())
    base_out = outputs(pipe)
    manager = LoraManager(pipe, sd15.family)
    manager.apply([LoraActivation(entry(models_dir, "a"), 1.0, 1.0)])
    assert not torch.equal(outputs(pipe)[-1], base_out[-1])
    manager.deactivate()
    assert all(torch.equal(a, b) for a, b in zip(outputs(pipe), base_out, strict=True)), (
        "deactivated: bit-exact"
    )
    assert {c: _base_weights(getattr(pipe, c)) for c in ("unet", "text_encoder")} == before
    manager.unload_all()
    assert set(pipe.unet.state_dict()) == state_keys, "no peft wrapper is left"
    assert {c: _base_weights(getattr(pipe, c)) for c in ("unet", "text_encoder")} == before


def test_switching_weights_reads_no_file_and_loads_no_checkpoint(
    pipeline_cache: PipelineCache, models_dir: Path
) -> None:
    loaded = pipeline_cache.base("demo-tiny-sd15")
    write(models_dir / "Lora" / "a.safetensors", build(sd15_layers(loaded.pipe), seed=1))
    write(models_dir / "Lora" / "b.safetensors", build(sd15_layers(loaded.pipe), seed=2))
    catalog = ExtraNetworksCatalog(models_dir)
    a, b = catalog.resolve_lora("a"), catalog.resolve_lora("b")
    registry = LoraRegistry()
    manager = registry.manager_for(loaded.pipe, loaded.family)
    first = manager.apply([LoraActivation(a, 1.0, 1.0), LoraActivation(b, 0.5, 0.5)])
    assert first.loaded == ("a", "b")
    results = {}
    for te, unet in [(0.2, 0.3), (1.0, 1.0), (0.2, 0.3)]:
        job = pipeline_cache.base("demo-tiny-sd15")  # the next job asks the cache again
        again = registry.manager_for(job.pipe, job.family)
        assert again is manager
        report = again.apply([LoraActivation(a, te, unet), LoraActivation(b, 0.5, 0.5)])
        assert report.loaded == ()
        results.setdefault((te, unet), []).append(outputs(job.pipe))
    manager.apply([LoraActivation(b, 0.5, 0.5)])  # a no longer used: disabled, not dropped
    manager.apply([LoraActivation(a, 1.0, 1.0)])
    assert pipeline_cache.loads == 1
    assert manager.file_reads == 2 and manager.adapter_loads == 2
    assert manager.resident() == ["b", "a"]
    same = results[(0.2, 0.3)]
    assert all(torch.equal(x, y) for x, y in zip(same[0], same[1], strict=True)), "same weights, same output"


def test_least_recently_used_lora_is_evicted(sd15: Any, models_dir: Path) -> None:
    for index in range(3):
        write(models_dir / "Lora" / f"l{index}.safetensors", build(sd15_layers(sd15.pipe), seed=index))
    catalog = ExtraNetworksCatalog(models_dir)
    manager = LoraManager(sd15.pipe, sd15.family, max_resident=2)
    for index in range(3):
        report = manager.apply([LoraActivation(catalog.resolve_lora(f"l{index}"))])
    assert report.evicted == ("l0",) and manager.resident() == ["l1", "l2"]
    assert "sn_" not in " ".join(n for n, _ in sd15.pipe.unet.named_parameters() if "l0" in n)
    assert len(sd15.pipe.get_list_adapters()["unet"]) == 2, "the evicted adapter was deleted"
    manager.apply([LoraActivation(catalog.resolve_lora("l0"))])
    assert manager.file_reads == 4, "an evicted LoRA is read again when used again"


def test_sdxl_lora_with_sgm_names_and_both_text_encoders(
    pipeline_cache: PipelineCache, models_dir: Path, reference_pipe: Any
) -> None:
    loaded = pipeline_cache.base("demo-tiny-sdxl")
    tensors = build(
        sdxl_layers(loaded.pipe), lambda layer, g: lora_parts(layer, g, rank=2, alpha=4.0), seed=5
    )
    write(models_dir / "Lora" / "xl.safetensors", tensors, {"ss_base_model_version": "sdxl_base_v1-0"})
    manager = LoraManager(loaded.pipe, loaded.family)
    manager.apply([LoraActivation(entry(models_dir, "xl"), te=0.7, unet=1.1)])
    reference = reference_pipe("demo-tiny-sdxl")
    merge_into(sdxl_layers(reference), tensors, te=0.7, unet=1.1)
    assert max_diff(outputs(loaded.pipe, sdxl=True), outputs(reference, sdxl=True)) < TOLERANCE
    assert manager.adapter_loads == 1, "sgm names, te1 and te2 go through diffusers + peft"
    # diffusers 0.42 leaves SDXL's second text encoder's self_attn LoRA keys unplaced (silently):
    # that one module runs through the hook patcher, the rest through peft.
    assert manager.patcher.hooked_layers == 1


def test_derived_pipelines_share_the_loras(
    pipeline_cache: PipelineCache, models_dir: Path, reference_pipe: Any
) -> None:
    import diffusers
    from PIL import Image

    loaded = pipeline_cache.base("demo-tiny-sd15")
    before = pipeline_cache.img2img(loaded)  # made before the LoRA is applied
    tensors = build(sd15_layers(loaded.pipe), seed=6)
    write(models_dir / "Lora" / "a.safetensors", tensors)
    LoraManager(loaded.pipe, loaded.family).apply([LoraActivation(entry(models_dir, "a"), 0.9, 0.9)])
    inpaint = pipeline_cache.inpaint(loaded)  # made after
    reference = reference_pipe()
    merge_into(sd15_layers(reference), tensors, te=0.9, unet=0.9)
    image = Image.new("RGB", (64, 64), (120, 80, 200))
    kwargs = {
        "prompt": "a cat",
        "image": image,
        "num_inference_steps": 3,
        "strength": 0.6,
        "output_type": "latent",
    }
    got = before(**kwargs, generator=torch.Generator().manual_seed(0)).images
    ref_img2img = diffusers.StableDiffusionImg2ImgPipeline.from_pipe(reference)
    want = ref_img2img(**kwargs, generator=torch.Generator().manual_seed(0)).images
    assert (got - want).abs().max().item() < 1e-4
    assert inpaint.unet is loaded.pipe.unet and inpaint.text_encoder is loaded.pipe.text_encoder


def test_txt2img_with_two_loras_equals_the_merged_model(
    sd15: Any, models_dir: Path, reference_pipe: Any
) -> None:
    first, second = build(sd15_layers(sd15.pipe), seed=7), build(sd15_layers(sd15.pipe), seed=8)
    write(models_dir / "Lora" / "a.safetensors", first)
    write(models_dir / "Lora" / "b.safetensors", second)
    catalog = ExtraNetworksCatalog(models_dir)
    LoraManager(sd15.pipe, sd15.family).apply(
        [
            LoraActivation(catalog.resolve_lora("a"), 0.8, 0.8),
            LoraActivation(catalog.resolve_lora("b"), 0.3, 0.6),
        ]
    )
    reference = reference_pipe()
    merge_into(sd15_layers(reference), first, 0.8, 0.8)
    merge_into(sd15_layers(reference), second, 0.3, 0.6)
    call = {
        "prompt": "a lighthouse",
        "num_inference_steps": 4,
        "height": 64,
        "width": 64,
        "output_type": "latent",
    }
    got = sd15.pipe(**call, generator=torch.Generator().manual_seed(0)).images
    want = reference(**call, generator=torch.Generator().manual_seed(0)).images
    assert (got - want).abs().max().item() < 1e-4


def test_suspended_runs_without_loras_then_restores(sd15: Any, models_dir: Path) -> None:
    write(models_dir / "Lora" / "a.safetensors", build(sd15_layers(sd15.pipe), seed=1))
    base = outputs(sd15.pipe)
    manager = LoraManager(sd15.pipe, sd15.family)
    manager.apply([LoraActivation(entry(models_dir, "a"), 0.7, 0.7)])
    with_lora = outputs(sd15.pipe)
    with manager.suspended():
        assert all(torch.equal(a, b) for a, b in zip(outputs(sd15.pipe), base, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(outputs(sd15.pipe), with_lora, strict=True))
    assert manager.file_reads == 1


def test_sdxl_lora_on_sd15_is_refused_before_anything_loads(
    sd15: Any, pipeline_cache: PipelineCache, models_dir: Path
) -> None:
    xl = pipeline_cache.base("demo-tiny-sdxl")
    write(models_dir / "Lora" / "xl.safetensors", build(sdxl_layers(xl.pipe)))
    manager = LoraManager(sd15.pipe, sd15.family)
    with pytest.raises(ModelError, match=r"LoRA 'xl' was made for SDXL but the model is SD 1\.x"):
        manager.apply([LoraActivation(entry(models_dir, "xl"))])
    assert manager.file_reads == 0
    assert not hasattr(sd15.pipe.unet, "peft_config"), "nothing was loaded into the model"


def test_a_lora_for_other_layers_is_a_clear_error(sd15: Any, models_dir: Path) -> None:
    tensors = {"lora_unet_down_blocks_9_resnets_0_conv1.lora_down.weight": torch.zeros(2, 4, 3, 3)}
    tensors["lora_unet_down_blocks_9_resnets_0_conv1.lora_up.weight"] = torch.zeros(4, 2, 1, 1)
    write(models_dir / "Lora" / "elsewhere.safetensors", tensors)
    with pytest.raises(ModelError, match="patches no layer of this model"):
        LoraManager(sd15.pipe, sd15.family).apply([LoraActivation(entry(models_dir, "elsewhere"))])


def test_unmatched_modules_are_reported_and_the_rest_applies(sd15: Any, models_dir: Path) -> None:
    tensors = build(sd15_layers(sd15.pipe), seed=1)
    tensors["lora_unet_down_blocks_9_resnets_0_conv1.lora_down.weight"] = torch.zeros(2, 4, 3, 3)
    tensors["lora_unet_down_blocks_9_resnets_0_conv1.lora_up.weight"] = torch.zeros(4, 2, 1, 1)
    write(models_dir / "Lora" / "partial.safetensors", tensors)
    report = LoraManager(sd15.pipe, sd15.family).apply([LoraActivation(entry(models_dir, "partial"))])
    assert report.warnings == (
        "LoRA 'partial': 1 of 13 modules match no layer and were skipped "
        "(lora_unet_down_blocks_9_resnets_0_conv1)",
    )


def test_shapes_of_another_model_are_a_clear_error(sd15: Any, models_dir: Path) -> None:
    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    write(
        models_dir / "Lora" / "wide.safetensors",
        {f"{key}.lora_down.weight": torch.zeros(2, 640), f"{key}.lora_up.weight": torch.zeros(640, 2)},
    )
    with pytest.raises(ModelError, match=r"module .*attn1_to_q is 640x640 but layer .*to_q is 16x16"):
        LoraManager(sd15.pipe, sd15.family).apply([LoraActivation(entry(models_dir, "wide"))])


def test_registry_drops_a_manager_with_its_pipeline(pipeline_cache: PipelineCache, models_dir: Path) -> None:
    import gc

    registry = LoraRegistry()
    loaded = pipeline_cache.base("demo-tiny-sd15")
    registry.manager_for(loaded.pipe, loaded.family)
    assert len(registry) == 1
    pipeline_cache.clear()
    del loaded
    gc.collect()
    assert len(registry) == 0, "an evicted model's LoRA manager (and its adapters) is freed"


def test_a_new_lora_after_deactivating_is_active(sd15: Any, models_dir: Path, reference_pipe: Any) -> None:
    write(models_dir / "Lora" / "a.safetensors", build(sd15_layers(sd15.pipe), seed=1))
    second = build(sd15_layers(sd15.pipe), seed=2)
    write(models_dir / "Lora" / "b.safetensors", second)
    catalog = ExtraNetworksCatalog(models_dir)
    manager = LoraManager(sd15.pipe, sd15.family)
    manager.apply([LoraActivation(catalog.resolve_lora("a"))])
    manager.deactivate()
    manager.apply([LoraActivation(catalog.resolve_lora("b"), 0.7, 0.7)])
    reference = reference_pipe()
    merge_into(sd15_layers(reference), second, te=0.7, unet=0.7)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE


def test_a_unet_only_lora_stacks_with_a_text_encoder_lora(
    sd15: Any, models_dir: Path, reference_pipe: Any
) -> None:
    unet_only = build(sd15_layers(sd15.pipe, te=()), seed=3)
    te_only = build(sd15_layers(sd15.pipe, unet=()), seed=4)
    write(models_dir / "Lora" / "u.safetensors", unet_only)
    write(models_dir / "Lora" / "t.safetensors", te_only)
    catalog = ExtraNetworksCatalog(models_dir)
    manager = LoraManager(sd15.pipe, sd15.family)
    manager.apply(
        [
            LoraActivation(catalog.resolve_lora("u"), 0.5, 0.9),
            LoraActivation(catalog.resolve_lora("t"), 1.2, 0.3),
        ]
    )
    reference = reference_pipe()
    merge_into(sd15_layers(reference, te=()), unet_only, te=0.5, unet=0.9)
    merge_into(sd15_layers(reference, unet=()), te_only, te=1.2, unet=0.3)
    assert max_diff(outputs(sd15.pipe), outputs(reference)) < TOLERANCE
    assert manager.adapter_loads == 2
    manager.apply([LoraActivation(catalog.resolve_lora("t"), 1.2, 0.3)])
    base = reference_pipe()
    merge_into(sd15_layers(base, unet=()), te_only, te=1.2, unet=0.3)
    assert max_diff(outputs(sd15.pipe), outputs(base)) < TOLERANCE
