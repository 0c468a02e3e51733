"""Benchmark (not a test): assembling and writing a 10x10 X/Y grid of 512x512 cells.

Builds a real X/Y sweep plan (CFG Scale x Steps, A1111-style legend), makes 100 cell images
(noise over a gradient, so they compress like real images rather than like flat colour), then
times, per repeat:

- ``assemble_s``: :func:`assemble_grids` (layout, labels, pasting the cells);
- ``encode_write_s``: PNG encoding plus the atomic write with infotext and the plan;
- ``peak_rss_mb``: the process's peak resident memory above what it held before assembling
  (Pillow allocates outside Python, so tracemalloc would not see it).

    PYTHONPATH=. .venv/bin/python tests/benchmarks/grid_assembly.py [--repeats 3] [--cells 10]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.sweep import (
    SweepSpec,
    assemble_grids,
    build_sweep,
    grid_parameters,
    sweep_cells,
    write_grid,
)


def make_cells(count: int, size: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, size, dtype=np.float32)
    images = []
    for i in range(count):
        base = ramp[None, :, None] + ramp[:, None, None] * 0.3 + np.array([i * 7 % 55, 20, 40], np.float32)
        noisy = base + rng.normal(0, 12, (size, size, 3)).astype(np.float32)
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB"))
    return images


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", type=int, default=10, help="cells per side")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    n = args.cells
    base = RunConfig.from_dict(
        {"prompt": "a fox", "seed": 1, "txt2img": {"width": args.size, "height": args.size}}
    )
    spec = SweepSpec.from_dict(
        {"x": {"type": "CFG Scale", "values": f"1-10 [{n}]"}, "y": {"type": "Steps", "values": f"10-{9 + n}"}}
    )
    plan = build_sweep(base, spec, rng=random.Random(0))
    cells = sweep_cells(plan, base)
    images = make_cells(n * n, args.size)
    by_index = {cell.index: [images[cell.index]] for cell in cells}
    before = peak_rss_mb()
    assemble, write, size_mb = [], [], 0.0
    grid_size = (0, 0)
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            start = time.perf_counter()
            grid = assemble_grids(plan, by_index, cells).main
            assemble.append(time.perf_counter() - start)
            start = time.perf_counter()
            path = write_grid(
                grid,
                Path(folder) / str(repeat),
                parameters=str(grid_parameters(plan)),
                config=cells[0].config,
                plan=plan,
            )
            write.append(time.perf_counter() - start)
            size_mb, grid_size = path.stat().st_size / 1e6, grid.size
            del grid
    print(
        json.dumps(
            {
                "grid": f"{n}x{n} cells of {args.size}x{args.size}",
                "grid_size": grid_size,
                "assemble_s": round(statistics.median(assemble), 3),
                "encode_write_s": round(statistics.median(write), 3),
                "png_mb": round(size_mb, 1),
                "peak_rss_mb_above_baseline": round(peak_rss_mb() - before, 1),
                "repeats": args.repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
