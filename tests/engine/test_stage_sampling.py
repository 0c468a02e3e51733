"""The stages run A1111's sampling loop and prompt encoder: each pass equals a hand-built
``ksampling.sample`` call, bit for bit, on the demo models (CPU, fp32).

The hand-built side loads its own copy of the demo pipeline and uses only the libraries' public
pieces (``DenoiserModel.from_pipeline``, ``PromptEncoder.from_pipeline``, ``ImageNoise``,
``sample``) and diffusers' own VAE decode, so a stage that fed the loop anything else (other
noise, other conditioning, other step counts, other time ids) fails the comparison.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner, RunResult
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.engine import denoise
from stablenew_qt.engine.conditioning import ConditioningOptions, PromptEncoder
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings
from stablenew_qt.engine.ksampling import (
    DenoiserModel,
    ImageNoise,
    NoiseSpec,
    RefinerSwitch,
    SamplingConds,
    sample,
)
from stablenew_qt.engine.sampling import upscale_latents

SD15 = "demo-tiny-sd15"
SDXL = "demo-tiny-sdxl"
REFINER = "demo-tiny-sdxl-refiner"
PROMPT = "a red apple on a table"
NEGATIVE = "blurry"


@pytest.fixture(scope="module")
def executor(demo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> DiffusersExecutor:
    models_dir = tmp_path_factory.mktemp("models")
    demo_root = next(iter(demo_models.values())).parent
    settings = EngineSettings(models_dir=models_dir, device="cpu", preview_every=2, demo_dir=demo_root)
    return DiffusersExecutor(settings)


@pytest.fixture(scope="module")
def hand(demo_models: dict[str, Path]) -> dict[str, Any]:
    """Independent copies of the demo pipelines for the hand-built passes."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    sdxl = StableDiffusionXLPipeline.from_pretrained(demo_models[SDXL], dtype=torch.float32)
    refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
        demo_models[REFINER], dtype=torch.float32, text_encoder_2=sdxl.text_encoder_2, vae=sdxl.vae
    )
    return {
        SD15: StableDiffusionPipeline.from_pretrained(demo_models[SD15], dtype=torch.float32),
        SDXL: sdxl,
        REFINER: refiner,
    }


def _config(**sections: Any) -> RunConfig:
    base: dict[str, Any] = {
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE,
        "seed": 42,
        "txt2img": {
            "model": SD15,
            "width": 64,
            "height": 64,
            "steps": 4,
            "sampler": "Euler",
            "scheduler": "Automatic",
        },
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return RunConfig.from_dict(base)


def _run(executor: DiffusersExecutor, config: RunConfig, tmp_path: Path) -> tuple[RunResult, list[object]]:
    events: list[object] = []
    result = PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(
        config, CancelToken(), emit=events.append
    )
    assert result.status == "COMPLETED", result.error
    return result, events


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _decode(pipe: Any, latents: torch.Tensor) -> Image.Image:
    """diffusers' own decode, written out (not engine.denoise's)."""
    with torch.no_grad():
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    image: Image.Image = pipe.image_processor.postprocess(decoded, output_type="pil")[0]
    return image


def _conds(
    pipe: Any, prompt: str, negative: str, steps: int, size: tuple[int, int], **kwargs: Any
) -> SamplingConds:
    batch = PromptEncoder.from_pipeline(pipe, **kwargs).encode_batch([prompt], [negative], steps)
    if getattr(pipe, "text_encoder_2", None) is None:
        return SamplingConds(batch)
    w, h = size
    if getattr(pipe, "text_encoder", None) is None:  # the refiner: aesthetic scores 6.0 / 2.5
        return SamplingConds(batch, torch.tensor([h, w, 0, 0, 6.0]), torch.tensor([h, w, 0, 0, 2.5]))
    ids = torch.tensor([h, w, 0, 0, h, w], dtype=torch.float32)
    return SamplingConds(batch, ids, ids)


def _noise(seed: int, size: tuple[int, int], **spec: Any) -> ImageNoise:
    return ImageNoise(NoiseSpec(seeds=(seed,), **spec), (4, size[1] // 8, size[0] // 8), "cpu")


def _txt2img_latents(
    pipe: Any, size: tuple[int, int] = (64, 64), sampler: str = "Euler", **kw: Any
) -> torch.Tensor:
    conds = _conds(pipe, PROMPT, NEGATIVE, 4, size)
    return sample(
        DenoiserModel.from_pipeline(pipe),
        sampler,
        "Automatic",
        4,
        conds,
        _noise(42, size),
        cfg_scale=7.0,
        **kw,
    )


@pytest.mark.parametrize(("model", "size"), [(SD15, (64, 64)), (SDXL, (64, 96))])
def test_txt2img_equals_a_hand_built_sample_call(executor, hand, tmp_path: Path, model: str, size) -> None:
    config = _config(txt2img={"model": model, "width": size[0], "height": size[1]})
    result, _ = _run(executor, config, tmp_path)
    expected = _decode(hand[model], _txt2img_latents(hand[model], size))
    assert np.array_equal(_pixels(result.images[0]), _pixels(expected))


def test_img2img_equals_a_hand_built_sample_call_with_noise_multiplier(
    executor, hand, tmp_path: Path
) -> None:
    config = _config(
        img2img={"enabled": True, "steps": 6, "denoise": 0.5, "noise_multiplier": 0.8, "seed": 5}
    )
    result, events = _run(executor, config, tmp_path)
    pipe = hand[SD15]
    first = _decode(pipe, _txt2img_latents(pipe))
    pixels = pipe.image_processor.preprocess(first, height=64, width=64)
    with torch.no_grad():
        init = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
    conds = _conds(pipe, PROMPT, NEGATIVE, 6, (64, 64))
    latents = sample(
        DenoiserModel.from_pipeline(pipe), "Euler", "Automatic", 6, conds, _noise(5, (64, 64)),
        cfg_scale=7.0, init_latents=init, denoise=0.5, noise_multiplier=0.8,
    )  # fmt: skip
    assert np.array_equal(_pixels(result.images[0]), _pixels(_decode(pipe, latents)))
    steps = [e.step for e in events if isinstance(e, ev.StepProgress) and e.stage is StageName.IMG2IMG]
    assert steps == [1, 2, 3, 4], "A1111: int(0.5 * 6) + 1 steps"
    plain, _ = _run(
        executor, _config(img2img={"enabled": True, "steps": 6, "denoise": 0.5, "seed": 5}), tmp_path
    )
    assert not np.array_equal(_pixels(plain.images[0]), _pixels(result.images[0])), "the multiplier matters"


def test_hires_with_overrides_equals_hand_built_passes(executor, hand, tmp_path: Path) -> None:
    config = _config(
        txt2img={
            "hires_enabled": True,
            "hires_upscale_factor": 2.0,
            "hires_denoise": 0.6,
            "hires_steps": 3,
            "hires_sampler": "DPM++ 2M",
            "hires_scheduler": "Karras",
            "hires_prompt": "a [green:yellow:2] pear",
            "hires_negative_prompt": "dark",
        }
    )
    result, events = _run(executor, config, tmp_path)
    pipe = hand[SD15]
    first = _txt2img_latents(pipe)
    init = upscale_latents(first, "Latent", (16, 16))
    batch = PromptEncoder.from_pipeline(pipe).encode_batch(["a [green:yellow:2] pear"], ["dark"], 4, 3)
    model, noise = DenoiserModel.from_pipeline(pipe), _noise(42, (128, 128))
    latents = sample(
        model, "DPM++ 2M", "Karras", 3, SamplingConds(batch), noise,
        cfg_scale=7.0, init_latents=init, denoise=0.6, fixed_steps=True,
    )  # fmt: skip
    assert np.array_equal(_pixels(result.images[0]), _pixels(_decode(pipe, latents)))
    labels = [e.label for e in events if isinstance(e, ev.StepProgress) and e.stage is StageName.TXT2IMG]
    assert labels == ["txt2img"] * 4 + ["hires"] * 3, "A1111 runs exactly the hires steps"


def test_refiner_switch_inside_the_run_equals_hand_built(executor, hand, tmp_path: Path) -> None:
    config = _config(
        txt2img={
            "model": SDXL,
            "refiner_enabled": True,
            "refiner_model_name": REFINER,
            "refiner_switch_at": 0.5,
        }
    )
    result, events = _run(executor, config, tmp_path)
    switch = RefinerSwitch(
        DenoiserModel.from_pipeline(hand[REFINER]), _conds(hand[REFINER], PROMPT, NEGATIVE, 4, (64, 64)), 0.5
    )
    latents = _txt2img_latents(hand[SDXL], refiner=switch)
    assert np.array_equal(_pixels(result.images[0]), _pixels(_decode(hand[SDXL], latents)))
    no_refiner = _decode(hand[SDXL], _txt2img_latents(hand[SDXL]))
    assert not np.array_equal(_pixels(result.images[0]), _pixels(no_refiner)), "the refiner ran"
    labels = [e.label for e in events if isinstance(e, ev.StepProgress)]
    assert labels[0] == "txt2img" and labels[-1] == "refiner" and len(labels) == 4


def test_prompt_weighting_changes_the_image_and_weight_one_does_not(executor, tmp_path: Path) -> None:
    plain = _run(executor, _config(prompt="a cat on a table"), tmp_path)[0].images[0]
    one = _run(executor, _config(prompt="a (cat:1.0) on a table"), tmp_path)[0].images[0]
    heavy = _run(executor, _config(prompt="a (cat:1.6) on a table"), tmp_path)[0].images[0]
    assert np.array_equal(_pixels(plain), _pixels(one)), "(cat:1.0) is cat"
    assert not np.array_equal(_pixels(plain), _pixels(heavy))


def test_long_prompt_and_break_make_two_chunks_and_run(executor, tmp_path: Path) -> None:
    ctx = executor.context
    encoder = ctx.prompt_encoder(ctx.cache.base(SD15), ConditioningOptions())
    clip = encoder.encoders[0]
    # the demo tokenizer is tiny: build a prompt of exactly 100 tokens from one-token words
    word = next(w for w in ("a", "x", "b") if len(clip.tokenize([w])[0]) == 1)
    long_prompt = " ".join([word] * 100)
    assert len(clip.tokenize([long_prompt])[0]) == 100
    broken = "a red apple BREAK on a table"
    images = []
    for prompt in (long_prompt, broken):
        cond = encoder.encode_prompt(prompt, 4).parts[0][0].entries[0][1]
        assert cond.crossattn.shape[0] == 2 * 77, prompt
        result, _ = _run(executor, _config(prompt=prompt), tmp_path)
        images.append(_pixels(result.images[0]))
    short = _run(executor, _config(prompt=" ".join([word] * 75)), tmp_path)[0].images[0]
    assert not np.array_equal(images[0], _pixels(short)), "the tokens past 75 reach the UNet"


def test_clip_skip_2_on_sd15_runs_and_changes_the_image(executor, tmp_path: Path) -> None:
    skip1 = _run(executor, _config(), tmp_path)[0].images[0]
    skip2 = _run(executor, _config(txt2img={"clip_skip": 2}), tmp_path)[0].images[0]
    assert not np.array_equal(_pixels(skip1), _pixels(skip2))


def test_variation_seed_changes_the_image_and_strength_zero_does_not(executor, tmp_path: Path) -> None:
    base = _run(executor, _config(), tmp_path)[0].images[0]
    zero = _run(executor, _config(subseed=1234, subseed_strength=0.0), tmp_path)[0].images[0]
    varied = _run(executor, _config(subseed=1234, subseed_strength=0.5), tmp_path)[0]
    assert np.array_equal(_pixels(base), _pixels(zero))
    assert not np.array_equal(_pixels(base), _pixels(varied.images[0]))
    other = _run(executor, _config(subseed=1235, subseed_strength=0.5), tmp_path)[0].images[0]
    assert not np.array_equal(_pixels(varied.images[0]), _pixels(other))


def test_rng_cpu_and_gpu_are_the_same_noise_on_a_cpu_device(executor, tmp_path: Path) -> None:
    """Documented: "GPU" draws on the device's own generator, which on a CPU device is the CPU's."""
    gpu = _run(executor, _config(rng_source="GPU"), tmp_path)[0].images[0]
    cpu = _run(executor, _config(rng_source="CPU"), tmp_path)[0].images[0]
    nv = _run(executor, _config(rng_source="NV"), tmp_path)[0].images[0]
    assert np.array_equal(_pixels(gpu), _pixels(cpu))
    assert not np.array_equal(_pixels(gpu), _pixels(nv)), "NV is Philox, not the CPU generator"


def test_second_run_encodes_no_prompt(executor, tmp_path: Path) -> None:
    config = _config(prompt="a blue [cube:sphere:2]")
    _run(executor, config, tmp_path)
    ctx = executor.context
    cache = ctx.prompt_encoder(ctx.cache.base(SD15), ConditioningOptions()).cache
    misses = cache.misses
    _run(executor, config, tmp_path)
    assert cache.misses == misses and cache.hits > 0


def test_previews_come_from_the_sampler_steps(executor, tmp_path: Path) -> None:
    _, events = _run(executor, _config(txt2img={"steps": 4}), tmp_path)
    previews = [e for e in events if isinstance(e, ev.StepProgress) and e.preview is not None]
    assert [e.step for e in previews] == [2, 4], "preview_every=2"
    assert all(isinstance(p.preview, Image.Image) for p in previews)


def _offloaded_latents(folder: Path, mode: str, device: str) -> torch.Tensor:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=torch.float32)
    if mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    loaded = SimpleNamespace(pipe=pipe, scheduler_config=dict(pipe.scheduler.config))
    model = denoise.denoiser_for(loaded)  # type: ignore[arg-type]
    conds = _conds(pipe, PROMPT, NEGATIVE, 4, (64, 64))
    noise = ImageNoise(NoiseSpec(seeds=(42,), source="CPU"), (4, 8, 8), model.device)
    return sample(model, "Euler", "Automatic", 4, conds, noise, cfg_scale=7.0).cpu()


def test_model_cpu_offload_hooks_give_the_same_latents(demo_models: dict[str, Path], hand) -> None:
    """Calling ``pipe.unet`` and the text encoders directly goes through accelerate's offload
    hooks (here with the CPU as the execution device; on CUDA the hooks move them to the GPU)."""
    assert torch.equal(_offloaded_latents(demo_models[SD15], "model", "cpu"), _txt2img_latents(hand[SD15]))


@pytest.mark.gpu
def test_sequential_cpu_offload_runs_on_cuda(demo_models: dict[str, Path]) -> None:
    """Sequential offload leaves the weights on the meta device between calls; the loop and the
    encoder must work from the execution device. (accelerate cannot offload sequentially to a CPU
    execution device at all, diffusers' own pipeline call included, so this needs a GPU.)"""
    reference = _offloaded_latents(demo_models[SD15], "model", "cuda")
    sequential = _offloaded_latents(demo_models[SD15], "sequential", "cuda")
    assert torch.allclose(sequential, reference, atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "calls"),
    [
        ({}, 4),
        ({"txt2img": {"enabled": False}, "img2img": {"enabled": True, "steps": 4, "denoise": 0.8}}, 4),
    ],
    ids=["txt2img", "img2img"],
)
def test_prompt_editing_switches_at_a1111s_denoiser_steps(
    executor, tmp_path: Path, overrides: dict[str, Any], calls: int
) -> None:
    """A hook on the UNet sees the texts A1111 feeds. Its schedule for 4 steps counts steps from 1
    (``[cat:dog:1]``: cat up to step 1; ``[red|blue]``: red at odd steps), giving (1, cat red),
    (2, dog blue), (3, dog red), (4, dog blue); its CFG denoiser counts calls from 0 and takes the
    first entry ending at or after the call: cat red, cat red, dog blue, dog red. img2img counts
    its own calls from 0 over a schedule of its nominal steps, as A1111 does."""
    source = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (120, 80, 40)).save(source)
    prompt = "a [cat:dog:1] [red|blue]"
    config = _config(prompt=prompt, input_image_path=str(source), **overrides)
    ctx = executor.context
    loaded = ctx.cache.base(SD15)
    seen: list[torch.Tensor] = []
    handle = loaded.pipe.unet.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["encoder_hidden_states"][0].clone()), with_kwargs=True
    )
    try:
        _run(executor, config, tmp_path)
    finally:
        handle.remove()
    assert len(seen) == calls
    encoder = ctx.prompt_encoder(loaded, ConditioningOptions())
    texts = ["a cat red", "a cat blue", "a dog red", "a dog blue"]
    expected = [encoder.encode_schedule(t, 4).entries[0][1].crossattn for t in texts]
    schedule = encoder.encode_prompt(prompt, 4).parts[0][0]
    for step, row in enumerate(seen):
        want = schedule.at(step).crossattn
        assert torch.equal(row, want.to(row)), step
    order = [next(i for i, e in enumerate(expected) if torch.allclose(r, e, atol=1e-5)) for r in seen]
    assert [texts[i] for i in order] == ["a cat red", "a cat red", "a dog blue", "a dog red"]


def test_img2img_on_the_sdxl_refiner_uses_its_one_encoder_and_aesthetic_ids(
    executor, hand, tmp_path: Path
) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (30, 140, 200)).save(source)
    config = _config(
        input_image_path=str(source),
        txt2img={"enabled": False, "model": SDXL},
        img2img={"enabled": True, "model": REFINER, "steps": 4, "denoise": 0.6, "seed": 8},
    )
    result, _ = _run(executor, config, tmp_path)
    pipe = hand[REFINER]
    pixels = pipe.image_processor.preprocess(Image.open(source).convert("RGB"), height=64, width=64)
    with torch.no_grad():
        init = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
    conds = _conds(pipe, PROMPT, NEGATIVE, 4, (64, 64))
    latents = sample(
        DenoiserModel.from_pipeline(pipe), "Euler", "Automatic", 4, conds, _noise(8, (64, 64)),
        cfg_scale=7.0, init_latents=init, denoise=0.6,
    )  # fmt: skip
    assert np.array_equal(_pixels(result.images[0]), _pixels(_decode(pipe, latents)))


def test_variation_batch_keeps_the_seed_and_steps_the_variation_seed(executor, tmp_path: Path) -> None:
    """A1111: with a variation seed on, image i of a batch has the seed and variation seed + i,
    so image 1 of a batch is the single image with variation seed + 1."""
    batch = _run(executor, _config(batch_size=2, subseed=1234, subseed_strength=0.5), tmp_path)[0]
    assert batch.seeds == (42, 42)
    a, b = (_pixels(im) for im in batch.images)
    assert not np.array_equal(a, b)
    single = _run(executor, _config(subseed=1235, subseed_strength=0.5), tmp_path)[0].images[0]
    assert np.array_equal(b, _pixels(single))


# -- A1111's "Hires checkpoint" ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_sd15(demo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A models folder with a second SD 1.5 checkpoint: the demo's with other UNet weights."""
    from diffusers import StableDiffusionPipeline

    models_dir = tmp_path_factory.mktemp("hires-models")
    pipe = StableDiffusionPipeline.from_pretrained(demo_models[SD15], dtype=torch.float32)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in pipe.unet.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    pipe.save_pretrained(models_dir / "Stable-diffusion" / "other15")
    return models_dir, pipe


def test_hires_checkpoint_runs_the_second_pass_on_that_model(
    other_sd15: tuple[Path, Any], demo_models: dict[str, Path], hand, tmp_path: Path
) -> None:
    models_dir, other = other_sd15
    demo_root = next(iter(demo_models.values())).parent
    executor = DiffusersExecutor(EngineSettings(models_dir=models_dir, device="cpu", demo_dir=demo_root))
    hires = {"hires_enabled": True, "hires_upscale_factor": 2.0, "hires_denoise": 0.6, "hires_steps": 3}
    config = _config(txt2img={**hires, "hires_checkpoint": "other15"})
    result, _ = _run(executor, config, tmp_path)
    # A1111: the first pass on the base, the hires pass (conds, UNet, decode) on the hires checkpoint.
    first = _txt2img_latents(hand[SD15])
    init = upscale_latents(first, "Latent", (16, 16))
    batch = PromptEncoder.from_pipeline(other).encode_batch([PROMPT], [NEGATIVE], 4, 3)
    latents = sample(
        DenoiserModel.from_pipeline(other), "Euler", "Automatic", 3, SamplingConds(batch),
        _noise(42, (128, 128)), cfg_scale=7.0, init_latents=init, denoise=0.6, fixed_steps=True,
    )  # fmt: skip
    assert np.array_equal(_pixels(result.images[0]), _pixels(_decode(other, latents)))
    same = _run(executor, _config(txt2img=hires), tmp_path)[0].images[0]
    assert not np.array_equal(_pixels(result.images[0]), _pixels(same)), "the hires checkpoint ran"
    text = result.image_paths[0].read_bytes()
    assert b"Hires checkpoint: other15" in text


def test_a_hires_checkpoint_of_another_family_is_refused_before_anything_loads(
    executor, tmp_path: Path
) -> None:
    config = _config(txt2img={"hires_enabled": True, "hires_checkpoint": SDXL})
    loads = executor.context.cache.loads
    with pytest.raises(ConfigError, match="choose a hires checkpoint of the same family") as caught:
        PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert [p.field for p in caught.value.problems] == ["txt2img.hires_checkpoint"]
    assert executor.context.cache.loads == loads and not (tmp_path / "runs").exists()


def test_an_sd15_base_with_an_sdxl_refiner_is_refused_before_anything_loads(executor, tmp_path: Path) -> None:
    # Issue 17, item 4: this passed validation and failed only after loading the base.
    config = _config(txt2img={"refiner_enabled": True, "refiner_model_name": REFINER})
    loads = executor.context.cache.loads
    with pytest.raises(ConfigError, match="an SDXL refiner works only after an SDXL base") as caught:
        PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert [p.field for p in caught.value.problems] == ["txt2img.refiner_model_name"]
    assert executor.context.cache.loads == loads
    sdxl = _config(txt2img={"model": SDXL, "refiner_enabled": True, "refiner_model_name": REFINER})
    assert executor.check_run(sdxl) == [], "an SDXL base with its refiner passes"
