"""The sweep crash test: a process running a sweep group through the real JobQueue and
SingleNodeJobRunner (FakeExecutor engine, so it needs no models) is killed with SIGKILL in the
middle of a cell, then a second process resumes the queue. Every cell ends completed with its
image once, the killed cell ran twice, and exactly one grid is written."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.queue import GridState, GroupKind, JobQueue, JobStatus
from stablenew_qt.core.sweep import SweepSpec, build_sweep, sweep_cells

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="kills the runner process with SIGKILL"),
]

WAIT_S = 60.0
WORKER = """
import sys
from pathlib import Path
from stablenew_qt.core.controller import AppController
from stablenew_qt.core.events import JobStarted
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job_runner import SingleNodeJobRunner
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.runner import PipelineRunner

queue = JobQueue(Path(sys.argv[1]))
runner = PipelineRunner(FakeExecutor(step_delay=float(sys.argv[3])), OutputSettings(Path(sys.argv[2])))
jobs = SingleNodeJobRunner(queue, AppController(runner), auto_resume=True)


def show(event):
    if isinstance(event, JobStarted):
        print("started", event.job.group_index, flush=True)


jobs.subscribe(show)
jobs.run_until_empty()
print("done", flush=True)
"""


def _start(tmp_path: Path, name: str, step_delay: float) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"{name}.log"
    args = [
        sys.executable,
        "-c",
        WORKER,
        str(tmp_path / "queue.sqlite3"),
        str(tmp_path / "out"),
        str(step_delay),
    ]
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    return proc, log


def _wait_for(proc: subprocess.Popen[bytes], log: Path, text: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while text not in log.read_text(encoding="utf-8", errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never saw {text!r}:\n{log.read_text(encoding='utf-8', errors='replace')}")
        time.sleep(0.01)


def test_sigkill_mid_sweep_then_resume_gives_every_cell_once_and_one_grid(
    tmp_path: Path, make_config
) -> None:
    base: RunConfig = make_config(seed=11, txt2img={"steps": 20})
    spec = SweepSpec.from_dict(
        {"x": {"type": "CFG Scale", "values": "3, 5"}, "y": {"type": "Seed", "values": "1-2"}}
    )
    plan = build_sweep(base, spec, rng=random.Random(2))
    cells = sweep_cells(plan, base)
    with JobQueue(tmp_path / "queue.sqlite3") as queue:
        group = queue.add_group(
            [c.config for c in cells],
            GroupKind.SWEEP,
            {"plan": plan.to_dict(), "base": base.model_dump(mode="json")},
            indices=[c.index for c in cells],
        )
    first, log = _start(tmp_path, "first", step_delay=0.05)
    _wait_for(first, log, f"started {cells[2].index}")
    time.sleep(0.3)  # inside the third cell's steps
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    second, log2 = _start(tmp_path, "second", step_delay=0.0)
    _wait_for(second, log2, "done")
    assert second.wait(30) == 0
    with JobQueue(tmp_path / "queue.sqlite3") as queue:
        jobs = queue.group_jobs(group.id)
        finished = queue.group(group.id)
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * len(cells)
    assert sorted(j.group_index for j in jobs) == sorted(c.index for c in cells)
    assert sorted(j.attempts for j in jobs) == [1, 1, 1, 2]
    images = sorted((tmp_path / "out").rglob("0*.png"))
    assert len(images) == len(cells), "each cell's image once, nothing of the killed attempt"
    assert not list((tmp_path / "out").rglob("*.tmp"))
    grids = sorted((tmp_path / "out").rglob("xyz_grid-*.png"))
    assert finished.grid_state is GridState.WRITTEN and list(finished.grid_paths) == grids and len(grids) == 1
    with Image.open(grids[0]) as grid:
        grid.verify()
