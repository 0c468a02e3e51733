"""``stablenew-qt bench``: the benchmarks of ``stablenew_qt/benchmarks`` from the command line.

The full chain through the app's road against the same chain written by hand (default), the
ADetailer stage against the same stage by hand (``--adetailer``), or seconds per step of every
sampler against the diffusers scheduler it replaced (``--samplers``), or the queue's throughput in
process and on 1 and 2 Ray workers (``--workers``). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# Names only: importing these modules loads no torch (their functions import it when they run).
from ..benchmarks.adetailer import DEMO_INPAINT_MODEL
from ..benchmarks.chain import DEMO_BASE, DEMO_REFINER
from ..core.options import DevicePreference


def add_parser(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench", help="time the full chain through the runner against the same chain in plain diffusers"
    )
    bench.add_argument("--device", choices=[p.value for p in DevicePreference], default=DevicePreference.AUTO)
    bench.add_argument("--model", default=DEMO_BASE, help=f"SDXL base (default: {DEMO_BASE})")
    bench.add_argument("--refiner", default=DEMO_REFINER, help=f"SDXL refiner (default: {DEMO_REFINER})")
    bench.add_argument("--rounds", type=_positive, default=3, help="timed rounds after 1 warm-up (3)")
    bench.add_argument(
        "--size", type=_size, help="first-pass WxH (default 64x64; 1024x1024 for a real SDXL on CUDA)"
    )
    bench.add_argument("--steps", type=_positive, default=10, help="txt2img and img2img steps (10)")
    bench.add_argument("--output", metavar="DIR", help="keep the images here (default: a temp folder)")
    bench.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    bench.add_argument("--models-dir", metavar="DIR", help="A1111-style models folder (default: ./models)")
    group = bench.add_argument_group("ADetailer stage (--adetailer)")
    group.add_argument("--adetailer", action="store_true", help="bench the ADetailer stage instead")
    group.add_argument("--detector", metavar="FILE", help="YOLO .pt to detect with; trusted for this run")
    group.add_argument("--image", metavar="FILE", help="input image (default: drawn faces, --size)")
    group.add_argument("--ad-model", default=DEMO_INPAINT_MODEL, help=f"inpaint model ({DEMO_INPAINT_MODEL})")
    group = bench.add_argument_group("sampler sweep (--samplers)")
    group.add_argument(
        "--samplers", action="store_true", help="seconds per step of every sampler, ours vs diffusers"
    )
    group.add_argument("--sampler-list", metavar="NAMES", help="comma-separated samplers (default: all)")
    group.add_argument("--repeats", type=_positive, default=7, help="interleaved runs, fastest kept (7)")
    group = bench.add_argument_group("queue throughput on Ray workers (--workers)")
    group.add_argument(
        "--workers",
        action="store_true",
        help="jobs per minute in process, on 1 Ray worker and on 2 (needs stablenew-qt[cluster])",
    )
    group.add_argument("--jobs", type=_positive, default=16, help="timed jobs per way (16)")
    bench.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace, *, demo_dir: Path | None = None) -> int:
    """The ``bench`` command; ``demo_dir`` is where the demo models are built (tests pass theirs)."""
    if args.workers:
        from ..benchmarks.workers import run_workers_bench

        return run_workers_bench(args, demo_dir=demo_dir)
    if args.samplers:
        from ..benchmarks.samplers import run_sampler_bench

        return run_sampler_bench(args, demo_dir=demo_dir)
    if args.adetailer:
        from ..benchmarks.adetailer import run_adetailer_bench

        return run_adetailer_bench(args, demo_dir=demo_dir)
    from ..benchmarks.chain import run_chain_bench

    return run_chain_bench(args, demo_dir=demo_dir)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT such as 1024x1024, got {text!r}")
    return int(width), int(height)
