"""Benchmark (not a test): how long opening the Results gallery blocks the GUI thread.

Writes 100 PNGs of 512x512 (noise over a gradient, so they compress like real images rather than
like flat colour) into an output folder laid out like the app's (``<date>/<run_id>/*.png``), then
builds a fresh ResultsPanel over that folder several times and reports, per build:

- ``ctor_ms``: how long the constructor blocks the GUI thread;
- ``filled_ms``: time until all 100 items are in the gallery with their real thumbnails;
- ``stall_max_ms``: the longest the GUI thread went without serving a 10 ms heartbeat in that time.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/benchmarks/gallery_load.py [--repeats 5]
    # compare with another version of the panel (e.g. the previous one saved elsewhere):
    ... gallery_load.py --panel-file /tmp/old/results_panel.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def make_images(folder: Path, count: int, size: int) -> None:
    """``count`` PNGs of ``size`` x ``size`` under ``folder``, ten per run folder."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, size, dtype=np.float32)
    for i in range(count):
        run = folder / "2025-01-01" / f"run-{i // 10:03d}"
        run.mkdir(parents=True, exist_ok=True)
        pixels = ramp[None, :, None] + rng.normal(0, 24, (size, size, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(run / f"{i:05d}.png")


def panel_class(panel_file: Path | None) -> Any:
    """ResultsPanel from the installed package, or from ``panel_file`` (another version of it)."""
    if panel_file is None:
        from stablenew_qt.gui.results_panel import ResultsPanel

        return ResultsPanel
    # A name inside stablenew_qt.gui, so the file's relative imports resolve.
    spec = importlib.util.spec_from_file_location("stablenew_qt.gui._bench_results_panel", panel_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ResultsPanel


def filled(panel: Any, count: int) -> bool:
    """All ``count`` images listed and, for a panel with a loader, every thumbnail delivered."""
    if panel.gallery.count() < count:
        return False
    loader = getattr(panel, "thumbnails", None)
    return loader is None or loader.is_idle()


def build_once(cls: Any, folder: Path, count: int) -> dict[str, float]:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from stablenew_qt.gui.bridge import EventBridge

    app = QApplication.instance()
    assert app is not None
    bridge = EventBridge()
    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setInterval(10)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    heartbeat.start()
    t0 = time.perf_counter()
    panel = cls(bridge, folder)
    ctor = time.perf_counter() - t0
    while not filled(panel, count):
        app.processEvents()
        time.sleep(0.001)
    done = time.perf_counter()
    heartbeat.stop()
    gaps = [b - a for a, b in zip([t0, *beats], [*beats, done], strict=True)]
    if hasattr(panel, "shutdown"):
        panel.shutdown()
    panel.deleteLater()
    app.processEvents()
    return {
        "ctor_ms": round(1000 * ctor, 1),
        "filled_ms": round(1000 * (done - t0), 1),
        "stall_max_ms": round(1000 * max(gaps), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--panel-file", type=Path, default=None)
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    cls = panel_class(args.panel_file)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_images(folder, args.count, args.size)
        runs = [build_once(cls, folder, args.count) for _ in range(args.repeats)]
    summary = {
        key: {"median": statistics.median(r[key] for r in runs), "max": max(r[key] for r in runs)}
        for key in runs[0]
    }
    print(
        json.dumps({"panel": str(args.panel_file or "installed"), "runs": runs, "summary": summary}, indent=2)
    )
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
