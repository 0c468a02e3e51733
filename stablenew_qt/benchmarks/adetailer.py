"""``stablenew-qt bench --adetailer``: the ADetailer stage through the engine against the same steps by hand.

Each round, after one untimed warm-up round, runs one ADetailer unit on the same image twice:
**runner**, ``DiffusersExecutor.generate_images`` with the ADetailer ``StageExecution`` as the runner
calls it; **hand**, :func:`hand_written_adetailer`, the same steps with ultralytics (``YOLO.predict``)
and A1111's sampling loop and prompt encoder called directly on a hand-loaded diffusers pipeline's
components, taking only the mask, crop and paste arithmetic (engine/adetailer/masks.py, crops.py)
from the engine. Same seeds (image seed + face index), noise schedule and steps: the final images
must be pixel-identical. ``--detector FILE`` is trusted for this run only (a temporary trust list); the
engine hashes and scans it before the hand side unpickles it with ``YOLO()``. See docs/benchmarks.md.

Unlike the chain's bench this one calls the engine's stage directly, not a queued job: ADetailer is
never a job of its own (a plan needs a generation stage before it), and what is measured is the
stage against the same stage by hand.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from ..core.config import RunConfig
from ..core.options import ExitCode
from .common import (
    NEGATIVE,
    SEED,
    SIDES,
    TARGET_RATIO,
    Clock,
    device_clock,
    finish,
    hand_load,
    max_abs_diff,
    quiet_libraries,
)

if TYPE_CHECKING:
    from ..engine.adetailer.masks import BBox, PreparedMask
    from ..engine.executor import DiffusersExecutor

DEMO_INPAINT_MODEL = "demo-tiny-sd15"
DEFAULT_SIZE = (256, 256)
PROMPT = "portrait photo of a person, detailed face"
PHASES = ("detect", "inpaint", "per_face", "total")
#: Face boxes of the synthetic image, as fractions of its width and height.
FACE_BOXES = ((0.12, 0.16, 0.43, 0.51), (0.59, 0.23, 0.9, 0.59))
_SAMPLER, _SCHEDULE = "DPM++ 2M", "Karras"


# -- the command -----------------------------------------------------------------------------------
def run_adetailer_bench(args: argparse.Namespace, *, demo_dir: Path | None = None) -> int:
    """``bench --adetailer``: run, print the table, write ``--json``. Exit code 0; 1 when the two
    sides' pixels differ, a warm round loaded a model, or the stage could not run; 2 without
    ``--detector``."""
    from ..core.errors import StageError
    from ..core.paths import default_models_dir
    from ..engine.errors import ModelError
    from ..engine.executor import DiffusersExecutor, EngineSettings

    if not args.detector:
        print("error: bench --adetailer needs --detector FILE (a YOLO .pt)", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    detector = Path(args.detector).expanduser().resolve()
    models_dir = Path(args.models_dir) if args.models_dir else default_models_dir()
    with ExitStack() as stack:
        stack.enter_context(quiet_libraries())
        temp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        settings = EngineSettings(
            models_dir, device=args.device, demo_dir=demo_dir,
            trusted_detectors=(detector,), trust_file=temp / "trusted-detectors.json",
        )  # fmt: skip
        try:
            image, source = input_image(args.image, args.size or DEFAULT_SIZE)
            config = adetailer_config(args.ad_model, detector, args.steps)
            out = Path(args.output) if args.output else temp
            report = benchmark(DiffusersExecutor(settings), config, image, args.rounds, out)
            report = replace(report, image=source)
        except (ModelError, StageError, OSError, RuntimeError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.FAILED
    return finish(report, format_report(report), args.json)


def adetailer_config(model: str, detector: Path, steps: int) -> RunConfig:
    """One ADetailer unit with the extension's defaults (confidence 0.3, dilate 4, blur 4, only
    masked with padding 32, denoise 0.4) and ``steps`` steps, on an input image, with ``model``."""
    unit = {"adetailer_model": str(detector), "adetailer_steps": steps, "adetailer_use_steps": True}
    t2i = {"enabled": False, "model": model, "sampler": _SAMPLER, "scheduler": _SCHEDULE}
    data = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": SEED, "txt2img": t2i}
    return RunConfig.from_dict({**data, "adetailer": {"enabled": True, "units": [unit]}})


# -- the input image -------------------------------------------------------------------------------
def input_image(path: str | None, size: tuple[int, int]) -> tuple[Image.Image, str]:
    """The RGB image to bench on and words that describe it: ``path``, or drawn faces of ``size``."""
    if path:
        with Image.open(path) as opened:
            return opened.convert("RGB"), f"{Path(path).name} ({opened.width}x{opened.height})"
    width, height = size
    boxes = [(x1 * width, y1 * height, x2 * width, y2 * height) for x1, y1, x2, y2 in FACE_BOXES]
    return draw_faces(size, boxes, seed=5), f"synthetic {width}x{height}, {len(boxes)} faces drawn"


def draw_faces(size: tuple[int, int], boxes: list[BBox], seed: int) -> Image.Image:
    """A noisy gradient with a simple drawn face (skin ellipse, eyes, nose, mouth) in each box."""
    import numpy as np

    width, height = size
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    start, end = np.array([70, 110, 150], np.float32), np.array([180, 150, 100], np.float32)
    pixels = np.broadcast_to(start + (end - start) * ramp, (height, width, 3))
    image = Image.fromarray(
        (pixels + np.random.default_rng(seed).normal(0, 8, pixels.shape)).clip(0, 255).astype(np.uint8)
    )
    draw, rng = ImageDraw.Draw(image), random.Random(seed)
    for box in boxes:
        _face(draw, box, rng)
    return image


def _face(draw: ImageDraw.ImageDraw, box: BBox, rng: random.Random) -> None:
    x1, y1, x2, y2 = box
    w, h, cx = x2 - x1, y2 - y1, (x1 + x2) / 2
    skin = rng.choice(((241, 194, 125), (224, 172, 105), (255, 219, 172)))
    shade = (skin[0] - 45, skin[1] - 45, skin[2] - 45)
    draw.ellipse(box, fill=skin, outline=shade)
    eye_y, rx, ry, pupil = y1 + 0.42 * h, 0.1 * w, 0.055 * h, 0.045 * w
    for eye_x in (x1 + 0.32 * w, x1 + 0.68 * w):
        draw.ellipse((eye_x - rx, eye_y - ry, eye_x + rx, eye_y + ry), fill=(245, 245, 245))
        draw.ellipse((eye_x - pupil, eye_y - pupil, eye_x + pupil, eye_y + pupil), fill=(30, 20, 20))
    draw.line((cx, y1 + 0.48 * h, cx, y1 + 0.6 * h), fill=shade, width=max(1, round(w * 0.04)))
    mouth = (cx - 0.2 * w, y1 + 0.67 * h, cx + 0.2 * w, y1 + 0.79 * h)
    draw.arc(mouth, 0, 180, fill=(170, 40, 50), width=max(1, round(h * 0.035)))


# -- the hand-written side -------------------------------------------------------------------------
@dataclass(frozen=True)
class HandSide:
    """The hand-written side's own detector and inpaint pipeline, loaded once."""

    yolo: Any  # ultralytics.YOLO
    inpaint: Any  # StableDiffusion[XL]InpaintPipeline.from_pipe(the loaded model)
    scheduler_config: dict[str, Any]  # the model's own scheduler config, as loaded


def load_hand_side(executor: DiffusersExecutor, config: RunConfig, family: str) -> HandSide:
    """Load the detector with ``YOLO(path)`` and the model as a diffusers user would."""
    import diffusers
    from ultralytics.models import YOLO

    if family not in ("sd15", "sdxl"):
        raise ValueError(f"bench --adetailer needs an SD1.5 or SDXL base model, not a {family} one")
    xl, ctx = "XL" if family == "sdxl" else "", executor.context
    extra = {} if xl else {"safety_checker": None, "requires_safety_checker": False}
    cls = getattr(diffusers, f"StableDiffusion{xl}Pipeline")
    base = hand_load(cls, ctx.catalog, config.txt2img.model, family, ctx.device, extra)
    inpaint = getattr(diffusers, f"StableDiffusion{xl}InpaintPipeline").from_pipe(base)
    inpaint.set_progress_bar_config(disable=True)
    yolo = YOLO(config.adetailer.units[0].adetailer_model)
    return HandSide(yolo, inpaint, dict(base.scheduler.config))


def hand_written_adetailer(
    hand: HandSide, config: RunConfig, image: Image.Image, clock: Clock
) -> tuple[Image.Image, float, int, int]:
    """The unit written by hand: detect, masks, then per face crop, inpaint and paste back.
    Returns the final image, the detection seconds, the faces inpainted and the denoising steps."""
    from ..engine.adetailer.detector import keeping_torch_threads
    from ..engine.adetailer.masks import Detection, bbox_mask, preprocess_masks

    unit = config.adetailer.units[0]
    t0 = clock()
    # ultralytics would lower torch's thread count for the whole process (the engine undoes it);
    # both sides must inpaint with the same threads for their pixels to match.
    with keeping_torch_threads():
        result = hand.yolo.predict(image, conf=unit.adetailer_confidence, device="", verbose=False)[0]
    boxes: list[BBox] = [(a, b, c, d) for a, b, c, d in result.boxes.xyxy.cpu().tolist()]
    if result.masks is not None:  # a segmentation model: its masks, as ADetailer scales them
        masks = [_mask_image(mask, image.size) for mask in result.masks.data]
    else:
        masks = [bbox_mask(box, image.size) for box in boxes]
    detections = [Detection(box, 1.0, mask) for box, mask in zip(boxes, masks, strict=True)]
    prepared = preprocess_masks(detections, 0, 0, unit.adetailer_dilate_erode, "None")
    detect = clock() - t0
    steps = 0
    for j, face in enumerate(prepared):
        image, face_steps = _inpaint_face(hand, config, image, face, config.seed + j)
        steps += face_steps
    return image, detect, len(prepared), steps


def _mask_image(mask: Any, size: tuple[int, int]) -> Image.Image:
    """A segmentation mask as ADetailer turns it into an image: x * 255 truncated, then resized."""
    pixels = (mask.float().cpu().numpy() * 255).astype("uint8")
    return Image.fromarray(pixels, mode="L").resize(size)


def _inpaint_face(
    hand: HandSide, config: RunConfig, image: Image.Image, face: PreparedMask, seed: int
) -> tuple[Image.Image, int]:
    """Blur the mask, crop the padded region at the working size, inpaint it with A1111's sampling
    loop called directly (VAE mean latents, A1111's rounded latent mask) and paste it back.
    Returns the image and the denoising steps run."""
    import numpy as np
    import torch

    from ..engine.adetailer.crops import crop_region, expand_to_aspect, paste_back, resize_fill
    from ..engine.adetailer.masks import blur_mask
    from ..engine.conditioning import PromptEncoder
    from ..engine.ksampling import DenoiserModel, ImageNoise, NoiseSpec, SamplingConds, sample

    unit = config.adetailer.units[0]
    pipe = hand.inpaint
    width, height = image.width // 8 * 8, image.height // 8 * 8  # the processing size (no txt2img)
    blurred = blur_mask(face.mask, unit.adetailer_mask_blur)
    region = crop_region(blurred, unit.adetailer_inpaint_only_masked_padding)
    assert region is not None, "a prepared mask is never empty"
    region = expand_to_aspect(region, width, height, image.size)
    crop, crop_mask = (
        resize_fill(image.crop(region), width, height),
        resize_fill(blurred.crop(region), width, height),
    )
    vae, device = pipe.vae, pipe._execution_device
    with torch.no_grad():
        pixels = pipe.image_processor.preprocess([crop.convert("RGB")], height=height, width=width)
        init = vae.encode(pixels.to(device, vae.dtype)).latent_dist.mean.float() * vae.config.scaling_factor
    small = crop_mask.convert("RGB").resize((width // 8, height // 8), Image.Resampling.BICUBIC)
    latent_mask = torch.from_numpy(np.around(np.asarray(small, dtype=np.float32)[:, :, 0] / 255.0))[
        None, None
    ]
    batch = PromptEncoder.from_pipeline(pipe).encode_batch(
        [config.prompt], [config.negative_prompt], unit.adetailer_steps
    )
    ids = torch.tensor([height, width, 0, 0, height, width], dtype=torch.float32)
    conds = (
        SamplingConds(batch, ids, ids)
        if getattr(pipe, "text_encoder_2", None) is not None
        else SamplingConds(batch)
    )
    steps: list[int] = []
    latents = sample(
        DenoiserModel(pipe.unet, hand.scheduler_config), _SAMPLER, _SCHEDULE, unit.adetailer_steps, conds,
        ImageNoise(NoiseSpec(seeds=(seed,)), (4, height // 8, width // 8), device),
        cfg_scale=config.img2img.cfg_scale, init_latents=init, denoise=unit.adetailer_strength,
        mask=latent_mask.to(init), callback=lambda report: steps.append(report.step),
    )  # fmt: skip
    with torch.no_grad():
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    generated = pipe.image_processor.postprocess(decoded.float(), output_type="pil")[0]
    return paste_back(image, generated, blurred, region), len(steps)


# -- the runner side -------------------------------------------------------------------------------
@dataclass
class _DetectTimer:
    """Seconds the stage spends getting its detector (``ctx.detector``) and in ``Detector.predict``."""

    clock: Clock
    seconds: float = 0.0

    def timed(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """``call``, adding the seconds of every call to :attr:`seconds`."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = self.clock()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds += self.clock() - t0

        return wrapper

    @contextmanager
    def watching(self, executor: DiffusersExecutor, name: str) -> Iterator[None]:
        """Time the stage's detector lookups and predict calls (instance attributes, removed after;
        the detector is loaded already, and its cache returns the same object on every lookup)."""
        ctx = executor.context
        detector = ctx.detector(name)
        detector.predict = self.timed(detector.predict)  # type: ignore[method-assign]
        ctx.detector = self.timed(ctx.detector)  # type: ignore[method-assign]
        try:
            yield
        finally:
            del ctx.detector, detector.predict


def _runner_round(
    executor: DiffusersExecutor, config: RunConfig, image: Image.Image, timer: _DetectTimer
) -> tuple[Image.Image, float, int, int]:
    """One stage call: the final image, detection seconds, faces inpainted, denoising steps."""
    from ..core.executor import CancelToken, StagePayload
    from ..core.sequencer import StageExecution, StageName

    labels: list[str] = []  # one per denoising step, naming the face ("... face 2 of 3")
    stage = StageExecution(StageName.ADETAILER, 1, config.adetailer)
    payload = StagePayload(config, config.prompt, config.negative_prompt, (config.seed,), (image,))
    timer.seconds = 0.0
    result = executor.generate_images(
        stage, payload, lambda step, total, preview=None, label="": labels.append(label), CancelToken()
    )
    return result.images[0], timer.seconds, len(dict.fromkeys(labels)), len(labels)


# -- measuring -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ADetailerReport:
    """Everything ``bench --adetailer`` measured. Seconds are medians over the timed rounds; dicts
    keyed ``runner``/``hand`` hold one number per side (``phases`` has one such dict per phase)."""

    device: str
    model: str
    detector: str
    image: str
    steps: int
    rounds: int
    faces: int
    phases: dict[str, dict[str, float]]  # detect, inpaint, per_face, total
    ratio: float  # runner / hand of the total
    denoising_steps: dict[str, int]  # per round
    load_seconds: dict[str, float]  # runner (engine: detector, model, from_pipe), hand
    loads: dict[str, int]  # cold, warm: real loads counted by PipelineCache.loads
    max_abs_diff: int
    pixels_identical: bool


def benchmark(
    executor: DiffusersExecutor, config: RunConfig, image: Image.Image, rounds: int, out: Path
) -> ADetailerReport:
    """Load both sides, then one warm-up and ``rounds`` timed rounds (the runner, then by hand).
    The input and each round's final images are written to ``out`` (and compared from there)."""
    ctx, unit = executor.context, config.adetailer.units[0]
    clock = device_clock(ctx.device)
    family, runner_load, cold_loads = _load_runner_side(executor, config, clock)
    t0 = clock()
    hand = load_hand_side(executor, config, family)
    load_seconds = {"runner": runner_load, "hand": clock() - t0}
    timer = _DetectTimer(clock)
    run: dict[str, Callable[[], tuple[Image.Image, float, int, int]]] = {
        "runner": lambda: _runner_round(executor, config, image, timer),
        "hand": lambda: hand_written_adetailer(hand, config, image, clock),
    }
    times: dict[str, dict[str, list[float]]] = {side: {p: [] for p in PHASES} for side in SIDES}
    counts, max_diff = {side: (0, 0) for side in SIDES}, 0
    out.mkdir(parents=True, exist_ok=True)
    image.save(out / "adetailer-input.png")
    with timer.watching(executor, unit.adetailer_model):
        for index in range(rounds + 1):  # round 0 warms up and is not timed
            for side in SIDES:
                t0 = clock()
                final, detect, faces, steps = run[side]()
                _add(times[side], detect, clock() - t0, faces, timed=index > 0)
                counts[side] = (faces, steps)
                final.save(out / f"adetailer-{side}.png")
            max_diff = max(max_diff, max_abs_diff(out / "adetailer-runner.png", out / "adetailer-hand.png"))
    phases = {p: {side: statistics.median(times[side][p]) for side in SIDES} for p in PHASES}
    return ADetailerReport(
        device=ctx.device.describe(), model=config.txt2img.model, detector=Path(unit.adetailer_model).name,
        image=f"{image.width}x{image.height}", steps=unit.adetailer_steps, rounds=rounds,
        faces=counts["hand"][0], phases=phases,
        ratio=phases["total"]["runner"] / phases["total"]["hand"],
        denoising_steps={side: counts[side][1] for side in SIDES}, load_seconds=load_seconds,
        loads={"cold": cold_loads, "warm": ctx.cache.loads - cold_loads},
        max_abs_diff=max_diff, pixels_identical=max_diff == 0,
    )  # fmt: skip


def _load_runner_side(executor: DiffusersExecutor, config: RunConfig, clock: Clock) -> tuple[str, float, int]:
    """Load what the stage loads on first use; returns the model family, seconds and loads."""
    from ..core.outputs import app_data_dir
    from ..engine.adetailer.detector import configure_ultralytics

    ctx = executor.context
    configure_ultralytics(app_data_dir() / "ultralytics")  # imports ultralytics before any timing
    t0 = clock()
    ctx.detector(config.adetailer.units[0].adetailer_model)  # hashes, scans and loads the file
    loaded = ctx.cache.base(config.txt2img.model)
    return loaded.family.value, clock() - t0, ctx.cache.loads


def _add(times: dict[str, list[float]], detect: float, total: float, faces: int, timed: bool) -> None:
    """Record one side's round (only when ``timed``); a round that found no face is an error."""
    if faces == 0:
        raise RuntimeError("the detector found nothing in the image: give an --image with faces")
    if timed:
        values = {"detect": detect, "inpaint": total - detect, "per_face": (total - detect) / faces}
        for phase, value in {**values, "total": total}.items():
            times[phase].append(value)


# -- the table -------------------------------------------------------------------------------------
def format_report(report: ADetailerReport) -> str:
    """The table ``bench --adetailer`` prints."""
    r, steps = report, report.denoising_steps
    labels = {"detect": "detection", "inpaint": "inpaint (all faces)", "per_face": "inpaint per face"}
    lines = [
        f"bench --adetailer: {r.detector} + {r.model}, {r.image}, {r.steps} steps, {r.device}, "
        f"{r.rounds} round(s) after 1 warm-up",
        f"{r.faces} face(s) found and inpainted per round; {steps['runner']} (runner) and "
        f"{steps['hand']} (hand) denoising steps per round",
        "",
        f"{'median seconds':<25}{'runner':>10}{'hand':>10}{'runner/hand':>13}",
    ]
    for name in PHASES:
        runner, hand = r.phases[name]["runner"], r.phases[name]["hand"]
        lines.append(f"{labels.get(name, name):<25}{runner:>10.4f}{hand:>10.4f}{runner / hand:>13.3f}")
    lines += [
        "",
        f"load             runner {r.load_seconds['runner']:.3f} s ({r.loads['cold']} model loads; "
        f"{r.loads['warm']} in the rounds), by hand {r.load_seconds['hand']:.3f} s",
        f"final pixels     {'identical' if r.pixels_identical else 'DIFFERENT'} "
        f"(max abs difference {r.max_abs_diff})",
        f"ratio            {r.ratio:.3f} runner/hand ("
        f"{'within' if r.ratio <= TARGET_RATIO else 'ABOVE'} the {TARGET_RATIO} target)",
    ]
    return "\n".join(lines)
