"""Demo models, sampler/schedule mapping and live previews, on the real tiny diffusers pipelines."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stablenew_qt.core.samplers import AUTOMATIC_SCHEDULE, SAMPLERS, SCHEDULERS
from stablenew_qt.engine import demo
from stablenew_qt.engine.demo import DEMO_MODELS, ensure_demo_model, is_current_demo_model, is_demo_model
from stablenew_qt.engine.previews import (
    TaesdPreviewer,
    latent_preview,
    taesd_folder,
)
from stablenew_qt.engine.schedulers import (
    CAPABILITIES,
    RULES,
    SIGMA_OPTIONS,
    make_scheduler,
    scheduler_label,
    scheduler_rule,
    scipy_available,
)

pytestmark = [
    # diffusers' schedulers pass torch tensors to numpy (np.array / np.log on tensors); numpy 2
    # deprecates the old __array__/__array_wrap__ signatures torch still uses. Not ours to fix.
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

PIPELINE_CLASSES = {
    "demo-tiny-sd15": "StableDiffusionPipeline",
    "demo-tiny-sdxl": "StableDiffusionXLPipeline",
    "demo-tiny-sdxl-refiner": "StableDiffusionXLImg2ImgPipeline",
    "demo-tiny-sd15-inpaint": "StableDiffusionInpaintPipeline",
    "demo-tiny-sdxl-inpaint": "StableDiffusionXLInpaintPipeline",
}
MEGABYTE = 1024 * 1024


def _diffusers() -> Any:
    """The diffusers module, untyped (mypy types its lazy top level as dummy objects)."""
    import diffusers

    return diffusers


def _scheduler(sampler: str, schedule: str) -> Any:
    return make_scheduler(_SD15_SCHEDULER, sampler, schedule)


def _load(name: str, folder: Path) -> Any:
    pipe = getattr(_diffusers(), PIPELINE_CLASSES[name]).from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _inputs(name: str) -> dict[str, Any]:
    """Extra call arguments: an init image for the refiner, image and mask for inpainting."""
    image = Image.new("RGB", (64, 64), (180, 90, 40))
    if name.endswith("refiner"):
        return {"image": image, "strength": 0.5}
    if name.endswith("inpaint"):
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (16, 16, 48, 48))
        return {"image": image, "mask_image": mask, "strength": 1.0}
    return {}


def _generate(pipe: Any, name: str, seed: int, steps: int = 2) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(seed)
    result = pipe(
        prompt="a lighthouse at dusk",
        num_inference_steps=steps,
        generator=generator,
        output_type="np",
        **_inputs(name),
    )
    return np.asarray(result.images[0])


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _weight_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.safetensors"))}


# -- demo models ------------------------------------------------------------------------------------


def test_every_demo_model_is_built_and_marked_as_random_weights(demo_models: dict[str, Path]) -> None:
    assert list(demo_models) == list(DEMO_MODELS)
    for name, folder in demo_models.items():
        assert folder.name == name
        assert is_demo_model(folder)
        assert is_current_demo_model(folder, name)
        assert "Random weights" in (folder / "README.md").read_text(encoding="utf-8")
        assert (folder / "model_index.json").is_file()
        assert list(folder.rglob("*.bin")) == [], "weights must be safetensors"
        assert _folder_bytes(folder) < MEGABYTE, f"{name} is {_folder_bytes(folder)} bytes"
    assert not [p for p in next(iter(demo_models.values())).parent.iterdir() if p.name.startswith(".")]


def test_building_again_gives_byte_identical_weights(demo_models: dict[str, Path], tmp_path: Path) -> None:
    state_before = torch.get_rng_state()
    for name, folder in demo_models.items():
        again = ensure_demo_model(name, tmp_path)
        assert _weight_files(again) == _weight_files(folder), name
    assert torch.equal(torch.get_rng_state(), state_before), "building must not disturb the caller's RNG"


def test_sdxl_base_and_refiner_share_vae_and_second_text_encoder(demo_models: dict[str, Path]) -> None:
    base, refiner = demo_models["demo-tiny-sdxl"], demo_models["demo-tiny-sdxl-refiner"]
    for part in ("vae/diffusion_pytorch_model.safetensors", "text_encoder_2/model.safetensors"):
        assert (base / part).read_bytes() == (refiner / part).read_bytes(), part


def test_ensure_reuses_a_current_folder_and_rebuilds_a_stale_one(tmp_path: Path) -> None:
    name = "demo-tiny-sd15"
    folder = ensure_demo_model(name, tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    built_at = weights.stat().st_mtime_ns
    assert ensure_demo_model(name, tmp_path) == folder
    assert weights.stat().st_mtime_ns == built_at

    marker = folder / demo.MARKER_FILE
    marker.write_text(json.dumps({"name": name, "version": demo.BUILDER_VERSION - 1}), encoding="utf-8")
    (folder / "leftover.txt").write_text("from an old build", encoding="utf-8")
    assert not is_current_demo_model(folder, name)
    assert ensure_demo_model(name, tmp_path) == folder
    assert is_current_demo_model(folder, name)
    assert not (folder / "leftover.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "no staging or stale folders left"


def test_a_builder_losing_the_race_uses_the_winners_folder(
    demo_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "demo-tiny-sd15"
    real_build = demo._BUILDERS[name]

    def build_then_lose(staging: Path) -> None:
        real_build(staging)
        shutil.copytree(demo_models[name], tmp_path / name)  # another process finishes first

    monkeypatch.setitem(demo._BUILDERS, name, build_then_lose)
    folder = ensure_demo_model(name, tmp_path)
    assert folder == tmp_path / name
    assert is_current_demo_model(folder, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_unknown_demo_name_lists_the_demo_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="demo-tiny-sd15, demo-tiny-sdxl"):
        ensure_demo_model("demo-tiny-sd3", tmp_path)


@pytest.mark.parametrize("name", DEMO_MODELS)
def test_demo_model_loads_and_generates_reproducibly(name: str, demo_models: dict[str, Path]) -> None:
    pipe = _load(name, demo_models[name])
    assert type(pipe).__name__ == PIPELINE_CLASSES[name]
    first = _generate(pipe, name, seed=7)
    assert first.shape == (64, 64, 3)
    assert np.isfinite(first).all()
    assert np.array_equal(first, _generate(pipe, name, seed=7)), "same seed must give identical pixels"
    assert not np.array_equal(first, _generate(pipe, name, seed=8))


@pytest.mark.parametrize("name", ["demo-tiny-sd15", "demo-tiny-sdxl"])
def test_default_size_is_64_px_with_a_vae_factor_of_8(name: str, demo_models: dict[str, Path]) -> None:
    pipe = _load(name, demo_models[name])
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64
    if "safety_checker" in pipe.components:
        assert pipe.safety_checker is None


def test_scheduler_configs_look_like_the_real_repositories(demo_models: dict[str, Path]) -> None:
    real = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
    real |= {"num_train_timesteps": 1000, "steps_offset": 1, "timestep_spacing": "leading"}
    for name, folder in demo_models.items():
        config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
        assert config["_class_name"] == ("EulerDiscreteScheduler" if "sdxl" in name else "PNDMScheduler")
        assert {key: config[key] for key in real} == real, name
    index = json.loads((demo_models["demo-tiny-sdxl-refiner"] / "model_index.json").read_text())
    assert index["requires_aesthetics_score"] is True
    assert index["text_encoder"] == [None, None] and index["tokenizer"] == [None, None]


TEXTS = [
    "a lighthouse at dusk, oil painting",
    "🙂🚀 emoji only",
    "猫が好き, 中文提示词, 한국어",
    "naïve café — Ω ≠ ∞",
    "control\x00chars\ttab\nnewline",
    "",
    "word " * 200,
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_tokenizers_map_any_text_to_valid_ids(text: str, demo_models: dict[str, Path]) -> None:
    from transformers import CLIPTextConfig, CLIPTokenizer

    folder = demo_models["demo-tiny-sdxl"]
    for tokenizer_dir, encoder_dir in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")):
        tokenizer = CLIPTokenizer.from_pretrained(folder / tokenizer_dir)
        vocab_size = CLIPTextConfig.from_pretrained(folder / encoder_dir).vocab_size
        assert tokenizer.model_max_length == 77
        ids = tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
        assert len(ids) == 77
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.eos_token_id in ids
        assert all(0 <= i < vocab_size for i in ids)
        if text.strip():
            assert len(set(ids) - {tokenizer.bos_token_id, tokenizer.eos_token_id}) > 0


# -- schedulers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd15(demo_models: dict[str, Path]) -> Any:
    """One loaded tiny SD 1.5 pipeline for the scheduler sweep; tests swap ``pipe.scheduler``."""
    return _load("demo-tiny-sd15", demo_models["demo-tiny-sd15"])


@pytest.fixture(scope="module")
def sd15_prompt(sd15: Any) -> dict[str, torch.Tensor]:
    """Pre-encoded prompts, so the sweep spends its time in the denoising loop."""
    positive, negative = sd15.encode_prompt("a lighthouse", "cpu", 1, True, "blurry")
    return {"prompt_embeds": positive, "negative_prompt_embeds": negative}


@pytest.mark.parametrize("schedule", SCHEDULERS)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_and_schedule_completes_a_generation(
    sampler: str, schedule: str, sd15: Any, sd15_prompt: dict[str, torch.Tensor]
) -> None:
    sd15.scheduler = make_scheduler(sd15.scheduler.config, sampler, schedule)
    image = sd15(
        **sd15_prompt, num_inference_steps=3, generator=torch.Generator().manual_seed(1), output_type="np"
    ).images[0]
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all()


def _config(sampler: str, schedule: str, base: Any = None) -> tuple[str, Any]:
    base = base if base is not None else _diffusers().PNDMScheduler.from_config(_SD15_SCHEDULER).config
    scheduler: Any = make_scheduler(base, sampler, schedule)
    return type(scheduler).__name__, scheduler.config


_SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}

MAPPINGS = [
    (
        "DPM++ 2M",
        "Karras",
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++", "solver_order": 2},
    ),
    (
        "DPM++ 2M",
        "Automatic",
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True, "use_exponential_sigmas": False},
    ),
    (
        "DPM++ 2M SDE",
        "Exponential",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_exponential_sigmas": True, "use_karras_sigmas": False},
    ),
    (
        "DPM++ 2M SDE",
        "Automatic",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_exponential_sigmas": True},
    ),
    ("DPM++ 2M SDE Heun", "Karras", "DPMSolverMultistepScheduler", {"solver_type": "heun"}),
    ("DPM++ 3M SDE", "Automatic", "DPMSolverMultistepScheduler", {"solver_order": 3}),
    ("DPM++ SDE", "Karras", "DPMSolverSinglestepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    ("Euler a", "Automatic", "EulerAncestralDiscreteScheduler", {"timestep_spacing": "linspace"}),
    ("Euler a", "SGM Uniform", "EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}),
    (
        "Euler a",
        "Karras",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 1, "use_karras_sigmas": True},
    ),
    (
        "Euler",
        "Automatic",
        "EulerDiscreteScheduler",
        {"timestep_spacing": "linspace", "use_karras_sigmas": False},
    ),
    ("Euler", "Simple", "EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    ("Euler", "Normal", "EulerDiscreteScheduler", {"timestep_spacing": "linspace"}),
    ("Euler", "DDIM", "EulerDiscreteScheduler", {"timestep_spacing": "leading", "steps_offset": 1}),
    ("Euler", "Polyexponential", "EulerDiscreteScheduler", {"use_exponential_sigmas": True}),
    ("Heun", "Karras", "HeunDiscreteScheduler", {"use_karras_sigmas": True}),
    ("DPM2", "Automatic", "KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    ("DPM2 a", "Exponential", "KDPM2AncestralDiscreteScheduler", {"use_exponential_sigmas": True}),
    ("DPM fast", "Karras", "DPMSolverSinglestepScheduler", {"use_exponential_sigmas": True}),
    ("Restart", "Automatic", "HeunDiscreteScheduler", {"use_karras_sigmas": True}),
    ("DDIM", "Karras", "DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1}),
    ("PLMS", "Automatic", "PNDMScheduler", {"skip_prk_steps": True}),
    ("UniPC", "Karras", "UniPCMultistepScheduler", {"solver_type": "bh1", "use_karras_sigmas": False}),
    ("LCM", "Automatic", "LCMScheduler", {}),
]


@pytest.mark.parametrize(("sampler", "schedule", "class_name", "expected"), MAPPINGS)
def test_specific_mappings(sampler: str, schedule: str, class_name: str, expected: dict[str, Any]) -> None:
    name, config = _config(sampler, schedule)
    assert name == class_name
    assert {key: config[key] for key in expected} == expected


def test_lms_and_beta_use_scipy_when_it_is_installed_and_fall_back_otherwise() -> None:
    lms, _ = _config("LMS", "Automatic")
    _, beta = _config("Euler", "Beta")
    if scipy_available():
        assert (lms, beta["use_beta_sigmas"]) == ("LMSDiscreteScheduler", True)
    else:
        assert lms == "DPMSolverMultistepScheduler"
        assert beta["use_beta_sigmas"] is False and beta["timestep_spacing"] == "linspace"


def test_model_training_schedule_is_kept_and_its_sigma_flags_are_overridden() -> None:
    base = (
        _diffusers()
        .EulerDiscreteScheduler.from_config(
            _SD15_SCHEDULER, prediction_type="v_prediction", use_karras_sigmas=True
        )
        .config
    )
    _, config = _config("Euler", "Exponential", base)
    assert config["prediction_type"] == "v_prediction"
    assert (config["beta_start"], config["beta_end"]) == (0.00085, 0.012)
    assert config["use_karras_sigmas"] is False and config["use_exponential_sigmas"] is True


def test_karras_sigmas_span_the_full_training_range_like_a1111() -> None:
    scheduler = _scheduler("DPM++ 2M", "Karras")
    scheduler.set_timesteps(10)
    sigma_min, sigma_max, rho = 0.0292, 14.6146, 7.0
    ramp = np.linspace(0, 1, 10)
    expected = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    np.testing.assert_allclose(scheduler.sigmas[:-1].numpy(), expected, rtol=2e-3)
    assert float(scheduler.sigmas[-1]) == 0.0


def test_automatic_means_kdiffusion_uniform_for_euler_and_leading_for_ddim() -> None:
    euler = _scheduler("Euler", "Automatic")
    euler.set_timesteps(4)
    assert euler.timesteps.tolist() == [999.0, 666.0, 333.0, 0.0]
    for schedule in ("Automatic", "Karras", "SGM Uniform"):
        ddim = _scheduler("DDIM", schedule)
        ddim.set_timesteps(20)
        assert ddim.timesteps.tolist() == list(range(951, 0, -50)), schedule  # A1111: range(0,1000,50)+1


def test_rules_cover_every_sampler_and_classes_accept_the_options_we_pass() -> None:
    diffusers = _diffusers()
    assert set(RULES) == set(SAMPLERS)
    for class_name, caps in CAPABILITIES.items():
        if class_name == "LMSDiscreteScheduler" and not scipy_available():
            continue  # a dummy class without scipy; its source still lists the options (see docs)
        parameters = inspect.signature(getattr(diffusers, class_name).__init__).parameters
        assert ("timestep_spacing" in parameters) == caps.timestep_spacing, class_name
        for kind in SIGMA_OPTIONS:
            assert (SIGMA_OPTIONS[kind] in parameters) == (kind in caps.sigmas), (class_name, kind)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_overrides_are_all_parameters_of_the_chosen_class(sampler: str) -> None:
    diffusers = _diffusers()
    for schedule in SCHEDULERS:
        rule, overrides = scheduler_rule(sampler, schedule)
        parameters = inspect.signature(getattr(diffusers, rule.class_name).__init__).parameters
        if "kwargs" not in parameters:  # scipy-less dummy classes take anything
            assert set(overrides) <= set(parameters), (sampler, schedule)


def test_unknown_names_raise_listing_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown sampler 'Euler b'.*DPM\+\+ 2M, DPM\+\+ SDE"):
        make_scheduler(_SD15_SCHEDULER, "Euler b", "Automatic")
    with pytest.raises(ValueError, match=r"unknown schedule type 'Sigmoid'.*Automatic, Uniform, Karras"):
        make_scheduler(_SD15_SCHEDULER, "Euler", "Sigmoid")
    with pytest.raises(
        ValueError, match="old combined name: use sampler 'DPM\\+\\+ 2M' with schedule 'Karras'"
    ):
        make_scheduler(_SD15_SCHEDULER, "DPM++ 2M Karras", "Automatic")
    with pytest.raises(ValueError, match="valid samplers"):
        scheduler_label("euler", "Automatic")


def test_scheduler_label_writes_the_resolved_schedule() -> None:
    assert scheduler_label("DPM++ 2M", "Automatic") == ("DPM++ 2M", "Karras")
    assert scheduler_label("DPM++ 3M SDE", "Automatic") == ("DPM++ 3M SDE", "Exponential")
    assert scheduler_label("Euler a", "Automatic") == ("Euler a", "Automatic")
    assert scheduler_label("Euler", "Beta") == ("Euler", "Beta")
    for sampler, schedule in AUTOMATIC_SCHEDULE.items():
        assert scheduler_label(sampler, "Automatic") == (sampler, schedule)


def test_docs_table_names_every_sampler_and_schedule() -> None:
    text = (Path(__file__).parents[2] / "docs" / "samplers.md").read_text(encoding="utf-8")
    for name in (*SAMPLERS, *SCHEDULERS):
        assert f"| {name} |" in text, name


# -- previews ---------------------------------------------------------------------------------------


def _direction(channel: int, size: int = 8) -> torch.Tensor:
    """A batch of two latents; the first is 1.0 along ``channel`` and 0 elsewhere."""
    latents = torch.zeros(2, 4, size, size + 4)
    latents[0, channel] = 1.0
    return latents


def test_cheap_preview_has_latent_size_and_sd15_channel_0_is_reddish_grey() -> None:
    latents = _direction(0)
    before = latents.clone()
    rng_before = torch.get_rng_state()
    image = latent_preview(latents, "sd15")
    assert image.mode == "RGB" and image.size == (12, 8)
    r, g, b = (int(v) for v in np.asarray(image)[3, 3])
    assert r > g and r > b and abs(g - b) <= 2 and 140 < r < 180  # [0.649, 0.604, 0.604] * 255
    assert torch.equal(latents, before)
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_cheap_preview_colours_follow_the_family_coefficients() -> None:
    sd15_ch3 = np.asarray(latent_preview(_direction(3), "sd15-inpaint"))[0, 0]
    assert sd15_ch3[2] < sd15_ch3[1] < sd15_ch3[0]  # channel 3 pulls blue down hardest: yellowish
    sdxl_ch0 = np.asarray(latent_preview(_direction(0), "sdxl"))[0, 0]
    assert sdxl_ch0[0] < sdxl_ch0[1] < sdxl_ch0[2]  # SDXL channel 0 is a bluish light grey
    zeros = latent_preview(torch.zeros(1, 4, 4, 4, dtype=torch.float16), "sdxl-refiner")
    assert (np.asarray(zeros) == 128).all()


def test_cheap_preview_rejects_unknown_families_and_shapes() -> None:
    with pytest.raises(ValueError, match="sd3"):
        latent_preview(torch.zeros(1, 4, 8, 8), "sd3")
    with pytest.raises(ValueError, match="batch, 4, height, width"):
        latent_preview(torch.zeros(1, 16, 8, 8), "sdxl")


def test_taesd_folder_by_family(tmp_path: Path) -> None:
    assert taesd_folder(tmp_path, "sdxl-refiner") == tmp_path / "VAE-approx" / "taesdxl"
    assert taesd_folder(tmp_path, "sd15-inpaint") == tmp_path / "VAE-approx" / "taesd"
    assert TaesdPreviewer.load(taesd_folder(tmp_path, "sd15"), "cpu", torch.float32) is None


def test_taesd_preview_decodes_to_full_size_without_touching_the_run(tmp_path: Path) -> None:
    folder = taesd_folder(tmp_path, "sd15")
    torch.manual_seed(0)
    _diffusers().AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    ).save_pretrained(folder)
    previewer = TaesdPreviewer.load(folder, "cpu", torch.float32)
    assert previewer is not None
    latents = torch.randn(2, 4, 8, 6)
    before = latents.clone()
    rng_before = torch.get_rng_state()
    image = previewer.preview(latents)
    assert image.mode == "RGB" and image.size == (48, 64)
    assert torch.equal(latents, before)
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_importing_these_engine_modules_stays_light() -> None:
    code = (
        "import json, sys\n"
        "import stablenew_qt.engine.demo, stablenew_qt.engine.schedulers, stablenew_qt.engine.previews\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = {m for m in json.loads(out.stdout) if m.split(".")[0] in {"torch", "diffusers", "transformers"}}
    assert not heavy
