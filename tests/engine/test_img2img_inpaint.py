"""The img2img stage's inpaint, outpaint and size/resize modes, run through the real runner and
engine on the demo models (CPU).

"Unchanged" below means byte-identical to the input: a VAE round trip alters nearly every pixel,
so it only holds because the stage pastes the result back through the blurred mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.img2img_geometry import resize_image
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner, RunResult
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.engine.adetailer.masks import blur_mask
from stablenew_qt.engine.conditioning import PromptEncoder
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings
from stablenew_qt.engine.inpaint import finish_inpaint, inpaint_latents, prepare_inpaint
from stablenew_qt.engine.ksampling import DenoiserModel, ImageNoise, NoiseSpec, SamplingConds, sample

SD15, SD15_INPAINT = "demo-tiny-sd15", "demo-tiny-sd15-inpaint"
SDXL, SDXL_INPAINT = "demo-tiny-sdxl", "demo-tiny-sdxl-inpaint"
SIZE = (80, 64)
BOX = (24, 16, 56, 40)


@pytest.fixture(scope="module")
def executor(demo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> DiffusersExecutor:
    models_dir = tmp_path_factory.mktemp("models")
    demo_root = next(iter(demo_models.values())).parent
    settings = EngineSettings(models_dir=models_dir, device="cpu", preview_every=2, demo_dir=demo_root)
    return DiffusersExecutor(settings)


def _noise_image(size: tuple[int, int] = SIZE, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _mask(size: tuple[int, int] = SIZE, box: tuple[int, int, int, int] = BOX) -> Image.Image:
    mask = Image.new("L", size)
    mask.paste(255, box)
    return mask


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    _noise_image().save(image)
    _mask().save(mask)
    return {"image": image, "mask": mask}


def _config(image: Path, model: str = SD15, batch_size: int = 1, **img2img: Any) -> RunConfig:
    return RunConfig.from_dict(
        {
            "prompt": "a red apple on a table",
            "negative_prompt": "blurry",
            "seed": 42,
            "batch_size": batch_size,
            "input_image_path": str(image),
            "txt2img": {"enabled": False, "model": model, "sampler": "Euler", "scheduler": "Automatic"},
            "img2img": {"enabled": True, "steps": 4, "denoise": 0.75, **img2img},
        }
    )


def _run(
    executor: DiffusersExecutor, config: RunConfig, tmp_path: Path, token: CancelToken | None = None
) -> tuple[RunResult, list[object]]:
    events: list[object] = []
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    result = runner.run(config, token or CancelToken(), emit=events.append)
    return result, events


def _done(executor: DiffusersExecutor, config: RunConfig, tmp_path: Path) -> list[np.ndarray]:
    result, _ = _run(executor, config, tmp_path)
    assert result.status == "COMPLETED", result.error
    return [np.asarray(im.convert("RGB")) for im in result.images]


def _touched(mask: Image.Image, blur: int) -> np.ndarray:
    """Where the blurred mask is above 0 (the only pixels a paste-back may change)."""
    return np.asarray(blur_mask(mask, blur)) > 0


@pytest.mark.parametrize("model", [SD15, SD15_INPAINT, SDXL, SDXL_INPAINT])
def test_unmasked_pixels_are_byte_identical_to_the_input(executor, files, tmp_path: Path, model: str) -> None:
    out = _done(executor, _config(files["image"], model, mask_path=str(files["mask"])), tmp_path)[0]
    source = np.asarray(_noise_image())
    touched = _touched(_mask(), 4)
    assert out.shape == source.shape
    assert np.array_equal(out[~touched], source[~touched])
    inside = np.asarray(_mask()) == 255
    assert (out[inside] != source[inside]).any(axis=-1).mean() > 0.9, "the masked area is repainted"


def test_batch_shares_one_mask_and_each_image_gets_its_seed(executor, files, tmp_path: Path) -> None:
    config = _config(files["image"], SD15_INPAINT, batch_size=2, mask_path=str(files["mask"]))
    first, second = _done(executor, config, tmp_path)
    touched, source = _touched(_mask(), 4), np.asarray(_noise_image())
    for out in (first, second):
        assert np.array_equal(out[~touched], source[~touched])
    assert not np.array_equal(first, second), "seed 42 and 43 repaint differently"


def test_only_masked_changes_nothing_outside_the_blurred_mask(executor, files, tmp_path: Path) -> None:
    config = _config(
        files["image"],
        mask_path=str(files["mask"]),
        inpaint_area="only masked",
        only_masked_padding=8,
        width=64,
        height=64,
        mask_blur=2,
    )
    out = _done(executor, config, tmp_path)[0]
    source, touched = np.asarray(_noise_image()), _touched(_mask(), 2)
    assert out.shape == source.shape, "only masked pastes back into the full image"
    assert np.array_equal(out[~touched], source[~touched])
    assert (out[touched] != source[touched]).any()
    whole = _done(executor, _config(files["image"], mask_path=str(files["mask"]), mask_blur=2), tmp_path)[0]
    assert not np.array_equal(out[touched], whole[touched]), "the crop is repainted at 64x64, not in place"


def test_each_masked_content_starts_from_something_else(executor, files, tmp_path: Path) -> None:
    contents = ("fill", "original", "latent noise", "latent nothing")
    outs = {
        c: _done(
            executor,
            _config(files["image"], mask_path=str(files["mask"]), masked_content=c, denoise=0.5),
            tmp_path,
        )[0]
        for c in contents
    }
    source, touched = np.asarray(_noise_image()), _touched(_mask(), 4)
    inside = np.asarray(_mask()) == 255
    for c, out in outs.items():
        assert np.array_equal(out[~touched], source[~touched]), c
    for i, a in enumerate(contents):
        for b in contents[i + 1 :]:
            assert not np.array_equal(outs[a][inside], outs[b][inside]), (a, b)
    # "fill" starts from the hole painted from its surroundings: smoother than the noise it replaced
    hole = (slice(BOX[1] + 6, BOX[3] - 6), slice(BOX[0] + 6, BOX[2] - 6))
    assert outs["fill"][hole].astype(float).std() < outs["original"][hole].astype(float).std()


def test_mask_from_alpha_repaints_the_transparent_pixels(executor, tmp_path: Path) -> None:
    rgba = _noise_image().convert("RGBA")
    alpha = np.full((SIZE[1], SIZE[0]), 255, np.uint8)
    alpha[BOX[1] : BOX[3], BOX[0] : BOX[2]] = 0
    rgba.putalpha(Image.fromarray(alpha))
    path = tmp_path / "holed.png"
    rgba.save(path)
    out = _done(executor, _config(path, mask_from_alpha=True), tmp_path)[0]
    source, touched = np.asarray(_noise_image()), _touched(_mask(), 4)
    assert np.array_equal(out[~touched], source[~touched]), "opaque pixels keep their bytes"
    inside = alpha == 0
    assert (out[inside] != 255).any(), "the hole (white once flattened) is repainted"


def test_inpaint_not_masked_repaints_everything_but_the_mask(executor, files, tmp_path: Path) -> None:
    config = _config(files["image"], mask_path=str(files["mask"]), mask_mode="inpaint not masked")
    out = _done(executor, config, tmp_path)[0]
    source = np.asarray(_noise_image())
    kept = ~(np.asarray(blur_mask(Image.fromarray(255 - np.asarray(_mask())), 4)) > 0)
    assert kept.sum() > 0
    assert np.array_equal(out[kept], source[kept])
    assert (out[~kept] != source[~kept]).any(axis=-1).mean() > 0.5


def test_outpaint_grows_by_exactly_n_and_keeps_the_old_area(executor, files, tmp_path: Path) -> None:
    config = _config(files["image"], outpaint={"left": 16, "bottom": 8}, masked_content="fill", mask_blur=4)
    out = _done(executor, config, tmp_path)[0]
    assert out.shape == (SIZE[1] + 8, SIZE[0] + 16, 3)
    grown = Image.new("L", (SIZE[0] + 16, SIZE[1] + 8), 255)
    grown.paste(0, (16, 0, 16 + SIZE[0], SIZE[1]))
    kept = ~_touched(grown, 4)
    old = np.zeros(out.shape[:2], bool)
    old[0 : SIZE[1], 16:] = True
    assert kept[old].sum() > 0.6 * SIZE[0] * SIZE[1]
    assert not kept[~old].any(), "the new area is all repainted"
    placed = np.zeros_like(out)
    placed[0 : SIZE[1], 16:] = np.asarray(_noise_image())
    assert np.array_equal(out[kept], placed[kept])


@pytest.mark.parametrize("mode", ["just resize", "crop and resize", "resize and fill", "latent upscale"])
def test_resize_modes_give_the_processing_size_on_an_odd_input(executor, tmp_path: Path, mode: str) -> None:
    path = tmp_path / "odd.png"
    _noise_image((75, 69)).save(path)
    out = _done(executor, _config(path, width=64, height=96, resize_mode=mode), tmp_path)[0]
    assert out.shape == (96, 64, 3)


def test_size_zero_floors_an_odd_input_to_multiples_of_8(executor, tmp_path: Path) -> None:
    path = tmp_path / "odd.png"
    _noise_image((75, 69)).save(path)
    assert _done(executor, _config(path), tmp_path)[0].shape == (64, 72, 3)


def test_plain_img2img_on_a_nine_channel_model_runs(executor, files, tmp_path: Path) -> None:
    out = _done(executor, _config(files["image"], SD15_INPAINT), tmp_path)[0]
    assert out.shape == (SIZE[1], SIZE[0], 3)
    assert not np.array_equal(out, np.asarray(_noise_image()))


def test_the_runner_writes_a1111s_inpaint_keys(executor, files, tmp_path: Path) -> None:
    config = _config(
        files["image"],
        mask_path=str(files["mask"]),
        mask_mode="inpaint not masked",
        inpaint_area="only masked",
        only_masked_padding=16,
        masked_content="fill",
        mask_blur=6,
    )
    result, _ = _run(executor, config, tmp_path)
    assert result.status == "COMPLETED", result.error
    with Image.open(result.image_paths[0]) as im:
        text = im.text["parameters"]
    for key in (
        "Mask mode: Inpaint not masked",
        "Mask blur: 6",
        "Inpaint area: Only masked",
        "Masked area padding: 16",
        "Masked content: fill",
    ):
        assert key in text, (key, text)


def test_cancel_mid_inpaint_stops_within_one_step(executor, files, tmp_path: Path) -> None:
    token = CancelToken()
    seen: list[int] = []

    def on_event(event: object) -> None:
        if isinstance(event, ev.StepProgress) and event.stage is StageName.IMG2IMG:
            seen.append(event.step)
            if event.step == 2:
                token.cancel()

    config = _config(files["image"], SD15_INPAINT, mask_path=str(files["mask"]), steps=8, denoise=0.9)
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    result = runner.run(config, token, emit=on_event)
    assert result.status == "CANCELLED"
    assert result.failed_stage is StageName.IMG2IMG
    assert seen[-1] == 2, "no step is reported after the cancel"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("mode", ["just resize", "crop and resize", "resize and fill", "latent upscale"])
def test_denoise_zero_hands_on_the_resized_input(executor, tmp_path: Path, mode: str) -> None:
    """Nothing is sampled: what goes on is exactly A1111's resize of the input (the latent mode
    resizes latents, so its pixels are "just resize")."""
    path = tmp_path / "odd.png"
    _noise_image((75, 69)).save(path)
    out = _done(executor, _config(path, width=64, height=96, resize_mode=mode, denoise=0.0), tmp_path)[0]
    pixel_mode = "just resize" if mode == "latent upscale" else mode
    expected = resize_image(pixel_mode, _noise_image((75, 69)), 64, 96)  # type: ignore[arg-type]
    assert np.array_equal(out, np.asarray(expected))


@pytest.mark.parametrize(
    ("model", "content"),
    [(SD15, "original"), (SD15, "latent noise"), (SD15_INPAINT, "original"), (SD15_INPAINT, "latent noise")],
)
def test_an_inpaint_pass_equals_a_hand_built_sample_call(
    executor, files, demo_models: dict[str, Path], tmp_path: Path, model: str, content: str
) -> None:
    """The stage feeds ``sample`` exactly the library's init latents, latent mask, latent noise
    (the seed's first draw) and, for the 9-channel model, image conditioning: bit for bit.

    The init image goes through diffusers' ``image_processor.preprocess`` as in the plain
    img2img parity test (same values as ``to_tensor``, but its memory layout makes the VAE's
    convolutions round differently, by about 1e-7)."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    config = _config(files["image"], model, mask_path=str(files["mask"]), masked_content=content, denoise=1.0)
    out = _done(executor, config, tmp_path)[0]
    nine = model == SD15_INPAINT
    kind = StableDiffusionInpaintPipeline if nine else StableDiffusionPipeline
    pipe = kind.from_pretrained(demo_models[model], dtype=torch.float32)
    scale = pipe.vae.config.scaling_factor

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return pipe.vae.encode(pixels).latent_dist.mean * scale  # type: ignore[no-any-return]

    job = prepare_inpaint(_noise_image(), _mask(), config.img2img)
    latents = encode(pipe.image_processor.preprocess(job.image, height=SIZE[1], width=SIZE[0]))
    noise = ImageNoise(NoiseSpec(seeds=(42,)), (4, 8, 10), "cpu").next()
    inputs = inpaint_latents(job, latents, noise=noise, encode=encode, inpainting_model=nine)
    assert (inputs.image_conditioning is not None) == nine
    conds = SamplingConds(PromptEncoder.from_pipeline(pipe).encode_batch([config.prompt], ["blurry"], 4))
    result = sample(
        DenoiserModel.from_pipeline(pipe), "Euler", "Automatic", 4, conds,
        ImageNoise(NoiseSpec(seeds=(42,)), (4, 8, 10), "cpu"), cfg_scale=7.0,
        init_latents=inputs.init_latents, denoise=1.0, mask=inputs.mask,
        image_conditioning=inputs.image_conditioning,
    )  # fmt: skip
    with torch.no_grad():
        decoded = pipe.vae.decode(result / scale, return_dict=False)[0]
    expected = finish_inpaint(job, pipe.image_processor.postprocess(decoded, output_type="pil")[0])
    assert np.array_equal(out, np.asarray(expected))
