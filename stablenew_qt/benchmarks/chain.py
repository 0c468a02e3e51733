"""``stablenew-qt bench``: the full chain through the app's road against the same chain written by hand.

The chain is txt2img with the SDXL refiner and a latent hires fix (x1.5), then img2img, then a
Lanczos x2 upscale. Each round runs it once as a job of an EngineSession over a
``DiffusersExecutor`` (the road every window and CLI job takes: queue, job runner, controller,
PipelineRunner; the run's own clock is timed, not the queue's bookkeeping) and then once as
:func:`hand_written_chain` (A1111's sampling loop and prompt encoder called directly on hand-loaded
diffusers pipelines' components), after one untimed warm-up round. Both sides use the same seed,
noise, conditioning and A1111 step counts, so their final PNGs must be pixel-identical; the report
says so, or gives the largest difference of a channel value.

``--json`` writes :class:`BenchReport` as JSON; docs/benchmarks.md explains every number. torch
and diffusers are imported only when the command runs, so ``stablenew-qt --help`` stays light.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..core.config import RunConfig
from ..core.errors import ConfigError
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
    peak_memory,
    quiet_libraries,
)

if TYPE_CHECKING:
    from ..core.session import EngineSession
    from ..engine.device import DeviceChoice
    from ..engine.executor import DiffusersExecutor
    from ..engine.models import ModelCatalog

DEMO_BASE = "demo-tiny-sdxl"
DEMO_REFINER = "demo-tiny-sdxl-refiner"
STAGES = ("txt2img", "img2img", "upscale", "save")  # the runner's stages, then writing the PNG
PROMPT = "a lighthouse on a cliff at sunset, photograph"
_MEMORY_MEASURE = {
    "cuda": "torch.cuda.max_memory_allocated, per side, highest round",
    "cpu": "process peak RSS from resource.getrusage: one value for the whole process, both sides",
}


def run_chain_bench(args: argparse.Namespace, *, demo_dir: Path | None = None) -> int:
    """``bench``: run, print the table, write ``--json``. Exit code 0, or 1 when the two sides'
    pixels differ, a warm run loaded a model, or the chain could not run. ``demo_dir`` is where the
    demo models are built (tests pass their session folder)."""
    from ..core.paths import default_models_dir
    from ..engine.errors import ModelError
    from ..engine.executor import DiffusersExecutor, EngineSettings

    models_dir = Path(args.models_dir) if args.models_dir else default_models_dir()
    executor = DiffusersExecutor(EngineSettings(models_dir, device=args.device, demo_dir=demo_dir))
    with ExitStack() as stack:
        stack.enter_context(quiet_libraries())
        out = Path(args.output) if args.output else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        try:
            real_on_gpu = executor.context.device.is_cuda and args.model != DEMO_BASE
            size = args.size or ((1024, 1024) if real_on_gpu else (64, 64))
            config = chain_config(args.model, args.refiner, size, args.steps)
            report = benchmark(executor, config, args.rounds, out)
        except ConfigError:
            raise  # the CLI prints it and exits 2
        except (ModelError, RuntimeError, ValueError) as exc:  # ValueError: --device cuda without CUDA
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.FAILED
    return finish(report, format_report(report), args.json)


def chain_config(model: str, refiner: str, size: tuple[int, int], steps: int) -> RunConfig:
    """The benchmarked chain: txt2img + refiner (switch 0.8) + hires (Latent x1.5, denoise 0.5) +
    img2img (denoise 0.3) + upscale (Lanczos x2), with A1111's default sampler; one image."""
    txt2img = {
        "model": model, "width": size[0], "height": size[1], "steps": steps,
        "sampler": "DPM++ 2M", "scheduler": "Karras",
        "refiner_enabled": True, "refiner_model_name": refiner, "refiner_switch_at": 0.8,
        "hires_enabled": True, "hires_upscaler_name": "Latent", "hires_upscale_factor": 1.5,
        "hires_denoise": 0.5,
    }  # fmt: skip
    return RunConfig.from_dict(
        {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "seed": SEED,
            "txt2img": txt2img,
            "img2img": {"enabled": True, "steps": steps, "denoise": 0.3},
            "upscale": {"enabled": True, "upscale_model": "Lanczos", "upscale_factor": 2.0},
        }
    )


# -- the hand-written side -------------------------------------------------------------------------
@dataclass(frozen=True)
class HandPipes:
    """The hand-written side's own pipelines, loaded once with plain diffusers calls."""

    base: Any  # StableDiffusionXLPipeline
    img2img: Any  # StableDiffusionXLImg2ImgPipeline.from_pipe(base): shares every module
    refiner: Any  # StableDiffusionXLImg2ImgPipeline sharing text_encoder_2 and the VAE with base
    scheduler_config: dict[str, Any]  # the base model's own scheduler config, as loaded
    refiner_scheduler_config: dict[str, Any]  # the refiner's, as loaded


def load_hand_pipes(catalog: ModelCatalog, config: RunConfig, device: DeviceChoice) -> HandPipes:
    """Load the config's base and refiner as a diffusers user would (folder, single file, hub id)."""
    import diffusers

    t2i = config.txt2img
    base = hand_load(diffusers.StableDiffusionXLPipeline, catalog, t2i.model, "sdxl", device, {})
    shared = {"text_encoder_2": base.text_encoder_2, "vae": base.vae}
    cls = diffusers.StableDiffusionXLImg2ImgPipeline
    refiner = hand_load(cls, catalog, t2i.refiner_model_name or "", "sdxl-refiner", device, shared)
    img2img = cls.from_pipe(base)
    for pipe in (base, refiner, img2img):
        pipe.set_progress_bar_config(disable=True)
    return HandPipes(base, img2img, refiner, dict(base.scheduler.config), dict(refiner.scheduler.config))


def hand_written_chain(
    pipes: HandPipes, config: RunConfig, out: Path, clock: Clock
) -> tuple[dict[str, float], int]:
    """The benchmarked chain written by hand: A1111's sampling loop (``ksampling.sample``) and
    prompt encoder called directly on the hand-loaded pipelines' components, diffusers' VAE for
    decoding and encoding. Returns the seconds of each block (named like the runner's stages) and
    the number of denoising steps run. What the app adds on top (queue, runner, caches, stage code)
    is what the ratio measures."""
    import torch
    import torch.nn.functional as F

    from ..engine.conditioning import PromptEncoder
    from ..engine.context import VAE_TILING_PIXELS
    from ..engine.ksampling import DenoiserModel, ImageNoise, NoiseSpec, RefinerSwitch, SamplingConds, sample

    t2i, i2i = config.txt2img, config.img2img
    prompt, negative = config.prompt, config.negative_prompt
    device = pipes.base._execution_device
    base_model = DenoiserModel(pipes.base.unet, pipes.scheduler_config)
    refiner_model = DenoiserModel(pipes.refiner.unet, pipes.refiner_scheduler_config)
    base_encoder = PromptEncoder.from_pipeline(pipes.base)
    refiner_encoder = PromptEncoder.from_pipeline(pipes.refiner)
    steps = 0

    def count(_report: Any) -> None:
        nonlocal steps
        steps += 1

    def conds(
        encoder: PromptEncoder, size: tuple[int, int], n: int, hires: int | None = None
    ) -> SamplingConds:
        w, h = size
        batch = encoder.encode_batch([prompt], [negative], n, hires)
        if encoder is refiner_encoder:  # aesthetic scores 6.0 / 2.5
            return SamplingConds(batch, torch.tensor([h, w, 0, 0, 6.0]), torch.tensor([h, w, 0, 0, 2.5]))
        ids = torch.tensor([h, w, 0, 0, h, w], dtype=torch.float32)
        return SamplingConds(batch, ids, ids)

    def noise(size: tuple[int, int]) -> ImageNoise:  # every pass is seeded anew, as in A1111
        return ImageNoise(NoiseSpec(seeds=(config.seed,)), (4, size[1] // 8, size[0] // 8), device)

    vae = pipes.base.vae
    scaling = vae.config.scaling_factor

    def decode(latents: torch.Tensor) -> Image.Image:
        with torch.no_grad():
            pixels = vae.decode(latents.to(vae.dtype) / scaling, return_dict=False)[0]
        image: Image.Image = pipes.base.image_processor.postprocess(pixels.float(), output_type="pil")[0]
        return image

    def tile_for(size: tuple[int, int]) -> None:  # the app tiles the VAE for big images
        if size[0] * size[1] > VAE_TILING_PIXELS:
            vae.enable_tiling()
        else:
            vae.disable_tiling()

    seconds: dict[str, float] = {}
    marks = [clock()]

    def lap(block: str) -> None:
        marks.append(clock())
        seconds[block] = marks[-1] - marks[-2]

    # 1. txt2img first pass on the base (A1111's "second pass" refiner mode: no switch here).
    first = (t2i.width, t2i.height)
    latents = sample(
        base_model, t2i.sampler, t2i.scheduler, t2i.steps, conds(base_encoder, first, t2i.steps),
        noise(first), cfg_scale=t2i.cfg_scale, callback=count,
    )  # fmt: skip
    # 2. hires upscale in latent space: "Latent" is bilinear, to floor(side * 1.5 / 8) * 8 pixels.
    target = (
        int(t2i.width * t2i.hires_upscale_factor) // 8 * 8,
        int(t2i.height * t2i.hires_upscale_factor) // 8 * 8,
    )
    latents = F.interpolate(
        latents, size=(target[1] // 8, target[0] // 8), mode="bilinear", align_corners=False, antialias=False
    )
    # 3. hires second pass: exactly the hires steps, the refiner switching in at refiner_switch_at.
    hires_steps = t2i.hires_steps or t2i.steps
    switch = RefinerSwitch(
        refiner_model, conds(refiner_encoder, target, t2i.steps, hires_steps), t2i.refiner_switch_at
    )
    hires_conds = conds(base_encoder, target, t2i.steps, hires_steps)
    latents = sample(
        base_model, t2i.sampler, t2i.scheduler, hires_steps, hires_conds, noise(target),
        cfg_scale=t2i.cfg_scale, init_latents=latents, denoise=t2i.hires_denoise,
        fixed_steps=True, refiner=switch, callback=count,
    )  # fmt: skip
    tile_for(target)
    image = decode(latents)
    lap("txt2img")
    # 4. img2img on the hires image: VAE mean, A1111's int(denoise * steps) + 1 steps.
    with torch.no_grad():
        pixels = pipes.base.image_processor.preprocess([image], height=target[1], width=target[0])
        init = vae.encode(pixels.to(device, vae.dtype)).latent_dist.mean.float() * scaling
    latents = sample(
        base_model, i2i.sampler or t2i.sampler, i2i.scheduler or t2i.scheduler, i2i.steps,
        conds(base_encoder, target, i2i.steps), noise(target), cfg_scale=i2i.cfg_scale,
        init_latents=init, denoise=i2i.denoise, callback=count,
    )  # fmt: skip
    image = decode(latents)
    lap("img2img")
    # 5. upscale: Lanczos to floor(side * factor / 8) * 8.
    factor = config.upscale.upscale_factor
    size = (int(image.width * factor) // 8 * 8, int(image.height * factor) // 8 * 8)
    image = image.resize(size, Image.Resampling.LANCZOS)
    lap("upscale")
    # 6. save the final PNG.
    image.save(out)
    lap("save")
    return seconds, steps


# -- the runner side -------------------------------------------------------------------------------
def _runner_round(session: EngineSession, config: RunConfig) -> tuple[dict[str, float], int, Path]:
    """One job: seconds per stage (StageFinished) plus "save" and "total" (the run's own clock:
    RunCompleted), the denoising steps, and the final PNG."""
    from ..core import events as ev
    from ..core.job import JobStatus
    from ..core.sequencer import StageName

    events: list[object] = []
    unsubscribe = session.subscribe(events.append)
    try:
        job = session.generate(config)
    finally:
        unsubscribe()
    if job.status is not JobStatus.COMPLETED:
        raise RuntimeError(f"the runner's job ended {job.status.value}: {job.error}")
    seconds = {e.stage.value: e.seconds for e in events if isinstance(e, ev.StageFinished)}
    total = next(e.seconds for e in events if isinstance(e, ev.RunCompleted))
    seconds["save"] = total - sum(seconds.values())  # infotext, PNG and manifest writes
    seconds["total"] = total
    sampling = (StageName.TXT2IMG, StageName.IMG2IMG)
    steps = sum(1 for e in events if isinstance(e, ev.StepProgress) and e.stage in sampling)
    return seconds, steps, job.outputs[0]


def _time_cache_loads(executor: DiffusersExecutor, config: RunConfig, clock: Clock) -> tuple[float, int]:
    """Seconds and real loads of the PipelineCache calls the txt2img stage makes first."""
    cache = executor.context.cache
    before, t0 = cache.loads, clock()
    base = cache.base(config.txt2img.model)
    cache.refiner(config.txt2img.refiner_model_name or "", base)
    return clock() - t0, cache.loads - before


# -- measuring -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchReport:
    """Everything ``bench`` measured. Seconds are medians over the timed rounds; dicts keyed
    ``runner``/``hand`` hold one number per side (``stages`` has one such dict per stage)."""

    device: str
    memory_measure: str
    model: str
    refiner: str
    size: str
    steps: int
    rounds: int
    stages: dict[str, dict[str, float]]  # txt2img, img2img, upscale, save, total
    ratio: float  # runner / hand of the total
    unet_steps: dict[str, int]  # denoising steps per chain
    unet_steps_per_second: dict[str, float]  # steps / (txt2img + img2img seconds)
    peak_memory_bytes: dict[str, int]
    load_seconds: dict[str, float]  # cold, warm (runner's PipelineCache) and hand
    loads: dict[str, int]  # cold, warm: real loads counted by PipelineCache.loads
    max_abs_diff: int
    pixels_identical: bool


@dataclass
class _Tally:
    seconds: dict[str, dict[str, list[float]]] = field(default_factory=lambda: {s: {} for s in SIDES})
    peaks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    steps: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    max_diff: int = 0

    def add(self, side: str, seconds: dict[str, float], steps: int, peak: int, timed: bool) -> None:
        self.peaks[side] = max(self.peaks[side], peak)
        self.steps[side] = steps
        for name, value in seconds.items() if timed else ():
            self.seconds[side].setdefault(name, []).append(value)

    def medians(self) -> dict[str, dict[str, float]]:
        names = (*STAGES, "total")
        return {n: {side: statistics.median(self.seconds[side][n]) for side in SIDES} for n in names}


def benchmark(executor: DiffusersExecutor, config: RunConfig, rounds: int, out: Path) -> BenchReport:
    """Load both sides, then one warm-up and ``rounds`` timed rounds (the runner, then by hand)."""
    from ..core.outputs import OutputSettings
    from ..core.session import SessionOptions, open_session

    device, cache = executor.context.device, executor.context.cache
    clock = device_clock(device)
    cold_seconds, cold_loads = _time_cache_loads(executor, config, clock)
    loads_after_cold, t0 = cache.loads, clock()
    pipes = load_hand_pipes(executor.context.catalog, config, device)
    hand_load = clock() - t0
    (out / "hand").mkdir(parents=True, exist_ok=True)
    tally = _Tally()
    peak_memory(device)  # starts the CUDA count afresh
    with open_session(executor, SessionOptions(OutputSettings(out / "runner"))) as session:  # temporary queue
        for index in range(rounds + 1):  # round 0 warms up and is not timed
            seconds, steps, runner_png = _runner_round(session, config)
            tally.add("runner", seconds, steps, peak_memory(device), timed=index > 0)
            hand_png = out / "hand" / f"round-{index}.png"
            laps, steps = hand_written_chain(pipes, config, hand_png, clock)
            tally.add(
                "hand", {**laps, "total": sum(laps.values())}, steps, peak_memory(device), timed=index > 0
            )
            tally.max_diff = max(tally.max_diff, max_abs_diff(runner_png, hand_png))
    warm_seconds, _ = _time_cache_loads(executor, config, clock)
    load_seconds = {"cold": cold_seconds, "warm": warm_seconds, "hand": hand_load}
    loads = {"cold": cold_loads, "warm": cache.loads - loads_after_cold}  # warm-up, rounds, warm call
    return _report(tally, device, config, rounds, load_seconds, loads)


def _report(
    tally: _Tally,
    device: DeviceChoice,
    config: RunConfig,
    rounds: int,
    load_seconds: dict[str, float],
    loads: dict[str, int],
) -> BenchReport:
    stages, t2i = tally.medians(), config.txt2img
    sampling = {side: stages["txt2img"][side] + stages["img2img"][side] for side in SIDES}
    return BenchReport(
        device=device.describe(),
        memory_measure=_MEMORY_MEASURE["cuda" if device.is_cuda else "cpu"],
        model=t2i.model,
        refiner=t2i.refiner_model_name or "",
        size=f"{t2i.width}x{t2i.height}",
        steps=t2i.steps,
        rounds=rounds,
        stages=stages,
        ratio=stages["total"]["runner"] / stages["total"]["hand"],
        unet_steps=tally.steps,
        unet_steps_per_second={side: tally.steps[side] / sampling[side] for side in SIDES},
        # On the CPU the peak RSS only grows: report the whole process's, as both sides share it.
        peak_memory_bytes=tally.peaks if device.is_cuda else dict.fromkeys(SIDES, max(tally.peaks.values())),
        load_seconds=load_seconds,
        loads=loads,
        max_abs_diff=tally.max_diff,
        pixels_identical=tally.max_diff == 0,
    )


# -- the table -------------------------------------------------------------------------------------
def format_report(report: BenchReport) -> str:
    """The table ``bench`` prints."""
    r, sps, steps = report, report.unet_steps_per_second, report.unet_steps
    mib = {side: value / 2**20 for side, value in r.peak_memory_bytes.items()}
    labels = {"txt2img": "txt2img (+refiner,hires)", "save": "save (PNG)"}
    lines = [
        f"bench: {r.model} + {r.refiner}, {r.size}, {r.steps} steps, {r.device}, "
        f"{r.rounds} round(s) after 1 warm-up",
        "chain: txt2img -> hires (Latent x1.5; base, then refiner) -> img2img -> upscale (Lanczos x2)",
        "",
        f"{'median seconds':<25}{'runner':>10}{'hand':>10}{'runner/hand':>13}",
    ]
    for name in (*STAGES, "total"):
        runner, hand = r.stages[name]["runner"], r.stages[name]["hand"]
        lines.append(f"{labels.get(name, name):<25}{runner:>10.4f}{hand:>10.4f}{runner / hand:>13.3f}")
    lines += [
        "",
        f"UNet steps/s     runner {sps['runner']:.2f}, hand {sps['hand']:.2f} "
        f"({steps['runner']} and {steps['hand']} steps per chain)",
        f"peak memory      runner {mib['runner']:.0f} MiB, hand {mib['hand']:.0f} MiB ({r.memory_measure})",
        f"model load       cold {r.load_seconds['cold']:.3f} s ({r.loads['cold']} loads), warm "
        f"{r.load_seconds['warm']:.6f} s ({r.loads['warm']} loads); by hand {r.load_seconds['hand']:.3f} s",
        f"final pixels     {'identical' if r.pixels_identical else 'DIFFERENT'} "
        f"(max abs difference {r.max_abs_diff})",
        f"ratio            {r.ratio:.3f} runner/hand ("
        f"{'within' if r.ratio <= TARGET_RATIO else 'ABOVE'} the {TARGET_RATIO} target)",
    ]
    return "\n".join(lines)
