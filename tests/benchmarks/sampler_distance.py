"""Measurement (not a test): the distance to A1111 of every sampler x schedule pair, for
``docs/samplers.md``.

For each demo model (SD 1.5, SDXL), sampler, schedule type and step count, runs
``engine.ksampling.sample`` and the A1111 reference of ``tests/engine/ksampling`` (k-diffusion
itself for the k-diffusion samplers) on the same UNet, embeddings and noise, and prints
max |ours - A1111| / std(A1111) of the final latents, plus whether the UNet call counts agree.
Timestep samplers (DDIM, DDIM CFG++, PLMS, UniPC) ignore the schedule type, as in A1111, so they
get one row.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python tests/benchmarks/sampler_distance.py \\
        [--steps 10 20 30] [--families sd15 sdxl] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "engine" / "ksampling"))


def _measure(demo_dir: str, family: str, sampler: str, schedule: str, steps: int) -> dict[str, Any]:
    from ks_harness import Pass, demo_inputs, distance, run_ours, run_reference

    inputs = demo_inputs(demo_dir, family)
    p = Pass(sampler, schedule, steps)
    ours, our_calls = run_ours(inputs, p)
    ref, ref_calls = run_reference(inputs, p)
    return {
        "family": family,
        "sampler": sampler,
        "schedule": schedule,
        "steps": steps,
        "distance": distance(ours, ref),
        "calls": our_calls,
        "calls_match": our_calls == ref_calls,
    }


def _cell(rows: list[dict[str, Any]]) -> str:
    worst = max(r["distance"] for r in rows)
    if not all(r["calls_match"] for r in rows):
        return "calls differ"
    return "0" if worst == 0 else f"{worst:.1e}"


def markdown(results: list[dict[str, Any]], steps: list[int]) -> str:
    """One row per sampler, one column per schedule; a cell is the worst distance over the
    families and step counts ("0" = bit-identical)."""
    from ks_harness import ALL_SAMPLERS, SCHEDULES, TIMESTEP_SAMPLERS

    short = {"Polyexponential": "Polyexp.", "SGM Uniform": "SGM Unif.", "Align Your Steps": "AYS"}
    header = "| Sampler | " + " | ".join(short.get(s, s) for s in SCHEDULES) + " |"
    lines = [header, "|" + "---|" * (len(SCHEDULES) + 1)]
    for sampler in ALL_SAMPLERS:
        cells = []
        for schedule in SCHEDULES:
            if sampler in TIMESTEP_SAMPLERS and schedule != "Automatic":
                cells.append("(ignored)")
                continue
            rows = [r for r in results if r["sampler"] == sampler and r["schedule"] == schedule]
            cells.append(_cell(rows) if rows else "-")
        lines.append(f"| {sampler} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nSteps measured: {', '.join(map(str, steps))}.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--families", nargs="+", default=["sd15", "sdxl"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)  # torchsde
    from ks_harness import ALL_SAMPLERS, SCHEDULES, TIMESTEP_SAMPLERS
    from ks_reference import KDIFF_MISSING, load_k_diffusion

    from stablenew_qt.engine.demo import ensure_demo_models

    if load_k_diffusion() is None:
        print(KDIFF_MISSING, file=sys.stderr)
        return 2
    demo_dir = str(
        next(iter(ensure_demo_models(Path(tempfile.mkdtemp(prefix="ks-distance-"))).values())).parent
    )
    results = []
    for family in args.families:
        for sampler in ALL_SAMPLERS:
            for schedule in ("Automatic",) if sampler in TIMESTEP_SAMPLERS else SCHEDULES:
                for steps in args.steps:
                    row = _measure(demo_dir, family, sampler, schedule, steps)
                    results.append(row)
                    print(
                        f"{family:5} {sampler:18} {schedule:17} {steps:3}  {row['distance']:.2e}  "
                        f"calls {row['calls']}{'' if row['calls_match'] else ' (A1111 differs)'}",
                        flush=True,
                    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = markdown(results, args.steps)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    print(table)
    worst = max(r["distance"] for r in results)
    print(f"worst distance {worst:.2e} over {len(results)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
