"""Benchmark (not a test): what a sweep group costs per cell over plain jobs, and its grid.

Runs the same N configs (64x64, 1 step, FakeExecutor, so the engine costs almost nothing and the
queue, runner, run folder and PNG writes are what is measured) twice through the real JobQueue and
SingleNodeJobRunner on a fresh queue file:

- ``single_ms``: queued one by one with ``add`` (no group), per job;
- ``cell_ms``: queued as one sweep group (a Seed axis of N values), per cell, excluding the grid;
- ``grid_ms``: ``finish_groups`` after the last cell: loading the cells' images, assembling and
  writing the grid, and recording it.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/sweep_group_overhead.py [--cells 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.controller import AppController
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job_runner import SingleNodeJobRunner
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import GroupKind, JobQueue
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.core.sweep import SweepSpec, build_sweep, sweep_cells


def _runner(folder: Path) -> tuple[JobQueue, SingleNodeJobRunner]:
    queue = JobQueue(folder / "queue.sqlite3")
    controller = AppController(PipelineRunner(FakeExecutor(), OutputSettings(folder / "runs")))
    return queue, SingleNodeJobRunner(queue, controller)


def _single(folder: Path, planned: tuple) -> float:  # type: ignore[type-arg]
    queue, runner = _runner(folder)
    for cell in planned:
        queue.add(cell.config)
    t0 = time.perf_counter()
    runner.run_until_empty()
    queue.close()
    return (time.perf_counter() - t0) / len(planned)


def measure(cells: int) -> dict[str, float]:
    base = RunConfig.from_dict(
        {"prompt": "a lighthouse", "seed": 1, "txt2img": {"width": 64, "height": 64, "steps": 1}}
    )
    spec = SweepSpec.from_dict({"x": {"type": "Seed", "values": f"1-{cells}"}})
    plan = build_sweep(base, spec, rng=random.Random(1))
    planned = sweep_cells(plan, base)
    with tempfile.TemporaryDirectory() as tmp:
        _single(Path(tmp) / "warm-up", planned[:2])  # imports and first-write costs, in neither number
        single = _single(Path(tmp) / "single", planned)
        queue, runner = _runner(Path(tmp) / "group")
        queue.add_group(
            [c.config for c in planned],
            GroupKind.SWEEP,
            {"plan": plan.to_dict(), "base": base.model_dump(mode="json")},
            indices=[c.index for c in planned],
        )
        finish = runner.finish_groups
        grid_seconds: list[float] = []

        def timed_finish() -> list:  # type: ignore[type-arg]
            t = time.perf_counter()
            done = finish()
            if done:
                grid_seconds.append(time.perf_counter() - t)
            return done

        runner.finish_groups = timed_finish  # type: ignore[method-assign]
        t0 = time.perf_counter()
        runner.run_until_empty()
        total = time.perf_counter() - t0
        queue.close()
    grid = sum(grid_seconds)
    return {"single_ms": single * 1000, "cell_ms": (total - grid) / cells * 1000, "grid_ms": grid * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = [measure(args.cells) for _ in range(args.repeats)]
    medians = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
    print(json.dumps({"cells": args.cells, "repeats": args.repeats, **medians}))


if __name__ == "__main__":
    main()
