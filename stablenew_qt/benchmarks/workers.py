"""``stablenew-qt bench --workers``: queue throughput in process, on 1 Ray worker and on 2.

The same N demo-model jobs (txt2img, 64x64 on the demo SD1.5 by default) go through a real
EngineSession three ways:

- ``in-process``: the SingleNodeJobRunner on this process's DiffusersExecutor (today's default);
- ``ray-1`` / ``ray-2``: the DispatchingJobRunner over a RayWorkerPool of 1 and 2 workers
  (``WorkersSetting`` ``1`` and ``2``; on a machine without GPUs they share the CPU).

Each way runs one untimed warm-up job first (the model loads; on Ray every worker gets one), then
the N timed jobs: **jobs per minute** is N over the wall time of ``run_queue``. **Dispatch
overhead** is, per job, the time from JobStarted to JobFinished on the app's side minus the
run's own seconds (RunCompleted): claiming, shipping the config, streaming the events, returning
the PNG bytes and publishing them. **Ray start-up** is the pool's ``start()`` (``ray.init`` and
every worker's engine up, models not loaded yet), and its memory the RSS of the Ray processes
(GCS, raylet, workers) once started, from psutil.

On a CPU-only machine the 2-worker ratio shows the scheduling works (the two share the cores);
on a multi-GPU machine it is the speed-up. Ray is imported only when this runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.events import JobFinished, JobStarted, RunCompleted, SessionEvent
from ..core.job import JobStatus
from ..core.options import ExitCode
from ..core.outputs import OutputSettings
from ..core.workers import WorkersSetting

DEMO_MODEL = "demo-tiny-sd15"


@dataclass
class ModeResult:
    mode: str
    jobs: int
    seconds: float
    jobs_per_minute: float
    dispatch_overhead_ms: float  # median per job
    workers_used: int = 1
    startup_s: float | None = None
    ray_rss_mb: float | None = None
    failed: int = 0


@dataclass
class WorkersReport:
    device: str
    jobs: int
    steps: int
    size: str
    results: list[ModeResult] = field(default_factory=list)


class _Timing:
    """JobStarted -> JobFinished wall time and the run's own seconds, per job."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.wall: dict[int, float] = {}
        self.run: dict[int, float] = {}
        self.workers: set[str] = set()
        self._last_run = 0.0

    def __call__(self, event: SessionEvent) -> None:
        now = time.perf_counter()
        if isinstance(event, JobStarted):
            self.started[event.job.id] = now
            if event.worker:
                self.workers.add(event.worker.split(" ", 1)[0])
        elif isinstance(event, RunCompleted):
            self._last_run = event.seconds
        elif isinstance(event, JobFinished) and event.job.id in self.started:
            self.wall[event.job.id] = now - self.started[event.job.id]
            self.run[event.job.id] = self._last_run

    def overhead_ms(self) -> float:
        gaps = [1000 * (self.wall[i] - self.run[i]) for i in self.wall if i in self.run]
        return statistics.median(gaps) if gaps else float("nan")


def run_workers_bench(args: argparse.Namespace, *, demo_dir: Path | None = None) -> int:
    """Run the three ways, print the table, write ``--json``. Exit 1 when a job failed or Ray is
    missing."""
    from ..core.paths import default_models_dir
    from ..engine.executor import DiffusersExecutor, EngineSettings

    models_dir = Path(args.models_dir) if args.models_dir else default_models_dir()
    settings = EngineSettings(models_dir, device=args.device, demo_dir=demo_dir)
    model = args.model if args.model != "demo-tiny-sdxl" else DEMO_MODEL
    size = args.size or (64, 64)
    config = RunConfig.from_dict(
        {
            "prompt": "a harbour at dawn, oil painting",
            "seed": 7,
            "txt2img": {"model": model, "width": size[0], "height": size[1], "steps": args.steps},
        }
    )
    jobs = args.jobs
    report = WorkersReport(device=str(args.device), jobs=jobs, steps=args.steps, size=f"{size[0]}x{size[1]}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report.results.append(_in_process(DiffusersExecutor(settings), config, jobs, Path(tmp) / "here"))
            for count in (1, 2):
                report.results.append(_on_ray(settings, config, jobs, count, Path(tmp) / f"ray{count}"))
        except ConfigError as exc:
            print(f"bench --workers: {exc}", file=sys.stderr)
            return ExitCode.FAILED
    print(_table(report))
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return ExitCode.OK if all(r.failed == 0 for r in report.results) else ExitCode.FAILED


def _in_process(engine: Any, config: RunConfig, jobs: int, folder: Path) -> ModeResult:
    from ..core.session import SessionOptions, open_session

    options = SessionOptions(OutputSettings(folder / "out"), queue_path=folder / "queue.sqlite3")
    with open_session(engine, options) as session:
        return _measure("in-process", session, config, jobs, warm_ups=1)


def _on_ray(settings: Any, config: RunConfig, jobs: int, count: int, folder: Path) -> ModeResult:
    from ..cluster import RayWorkerPool
    from ..core.dispatch import dispatching
    from ..core.fake_executor import FakeExecutor
    from ..core.session import SessionOptions, open_session

    pool = RayWorkerPool(WorkersSetting.parse(str(count)), settings)
    t0 = time.perf_counter()
    handles, failed = pool.start()
    startup = time.perf_counter() - t0
    rss = _ray_rss_mb()

    class Started:  # the pool is started already: the dispatcher takes its workers as they are
        def start(self) -> tuple[list[Any], list[Any]]:
            return handles, failed

        def close(self) -> None:
            pool.close()

    options = SessionOptions(OutputSettings(folder / "out"), queue_path=folder / "queue.sqlite3")
    # The session's own engine runs nothing here: every job goes to a worker.
    with open_session(FakeExecutor(), options, job_runner=dispatching(Started())) as session:
        result = _measure(f"ray-{count}", session, config, jobs, warm_ups=count)
    result.startup_s, result.ray_rss_mb = startup, rss
    return result


def _measure(mode: str, session: Any, config: RunConfig, jobs: int, *, warm_ups: int) -> ModeResult:
    session.enqueue(config, warm_ups)
    session.run_queue()  # untimed: each worker loads the model once
    timing = _Timing()
    session.subscribe(timing)
    session.enqueue(config, jobs)
    t0 = time.perf_counter()
    finished = session.run_queue()
    seconds = time.perf_counter() - t0
    failed = sum(job.status is not JobStatus.COMPLETED for job in finished)
    return ModeResult(
        mode,
        len(finished),
        seconds,
        60 * len(finished) / seconds if seconds else float("nan"),
        timing.overhead_ms(),
        workers_used=max(len(timing.workers), 1),
        failed=failed,
    )


def _ray_rss_mb() -> float | None:
    """The resident memory of this process's Ray processes (its children), in MiB."""
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process(os.getpid())
    total = 0
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def _table(report: WorkersReport) -> str:
    lines = [
        f"bench --workers: {report.jobs} jobs, {report.size}, {report.steps} steps, device {report.device}",
        f"{'mode':<11} {'workers':>7} {'jobs/min':>9} {'seconds':>8} {'overhead ms':>12} "
        f"{'start-up s':>10} {'Ray RSS MiB':>11}",
    ]
    base = report.results[0].jobs_per_minute if report.results else 0.0
    for r in report.results:
        startup = f"{r.startup_s:.1f}" if r.startup_s is not None else "-"
        rss = f"{r.ray_rss_mb:.0f}" if r.ray_rss_mb is not None else "-"
        lines.append(
            f"{r.mode:<11} {r.workers_used:>7} {r.jobs_per_minute:>9.1f} {r.seconds:>8.1f} "
            f"{r.dispatch_overhead_ms:>12.1f} {startup:>10} {rss:>11}"
            + (f"   ({r.jobs_per_minute / base:.2f}x in-process)" if base and r.mode != "in-process" else "")
            + (f"   {r.failed} FAILED" if r.failed else "")
        )
    return "\n".join(lines)
