"""LoRA tags and embeddings in real runs: the runner, DiffusersExecutor and the demo SD 1.5 model.

A run with ``<lora:detail:0.8>`` is compared with the same run where the LoRA was applied by hand
(a LoraManager the run does not know about) and with the plain run; the counters show that a
weight change reads no file and reloads no checkpoint, and that a bad tag fails before any load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lora_files import build, sd15_layers, sdxl_layers, write, write_pt_embedding

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.extra_networks.run_check import prompt_uses
from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.engine.conditioning import PromptEncoder
from stablenew_qt.engine.context import _CONDITIONING
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings
from stablenew_qt.engine.extra_networks_run import embedding_args_for, strip_tags
from stablenew_qt.engine.lora import LoraActivation, LoraManager


@pytest.fixture
def executor(models_dir: Path, demo_models: dict[str, Path]) -> DiffusersExecutor:
    demo_root = next(iter(demo_models.values())).parent
    return DiffusersExecutor(
        EngineSettings(models_dir=models_dir, device="cpu", demo_dir=demo_root)  # type: ignore[arg-type]
    )


@pytest.fixture
def detail(models_dir: Path, reference_pipe: Any) -> Path:
    """A kohya LoRA for the demo SD 1.5 model (UNet and text encoder)."""
    return write(models_dir / "Lora" / "detail.safetensors", build(sd15_layers(reference_pipe()), seed=5))


def _run(executor: DiffusersExecutor, tmp_path: Path, prompt: str, **data: Any) -> Any:
    config = {
        "prompt": prompt,
        "seed": 7,
        "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": 2},
        **data,
    }
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    result = runner.run(RunConfig.from_dict(config), CancelToken())
    assert result.status == "COMPLETED", result.error
    return result


def _pixels(result: Any) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


def test_a_lora_tag_changes_the_image_and_equals_the_lora_applied_by_hand(
    executor: DiffusersExecutor, detail: Path, tmp_path: Path
) -> None:
    plain = _pixels(_run(executor, tmp_path, "a lighthouse, "))
    tagged = _pixels(_run(executor, tmp_path, "a lighthouse, <lora:detail:0.8>"))
    assert np.abs(tagged - plain).max() > 0, "the LoRA changed the image"
    # By hand: the same LoRA through a manager the run knows nothing of, then an untagged run
    # (the tag's text is cut, so both runs encode "a lighthouse, ").
    by_hand = DiffusersExecutor(executor.settings)
    model = by_hand.context.cache.base("demo-tiny-sd15")
    entry = by_hand.context.extra_networks.catalog.resolve_lora("detail")
    LoraManager(model.pipe, model.family).apply([LoraActivation(entry, 0.8, 0.8)])
    assert np.array_equal(_pixels(_run(by_hand, tmp_path, "a lighthouse, ")), tagged)


def test_the_next_job_without_the_tag_is_the_base_image_bit_for_bit(
    executor: DiffusersExecutor, detail: Path, tmp_path: Path
) -> None:
    before = _pixels(_run(executor, tmp_path, "a lighthouse"))
    _run(executor, tmp_path, "a lighthouse <lora:detail:1>")
    after = _pixels(_run(executor, tmp_path, "a lighthouse"))
    assert np.array_equal(before, after)


def test_a_weight_change_reads_no_file_and_reloads_no_checkpoint(
    executor: DiffusersExecutor, detail: Path, tmp_path: Path
) -> None:
    first = _pixels(_run(executor, tmp_path, "a lighthouse <lora:detail:0.5>"))
    second = _pixels(_run(executor, tmp_path, "a lighthouse <lora:detail:1.2>"))
    ctx = executor.context
    manager = ctx.extra_networks.manager(ctx.cache.base("demo-tiny-sd15"))
    assert (manager.file_reads, ctx.cache.loads) == (1, 1)
    assert [a.unet for a in manager.active] == [1.2]
    assert np.abs(first - second).max() > 0


def test_infotext_and_manifest_record_the_lora(
    executor: DiffusersExecutor, detail: Path, tmp_path: Path
) -> None:
    result = _run(executor, tmp_path, "a lighthouse <lora:detail:0.8>")
    short = executor.context.extra_networks.catalog.lora_hash(
        executor.context.extra_networks.catalog.resolve_lora("detail")
    )
    parameters = read_image_metadata(result.image_paths[0]).parameters
    assert parameters.startswith("a lighthouse <lora:detail:0.8>\n"), "the prompt keeps its tag"
    assert f'Lora hashes: "detail: {short}"' in parameters
    assert "Lora files" not in parameters
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    (lora,) = manifest["stages"][0]["params"]["Lora files"]
    assert lora == {"name": "detail", "file": str(detail), "hash": short, "te": 0.8, "unet": 0.8, "count": 1}


def test_a_missing_lora_fails_before_any_model_loads(
    executor: DiffusersExecutor, detail: Path, tmp_path: Path
) -> None:
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    config = RunConfig.from_dict(
        {"prompt": "a <lora:detial:1>", "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64}}
    )
    with pytest.raises(ConfigError) as caught:
        runner.run(config, CancelToken())
    (problem,) = caught.value.problems
    assert problem.field == "prompt" and "detial" in problem.message and "detail" in problem.message
    assert executor.context.cache.loads == 0
    assert not (tmp_path / "runs").exists()


def test_a_lora_of_another_family_fails_before_any_model_loads(
    executor: DiffusersExecutor, models_dir: Path, reference_pipe: Any, tmp_path: Path
) -> None:
    write(models_dir / "Lora" / "xl_style.safetensors", build(sdxl_layers(reference_pipe("demo-tiny-sdxl"))))
    config = RunConfig.from_dict(
        {
            "prompt": "a cat",
            "txt2img": {
                "model": "demo-tiny-sd15",
                "width": 64,
                "height": 64,
                "hires_enabled": True,
                "hires_prompt": "a cat <lora:xl_style:1>",
            },
        }
    )
    with pytest.raises(ConfigError) as caught:
        executor.check_run(config)
    (problem,) = caught.value.problems
    assert problem.field == "txt2img.hires_prompt"
    assert "made for SDXL" in problem.message and "SD" in problem.message
    assert executor.context.cache.loads == 0


def test_hypernetwork_tags_are_a_warning_and_cut_from_the_prompt(
    executor: DiffusersExecutor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        tagged = _pixels(_run(executor, tmp_path, "a lighthouse <hypernet:anime:1>"))
    assert any("hypernetworks are not supported" in r.getMessage() for r in caplog.records)
    assert np.array_equal(tagged, _pixels(_run(executor, tmp_path, "a lighthouse ")))


def test_every_stage_prompt_is_checked() -> None:
    config = RunConfig.from_dict(
        {
            "prompt": "<lora:a:1>",
            "negative_prompt": "plain",
            "txt2img": {"model": "m", "hires_enabled": True, "hires_negative_prompt": "<lora:b:1>"},
            "img2img": {"enabled": True, "model": "other", "prompt": "<lora:c:1>"},
            "adetailer": {"enabled": True, "units": [{"adetailer_prompt": "<lora:d:1>"}]},
        }
    )
    assert [(u.field, u.model) for u in prompt_uses(config)] == [
        ("prompt", "m"),
        ("txt2img.hires_negative_prompt", "m"),
        ("img2img.prompt", "other"),
        ("adetailer.units.0.adetailer_prompt", "m"),
    ]
    assert strip_tags("a, <lora:a:1>, b") == "a, , b"


def test_embeddings_in_prompt_and_negative_change_the_conditioning(
    executor: DiffusersExecutor, models_dir: Path
) -> None:
    ctx = executor.context
    model = ctx.cache.base("demo-tiny-sd15")
    assert embedding_args_for(ctx, model) == {}, "no embedding installed: nothing to pass"
    width = model.pipe.text_encoder.get_input_embeddings().weight.shape[1]
    write_pt_embedding(models_dir / "embeddings" / "shiny.pt", torch.randn(2, width) * 3)
    ctx.extra_networks.catalog.refresh()
    args = embedding_args_for(ctx, model)
    assert set(args) == {"embeddings", "embedding_override"}
    with_ti = PromptEncoder.from_pipeline(model.pipe, **args)
    without = PromptEncoder.from_pipeline(model.pipe)
    for negative in (False, True):
        a = with_ti.encode_texts(["a shiny cat"], negative=negative)[0].crossattn
        b = without.encode_texts(["a shiny cat"], negative=negative)[0].crossattn
        assert (a - b).abs().max().item() > 1e-3
        same = with_ti.encode_texts(["a dull cat"], negative=negative)[0].crossattn
        assert torch.equal(same, without.encode_texts(["a dull cat"], negative=negative)[0].crossattn)
    assert ctx.extra_networks.embeddings.loads == 1
    embedding_args_for(ctx, model)
    assert ctx.extra_networks.embeddings.loads == 1, "loaded once per model"


def test_hires_and_unit_prompts_with_their_own_loras_are_checked_without_a_warning(
    executor: DiffusersExecutor, detail: Path
) -> None:
    config = RunConfig.from_dict(
        {
            "prompt": "a cat <lora:detail:1>",
            "txt2img": {
                "model": "demo-tiny-sd15",
                "hires_enabled": True,
                "hires_prompt": "a cat <lora:detail:0.5>",
            },
            "adetailer": {"enabled": True, "units": [{"adetailer_prompt": "a face <lora:detail:0.3>"}]},
        }
    )
    assert executor.check_run(config) == [], "per-pass tags are applied: nothing to warn about"
    bad = config.model_copy(
        update={"txt2img": config.txt2img.model_copy(update={"hires_prompt": "<lora:detial:1>"})}
    )
    with pytest.raises(ConfigError) as caught:
        executor.check_run(bad)
    assert [p.field for p in caught.value.problems] == ["txt2img.hires_prompt"]


def test_a_unit_with_its_own_checkpoint_checks_the_main_loras_it_takes_in() -> None:
    config = RunConfig.from_dict(
        {
            "prompt": "<lora:a:1>",
            "txt2img": {"model": "m"},
            "adetailer": {
                "enabled": True,
                "units": [
                    {
                        "adetailer_prompt": "x [SEP]",
                        "adetailer_use_checkpoint": True,
                        "adetailer_checkpoint": "c",
                    },
                    {"adetailer_prompt": "y", "adetailer_use_checkpoint": True, "adetailer_checkpoint": "c"},
                ],
            },
        }
    )
    uses = [(u.field, u.text, u.model) for u in prompt_uses(config)]
    assert uses == [("prompt", "<lora:a:1>", "m"), ("adetailer.units.0.adetailer_prompt", "<lora:a:1>", "c")]


def _hires_run(executor: DiffusersExecutor, tmp_path: Path, prompt: str, hires_prompt: str) -> Any:
    txt2img = {
        "model": "demo-tiny-sd15",
        "width": 64,
        "height": 64,
        "steps": 2,
        "hires_enabled": True,
        "hires_upscale_factor": 1.5,
        "hires_steps": 2,
        "hires_prompt": hires_prompt,
    }
    return _run(executor, tmp_path, prompt, txt2img=txt2img)


@pytest.fixture
def other(models_dir: Path, reference_pipe: Any) -> Path:
    """A second kohya LoRA for the demo SD 1.5 model."""
    return write(models_dir / "Lora" / "other.safetensors", build(sd15_layers(reference_pipe()), seed=6))


def _active_per_pass(
    executor: DiffusersExecutor, monkeypatch: pytest.MonkeyPatch, checkpoint: str = "demo-tiny-sd15"
) -> list[tuple[str, list]]:
    """Records, for every sampling pass, its label and the LoRAs active on ``checkpoint``."""
    from stablenew_qt.engine import denoise

    ctx = executor.context
    seen: list[tuple[str, list]] = []
    run_pass = denoise.run_pass

    def spy(*args: Any, **kwargs: Any) -> Any:
        model = ctx.cache.base(checkpoint)
        managers = ctx.extra_networks.loras._managers
        active = managers[model.pipe].active if model.pipe in managers else ()
        seen.append((kwargs["label"].split(":")[0], [(a.entry.name, a.unet) for a in active]))
        return run_pass(*args, **kwargs)

    monkeypatch.setattr(denoise, "run_pass", spy)
    return seen


def test_a_hires_prompt_lora_applies_to_the_hires_pass_only_and_equals_it_by_hand(
    executor: DiffusersExecutor, detail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stablenew_qt.engine.stages import txt2img

    plain = _pixels(_hires_run(executor, tmp_path, "a lighthouse", "a lighthouse "))
    seen = _active_per_pass(executor, monkeypatch)
    tagged = _pixels(_hires_run(executor, tmp_path, "a lighthouse", "a lighthouse <lora:detail:0.8>"))
    assert seen == [("txt2img", []), ("hires", [("detail", 0.8)])]
    assert np.abs(tagged - plain).max() > 0, "the hires prompt's LoRA changed the image"
    # By hand: the LoRA through a manager the run knows nothing of, for the hires pass only.
    by_hand = DiffusersExecutor(executor.settings)
    model = by_hand.context.cache.base("demo-tiny-sd15")
    entry = by_hand.context.extra_networks.catalog.resolve_lora("detail")
    hires = txt2img._hires

    def hires_with_the_lora(*args: Any) -> Any:
        # The run does not know this LoRA: its cached first-pass encodings (the negative) must go.
        model.derived.pop(_CONDITIONING)
        manager = LoraManager(model.pipe, model.family)
        manager.apply([LoraActivation(entry, 0.8, 0.8)])
        try:
            return hires(*args)
        finally:
            manager.unload_all()

    monkeypatch.setattr(txt2img, "_hires", hires_with_the_lora)
    assert np.array_equal(_pixels(_hires_run(by_hand, tmp_path, "a lighthouse", "a lighthouse ")), tagged)


def test_the_main_loras_come_back_after_the_hires_pass_and_both_are_in_the_infotext(
    executor: DiffusersExecutor, detail: Path, other: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _active_per_pass(executor, monkeypatch)
    result = _hires_run(executor, tmp_path, "a lighthouse <lora:detail:1>", "a lighthouse <lora:other:0.5>")
    assert seen == [("txt2img", [("detail", 1.0)]), ("hires", [("other", 0.5)])]
    ctx = executor.context
    manager = ctx.extra_networks.manager(ctx.cache.base("demo-tiny-sd15"))
    assert [(a.entry.name, a.unet) for a in manager.active] == [("detail", 1.0)], "restored"
    catalog = ctx.extra_networks.catalog
    hashes = {name: catalog.lora_hash(catalog.resolve_lora(name)) for name in ("detail", "other")}
    parameters = read_image_metadata(result.image_paths[0]).parameters
    assert f'Lora hashes: "detail: {hashes["detail"]}, other: {hashes["other"]}"' in parameters
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    files = manifest["stages"][0]["params"]["Lora files"]
    assert [(f["name"], f["unet"]) for f in files] == [("detail", 1.0), ("other", 0.5)]
    again = _hires_run(executor, tmp_path, "a lighthouse <lora:detail:1>", "a lighthouse <lora:other:0.5>")
    assert np.array_equal(_pixels(again), _pixels(result))
    assert (manager.file_reads, ctx.cache.loads) == (2, 1), "no file re-read, no checkpoint reload"
    # The same hires prompt as the main one changes nothing (A1111 reuses the first pass's networks).
    seen.clear()
    _hires_run(executor, tmp_path, "a lighthouse <lora:detail:1>", "")
    assert seen == [("txt2img", [("detail", 1.0)]), ("hires", [("detail", 1.0)])]


def test_lora_suspended_runs_the_block_without_loras_then_restores_them(
    executor: DiffusersExecutor, detail: Path, tmp_path: Path
) -> None:
    ctx = executor.context
    model = ctx.cache.base("demo-tiny-sd15")
    with ctx.lora_suspended(model):  # no manager yet: nothing happens, nothing is created
        pass
    assert len(ctx.extra_networks.loras) == 0
    _run(executor, tmp_path, "a lighthouse <lora:detail:0.7>")
    manager = ctx.extra_networks.manager(model)
    with ctx.lora_suspended(model):
        assert manager.active == ()
    assert [a.te for a in manager.active] == [0.7] and manager.file_reads == 1


def test_the_sdxl_refiner_encodes_its_prompt_without_the_base_loras(
    executor: DiffusersExecutor, models_dir: Path, reference_pipe: Any, tmp_path: Path
) -> None:
    from stablenew_qt.engine.conditioning import ConditioningOptions

    write(
        models_dir / "Lora" / "xl_style.safetensors",
        build(sdxl_layers(reference_pipe("demo-tiny-sdxl")), seed=2),
    )
    _run(
        executor,
        tmp_path,
        "a cat <lora:xl_style:1>",
        txt2img={
            "model": "demo-tiny-sdxl",
            "width": 64,
            "height": 64,
            "steps": 2,
            "refiner_enabled": True,
            "refiner_model_name": "demo-tiny-sdxl-refiner",
        },
    )
    ctx = executor.context
    base = ctx.cache.base("demo-tiny-sdxl")
    refiner = ctx.cache.refiner("demo-tiny-sdxl-refiner", base)
    manager = ctx.extra_networks.manager(base)
    assert [a.entry.name for a in manager.active] == ["xl_style"], "the LoRA is still on the base"
    with torch.no_grad():
        used = ctx.prompt_encoder(refiner, ConditioningOptions()).encode_texts(["a dog"])[0].crossattn
        assert manager.active, "restored after the encoding"
        patched = PromptEncoder.from_pipeline(refiner.pipe).encode_texts(["a dog"])[0].crossattn
        manager.deactivate()
        plain = PromptEncoder.from_pipeline(refiner.pipe).encode_texts(["a dog"])[0].crossattn
    assert torch.equal(used, plain)
    assert (patched - plain).abs().max().item() > 1e-4, "the LoRA does reach the shared text_encoder_2"


def test_a_text_encoder_lora_weight_change_is_not_served_from_the_conditioning_cache(
    executor: DiffusersExecutor, detail: Path
) -> None:
    from stablenew_qt.engine.conditioning import ConditioningOptions
    from stablenew_qt.engine.extra_networks_run import activate_for_prompt

    ctx = executor.context
    model = ctx.cache.base("demo-tiny-sd15")
    encode = lambda: ctx.prompt_encoder(model, ConditioningOptions()).encode_texts(["a cat"])[0].crossattn  # noqa: E731
    with torch.no_grad():
        plain = encode()
        activate_for_prompt(ctx, model, "<lora:detail:1>")
        strong = encode()
        activate_for_prompt(ctx, model, "<lora:detail:0.3>")
        weak = encode()
        activate_for_prompt(ctx, model, "")
        again = encode()
    assert (strong - plain).abs().max().item() > 1e-4 and (strong - weak).abs().max().item() > 1e-4
    assert torch.equal(again, plain)


def test_embeddings_a_run_cannot_use_are_a_warning_line(
    executor: DiffusersExecutor, models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_pt_embedding(models_dir / "embeddings" / "xlonly.pt", torch.randn(1, 1280))
    write_pt_embedding(models_dir / "embeddings" / "fits.pt", torch.randn(1, 32))
    with caplog.at_level(logging.WARNING):
        _run(executor, tmp_path, "a xlonly cat", negative_prompt="fits")
    lines = [r.getMessage() for r in caplog.records if "embedding" in r.getMessage()]
    assert any(line.startswith("embedding 'xlonly' does not fit this model") for line in lines)
    assert not any("'fits'" in line for line in lines), "an embedding that fits is no warning"


def test_an_embedding_in_a_run_changes_the_image_and_is_in_the_infotext(
    executor: DiffusersExecutor, models_dir: Path, tmp_path: Path
) -> None:
    import hashlib

    plain = _pixels(_run(executor, tmp_path, "a shiny cat"))
    shiny = write_pt_embedding(models_dir / "embeddings" / "shiny.pt", torch.randn(2, 32) * 3)
    executor.context.extra_networks.catalog.refresh()
    result = _run(executor, tmp_path, "a shiny cat")
    assert np.abs(_pixels(result) - plain).max() > 0
    digest = hashlib.sha256(shiny.read_bytes()).hexdigest()[:12]
    assert f'TI hashes: "shiny: {digest}"' in read_image_metadata(result.image_paths[0]).parameters


def test_ti_hashes_name_only_the_embeddings_the_prompts_use(
    executor: DiffusersExecutor, models_dir: Path
) -> None:
    import hashlib

    from stablenew_qt.engine.extra_networks_run import network_params

    shiny = write_pt_embedding(models_dir / "embeddings" / "shiny.pt", torch.randn(2, 32))
    write_pt_embedding(models_dir / "embeddings" / "unused.pt", torch.randn(1, 32))
    ctx = executor.context
    model = ctx.cache.base("demo-tiny-sd15")
    digest = hashlib.sha256(shiny.read_bytes()).hexdigest()[:12]
    assert network_params(ctx, model, "a Shiny cat", "blurry") == {"TI hashes": f"shiny: {digest}"}
    assert network_params(ctx, model, "a cat", "") == {}


def test_a_hires_checkpoint_gets_the_hires_pass_loras_and_gives_them_back(
    executor: DiffusersExecutor, detail: Path, models_dir: Path, reference_pipe: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # A1111 activates the hires pass's networks (the main prompt's, when the hires prompt is the
    # same) on the model loaded for that pass, the "Hires checkpoint".
    reference_pipe().save_pretrained(models_dir / "Stable-diffusion" / "other15")
    seen = _active_per_pass(executor, monkeypatch, "other15")
    txt2img = {
        "model": "demo-tiny-sd15",
        "width": 64,
        "height": 64,
        "steps": 2,
        "hires_enabled": True,
        "hires_steps": 2,
        "hires_checkpoint": "other15",
    }
    _run(executor, tmp_path, "a lighthouse <lora:detail:1>", txt2img=txt2img)
    assert seen == [("txt2img", []), ("hires", [("detail", 1.0)])]
    ctx = executor.context
    assert ctx.extra_networks.manager(ctx.cache.base("other15")).active == (), "given back"
    main = ctx.extra_networks.manager(ctx.cache.base("demo-tiny-sd15"))
    assert [(a.entry.name, a.unet) for a in main.active] == [("detail", 1.0)]


# -- ADetailer units: each inpaint with its prompt's LoRAs --------------------------------------

DATA = Path(__file__).parents[2] / "data"
FACES = [(30, 40, 110, 130), (150, 60, 230, 150)]
FACE_UNIT = {
    "adetailer_model": "face_tiny.pt",
    "adetailer_strength": 0.5,
    "adetailer_steps": 4,
    "adetailer_use_steps": True,
    "adetailer_mask_k": 1,
}


@pytest.fixture(scope="module")
def faces_image() -> Any:
    """Drawn faces the committed tiny detector finds (tests/tools/make_tiny_face_detector.py)."""
    import importlib.util
    import sys

    tool = Path(__file__).parents[2] / "tools" / "make_tiny_face_detector.py"
    spec = importlib.util.spec_from_file_location("make_tiny_face_detector", tool)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module.draw_faces_image(256, FACES, seed=5)


@pytest.fixture
def face_engine(models_dir: Path, demo_models: dict[str, Path], detail: Path) -> DiffusersExecutor:
    import shutil

    (models_dir / "adetailer").mkdir()
    detector = Path(shutil.copy(DATA / "face_tiny.pt", models_dir / "adetailer" / "face_tiny.pt"))
    settings = EngineSettings(
        models_dir=models_dir,
        device="cpu",  # type: ignore[arg-type]
        demo_dir=next(iter(demo_models.values())).parent,
        trusted_detectors=(detector,),
        trust_file=models_dir / "trust.json",
    )
    return DiffusersExecutor(settings)


def _adetailer(engine: DiffusersExecutor, image: Any, prompt: str, *unit_prompts: str, **unit: Any) -> Any:
    from stablenew_qt.core.executor import StagePayload
    from stablenew_qt.core.sequencer import StageExecution, StageName

    config = RunConfig.from_dict(
        {
            "prompt": prompt,
            "seed": 9,
            "txt2img": {"enabled": False, "model": "demo-tiny-sd15"},
            "img2img": {"enabled": True, "steps": 4, "denoise": 0.3},
            "adetailer": {
                "enabled": True,
                "units": [{**FACE_UNIT, **unit, "adetailer_prompt": p} for p in unit_prompts],
            },
        }
    )
    stage = StageExecution(StageName.ADETAILER, 1, config.adetailer)
    payload = StagePayload(config, config.prompt, config.negative_prompt, (config.seed,), (image,))
    return engine.generate_images(stage, payload, lambda *_a, **_k: None, CancelToken())


def test_a_unit_prompt_lora_changes_only_that_units_repaint_and_equals_it_by_hand(
    face_engine: DiffusersExecutor, faces_image: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _adetailer(face_engine, faces_image, "portrait photo", "a face", "a face ")
    seen = _active_per_pass(face_engine, monkeypatch)
    tagged = _adetailer(
        face_engine, faces_image, "portrait photo <lora:detail:0.5>", "a face", "a face <lora:detail:1>"
    )
    assert seen == [("ADetailer 1/2", []), ("ADetailer 2/2", [("detail", 1.0)])]
    ctx = face_engine.context
    manager = ctx.extra_networks.manager(ctx.cache.base("demo-tiny-sd15"))
    assert [(a.entry.name, a.unet) for a in manager.active] == [("detail", 0.5)], "the main prompt's again"
    out = np.asarray(tagged.images[0], dtype=np.int16)
    assert np.abs(out - np.asarray(plain.images[0], dtype=np.int16)).max() > 0
    catalog = ctx.extra_networks.catalog
    short = catalog.lora_hash(catalog.resolve_lora("detail"))
    assert tagged.info.params["Lora hashes"] == f"detail: {short}"
    assert [(f["name"], f["unet"]) for f in tagged.info.params["Lora files"]] == [("detail", 1.0)]
    # By hand: unit 1 plain, then unit 2 with the LoRA through a manager the run knows nothing of.
    by_hand = DiffusersExecutor(face_engine.settings)
    first = _adetailer(by_hand, faces_image, "portrait photo", "a face").images[0]
    model = by_hand.context.cache.base("demo-tiny-sd15")
    model.derived.pop(_CONDITIONING)  # encoded without the LoRA the run does not know about
    entry = by_hand.context.extra_networks.catalog.resolve_lora("detail")
    LoraManager(model.pipe, model.family).apply([LoraActivation(entry, 1.0, 1.0)])
    second = _adetailer(by_hand, first, "portrait photo", "a face ").images[0]
    assert np.array_equal(np.asarray(second, dtype=np.int16), out)
    again = _adetailer(
        face_engine, faces_image, "portrait photo <lora:detail:0.5>", "a face", "a face <lora:detail:1>"
    )
    assert np.array_equal(np.asarray(again.images[0], dtype=np.int16), out)
    assert (manager.file_reads, ctx.cache.loads) == (1, 1), "no file re-read, no checkpoint reload"


def test_a_blank_unit_prompt_brings_the_main_prompts_loras(
    face_engine: DiffusersExecutor, faces_image: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _active_per_pass(face_engine, monkeypatch)
    result = _adetailer(face_engine, faces_image, "portrait photo <lora:detail:0.7>", "", "[PROMPT], smile")
    assert seen == [("ADetailer 1/2", [("detail", 0.7)]), ("ADetailer 2/2", [("detail", 0.7)])]
    assert [(f["name"], f["unet"]) for f in result.info.params["Lora files"]] == [("detail", 0.7)]


def test_a_unit_with_its_own_checkpoint_gets_its_loras_on_that_checkpoint(
    face_engine: DiffusersExecutor, faces_image: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = {"adetailer_use_checkpoint": True, "adetailer_checkpoint": "demo-tiny-sd15-inpaint"}
    config_check = RunConfig.from_dict(
        {
            "prompt": "portrait photo <lora:detail:0.5>",
            "txt2img": {"enabled": False, "model": "demo-tiny-sd15"},
            "img2img": {"enabled": True},
            "adetailer": {
                "enabled": True,
                "units": [{**FACE_UNIT, **own, "adetailer_prompt": "a face <lora:detail:1>"}],
            },
        }
    )
    assert face_engine.check_run(config_check) == []
    seen = _active_per_pass(face_engine, monkeypatch, "demo-tiny-sd15-inpaint")
    _adetailer(face_engine, faces_image, "portrait photo <lora:detail:0.5>", "a face <lora:detail:1>", **own)
    assert seen == [("ADetailer 1/1", [("detail", 1.0)])]
    ctx = face_engine.context
    networks = ctx.extra_networks
    inpaint = networks.manager(ctx.cache.base("demo-tiny-sd15-inpaint"))
    assert inpaint.active == (), "the unit's checkpoint is back to no LoRA"
    main = networks.manager(ctx.cache.base("demo-tiny-sd15"))
    assert [(a.entry.name, a.unet) for a in main.active] == [("detail", 0.5)], (
        "the main checkpoint kept its own"
    )
