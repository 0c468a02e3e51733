"""``stablenew-qt bench --samplers``: seconds per sampling step, our A1111 loop against diffusers.

For every A1111 sampler on the demo SD 1.5 model at 256 x 256 px (32 x 32 latents), batch 1, CFG
7: ``stablenew_qt.engine.ksampling.sample`` against ``StableDiffusionPipeline`` with the diffusers
scheduler ``engine/schedulers.py`` maps the sampler to (what the stages used before). Both get
precomputed prompt embeddings and stop at latents, so only the denoising loop is timed.

Two tables:

1. whole steps with the real (tiny) UNet: the fastest of ``--repeats`` interleaved runs of
   ``--steps`` steps, per step and per UNet call (second-order samplers make two calls a step, and
   diffusers' DDIM/PLMS one more than A1111's);
2. the loop's own overhead: the same runs with the UNet's forward replaced by a cheap elementwise
   function, so only the schedulers / CFG / noise code is left. With a real model a UNet call
   costs 10-1000 ms; this table says what our loop adds on top.

    stablenew-qt bench --samplers [--steps 20] [--repeats 7] [--size 256x256]
                       [--sampler-list "Euler,DPM++ 2M"]

Numbers only, nothing is asserted: docs/samplers.md has a measured table. torch and diffusers are
imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.options import ExitCode

if TYPE_CHECKING:
    import torch

Run = Callable[[], None]


def _best_times(runs: tuple[Run, Run], repeats: int) -> tuple[float, float]:
    """The fastest of ``repeats`` interleaved runs of each: on a shared machine the minimum is the
    run least disturbed by other processes, and interleaving exposes both to the same load."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for run, bucket in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def _count_calls(unet: Any, run: Run) -> int:
    counter = [0]
    handle = unet.register_forward_pre_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    try:
        run()
    finally:
        handle.remove()
    return counter[0]


class _NullUNet:
    """Replaces the UNet's forward by a cheap elementwise function of its input."""

    def __init__(self, unet: Any) -> None:
        self.unet, self.saved = unet, unet.forward

    def __enter__(self) -> None:

        def forward(sample: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor]:
            return (sample[:, :4] * 0.05,)

        self.unet.forward = forward

    def __exit__(self, *exc: object) -> None:
        self.unet.forward = self.saved


class _Bench:
    def __init__(self, steps: int, size: int, device: str, demo_dir: Path | None) -> None:
        import diffusers
        import torch

        from stablenew_qt.engine.conds import BatchCond, PromptCond, ScheduledCond, TextCond
        from stablenew_qt.engine.demo import ensure_demo_model
        from stablenew_qt.engine.ksampling import DenoiserModel

        root = demo_dir or Path(tempfile.mkdtemp(prefix="sampler-speed-"))
        folder = ensure_demo_model("demo-tiny-sd15", root)
        cls: Any = diffusers.StableDiffusionPipeline
        self.pipe = cls.from_pretrained(folder).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.config = dict(self.pipe.scheduler.config)
        self.device = device
        with torch.no_grad():
            self.pe, self.ne = self.pipe.encode_prompt(
                "a lighthouse at dusk, oil painting", device, 1, True, "blurry"
            )
        self.batch = BatchCond(
            cond=(PromptCond(((ScheduledCond(((10_000, TextCond(self.pe[0])),)), 1.0),)),),
            uncond=(ScheduledCond(((10_000, TextCond(self.ne[0])),)),),
        )
        self.model = DenoiserModel.from_pipeline(self.pipe)
        self.steps, self.size = steps, size

    def ours(self, name: str) -> Run:
        import torch

        from stablenew_qt.engine.ksampling import ImageNoise, NoiseSpec, SamplingConds, sample

        def run() -> None:
            noise = ImageNoise(NoiseSpec(seeds=(1234,)), (4, self.size // 8, self.size // 8), self.device)
            with torch.no_grad():
                sample(
                    self.model, name, "Automatic", self.steps, SamplingConds(self.batch), noise, cfg_scale=7.0
                )
            if self.device == "cuda":
                torch.cuda.synchronize()

        return run

    def theirs(self, name: str) -> Run:
        import torch

        from stablenew_qt.engine.schedulers import make_scheduler

        def run() -> None:
            self.pipe.scheduler = make_scheduler(self.config, name, "Automatic")
            self.pipe(
                prompt_embeds=self.pe,
                negative_prompt_embeds=self.ne,
                num_inference_steps=self.steps,
                height=self.size,
                width=self.size,
                guidance_scale=7.0,
                generator=torch.Generator().manual_seed(1234),
                output_type="latent",
            )
            if self.device == "cuda":
                torch.cuda.synchronize()

        return run

    def scheduler_name(self, name: str) -> str:
        from stablenew_qt.engine.schedulers import make_scheduler

        return type(make_scheduler(self.config, name, "Automatic")).__name__


def _whole_steps(bench: _Bench, name: str, repeats: int) -> dict[str, Any]:
    ours, theirs = bench.ours(name), bench.theirs(name)
    ours(), theirs()  # warm-up (first-call allocations)
    best = _best_times((ours, theirs), repeats)
    calls = (_count_calls(bench.pipe.unet, ours), _count_calls(bench.pipe.unet, theirs))
    per_step = (best[0] / bench.steps, best[1] / bench.steps)
    return {
        "sampler": name,
        "diffusers_scheduler": bench.scheduler_name(name),
        "ours_s_per_step": per_step[0],
        "diffusers_s_per_step": per_step[1],
        "ratio": per_step[0] / per_step[1],
        "ours_unet_calls": calls[0],
        "diffusers_unet_calls": calls[1],
        "ratio_per_call": (best[0] / calls[0]) / (best[1] / calls[1]),
    }


def run_sampler_bench(args: argparse.Namespace, *, demo_dir: Path | None = None) -> int:
    """``bench --samplers``: print both tables, write ``--json`` (a list of rows). Uses ``--steps``,
    ``--repeats``, the width of ``--size`` (default 256) and ``--sampler-list``."""
    import torch

    from stablenew_qt.engine.ksampling import SAMPLERS

    names = [n.strip() for n in args.sampler_list.split(",")] if args.sampler_list else list(SAMPLERS)
    unknown = [n for n in names if n not in SAMPLERS]
    if unknown:
        print(
            f"error: unknown sampler(s) {', '.join(unknown)}; valid: {', '.join(SAMPLERS)}", file=sys.stderr
        )
        return ExitCode.CONFIG_ERROR
    side = args.size[0] if args.size else 256
    cuda = args.device in ("auto", "cuda") and torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        print("error: --device cuda but torch sees no CUDA GPU", file=sys.stderr)
        return ExitCode.FAILED
    bench = _Bench(args.steps, side, "cuda" if cuda else "cpu", demo_dir)
    rows = []
    print(
        f"{'sampler':<18} {'ours s/step':>11} {'diffusers':>10} {'ratio':>6} "
        f"{'per call':>8} {'calls':>11}  scheduler"
    )
    for name in names:
        row = _whole_steps(bench, name, args.repeats)
        rows.append(row)
        print(
            f"{name:<18} {row['ours_s_per_step']:>11.4f} {row['diffusers_s_per_step']:>10.4f} "
            f"{row['ratio']:>6.2f} "
            f"{row['ratio_per_call']:>8.2f} {row['ours_unet_calls']:>5}/{row['diffusers_unet_calls']:<5}  "
            f"{row['diffusers_scheduler']}",
            flush=True,
        )
    print("\nLoop overhead alone (UNet forward replaced by an elementwise function), ms per step:")
    print(f"{'sampler':<18} {'ours':>8} {'diffusers':>10}")
    with _NullUNet(bench.pipe.unet):
        for row in rows:
            best = _best_times((bench.ours(row["sampler"]), bench.theirs(row["sampler"])), args.repeats)
            row["ours_overhead_ms_per_step"] = 1000 * best[0] / args.steps
            row["diffusers_overhead_ms_per_step"] = 1000 * best[1] / args.steps
            print(
                f"{row['sampler']:<18} {row['ours_overhead_ms_per_step']:>8.2f} "
                f"{row['diffusers_overhead_ms_per_step']:>10.2f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return ExitCode.OK
