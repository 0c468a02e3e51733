"""The crash test: ``python -m stablenew_qt queue run`` on the demo models, killed with SIGKILL in
the middle of a stage and again at a PNG write, then restarted with ``--resume-interrupted``
(and, beside it, Ctrl-C: the running job is cancelled, the rest stay queued, exit 130).

After the last restart every job is completed, each interrupted job ran exactly once more
(attempts == 2, the others 1), every PNG in the output folder opens and carries its infotext, no
temporary or half-written file is left, every completed job's images and manifest are there, and
SQLite's integrity check passes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.queue import JobQueue, JobStatus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sys.platform != "linux", reason="points the demo cache with XDG_CACHE_HOME and kills with SIGKILL"
    ),
]

S = JobStatus
JOBS = 4
STEPS = 120  # about a second a job on a laptop CPU, after the first job's warm-up
WAIT_S = 90.0  # how long any one expected event may take before the test gives up


@pytest.fixture
def demo_env(demo_models: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess whose demo-model cache IS the session's prebuilt folder."""
    demo_root = next(iter(demo_models.values())).parent
    cache = tmp_path / "cache"
    (cache / "StableNewQt").mkdir(parents=True)
    (cache / "StableNewQt" / "demo-models").symlink_to(demo_root, target_is_directory=True)
    return {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONUNBUFFERED": "1"}


class QueueRun:
    """One ``queue run`` process, its stdout and stderr going to a log file we can poll."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str) -> None:
        self.log = tmp_path / f"{name}.log"
        args = [sys.executable, "-m", "stablenew_qt", "queue", "run", "--resume-interrupted"]
        args += ["--queue", str(tmp_path / "queue.sqlite3"), "--output", str(tmp_path / "out")]
        args += ["--models-dir", str(tmp_path / "models"), "--device", "cpu"]
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, *texts: str) -> None:
        """Wait until ``texts`` appear in the log, in this order."""
        deadline = time.monotonic() + WAIT_S
        while not _in_order(self.text(), texts):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"never saw {texts!r}; the process log:\n{self.text()}")
            time.sleep(0.005)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


def _in_order(text: str, texts: tuple[str, ...]) -> bool:
    position = 0
    for part in texts:
        position = text.find(part, position)
        if position < 0:
            return False
        position += len(part)
    return True


def _files(folder: Path) -> set[Path]:
    return {Path(root, name) for root, _dirs, names in os.walk(folder) for name in names}


def _running(tmp_path: Path) -> set[int]:
    with JobQueue(tmp_path / "queue.sqlite3") as queue:
        return {job.id for job in queue.list(status=S.RUNNING)}


def _published(tmp_path: Path, job_id: int) -> bool:
    with JobQueue(tmp_path / "queue.sqlite3") as queue:
        run_id = queue.get(job_id).run_id
    return bool(run_id) and any((tmp_path / "out").glob(f"*/{run_id}/manifest.json"))


def _queue_jobs(tmp_path: Path, count: int) -> list[int]:
    (tmp_path / "models").mkdir()
    config = {
        "prompt": "a lighthouse in a storm",
        "seed": 500,
        "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": STEPS},
    }
    with JobQueue(tmp_path / "queue.sqlite3") as queue:
        return [job.id for job in queue.add(RunConfig.from_dict(config), count)]


def test_kill_9_mid_stage_and_mid_write_then_resume(demo_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    ids = _queue_jobs(tmp_path, JOBS)
    interrupted: list[int] = []

    # 1. Killed in the middle of the second job's stage (the model is loaded by then).
    first = QueueRun(tmp_path, demo_env, "first")
    first.wait_for(f"job {ids[1]}: started", "stage 1/1 txt2img")
    first.kill()
    assert _running(tmp_path) == {ids[1]}, first.text()
    interrupted.append(ids[1])

    # 2. Resumed; killed as soon as the next job's PNG write shows up in the output folder.
    second = QueueRun(tmp_path, demo_env, "second")
    second.wait_for(f"job {ids[1]} was interrupted", f"job {ids[1]}: completed")
    before = _files(out)
    deadline = time.monotonic() + WAIT_S
    while not _files(out) - before and second.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    second.kill()
    assert _files(out) - before, f"no new file appeared; the process log:\n{second.text()}"
    # Usually mid-write (in the run's hidden staging folder); if the kill came after the job was
    # recorded, none is running; if it came after the run was published but before it was
    # recorded, recovery marks the job completed without running it again (attempts stay 1).
    interrupted += [job_id for job_id in sorted(_running(tmp_path)) if not _published(tmp_path, job_id)]

    # 3. Restarted: works through the rest.
    third = QueueRun(tmp_path, demo_env, "third")
    assert third.proc.wait(WAIT_S * 2) == 0, third.text()
    for job_id in interrupted[1:]:
        assert f"job {job_id} was interrupted" in third.text()

    with JobQueue(tmp_path / "queue.sqlite3") as queue:
        jobs = queue.list()
    assert [job.status for job in jobs] == [S.COMPLETED] * JOBS
    assert {job.id: job.attempts for job in jobs} == {i: 2 if i in interrupted else 1 for i in ids}
    for job in jobs:
        (image,) = job.outputs
        manifest = json.loads((image.parent / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["status"] == "COMPLETED" and manifest["images"] == [image.name]
        assert f"Seed: {job.config.seed}" in _infotext(image)
    every_file = _files(out)
    hidden = [p for p in every_file if any(part.startswith(".") for part in p.relative_to(out).parts)]
    assert not hidden, "a temporary file or staging folder was left behind"
    for path in every_file:
        assert path.suffix in (".png", ".json"), path
        if path.suffix == ".png":
            assert "Steps: " in _infotext(path), path
    with sqlite3.connect(tmp_path / "queue.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def test_ctrl_c_cancels_the_running_job_and_keeps_the_rest(demo_env: dict[str, str], tmp_path: Path) -> None:
    first, *rest = _queue_jobs(tmp_path, 3)
    run = QueueRun(tmp_path, demo_env, "ctrl-c")
    run.wait_for(f"job {first}: started", "stage 1/1 txt2img")
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(WAIT_S) == 130, run.text()
    assert f"job {first}: cancelled" in run.text() and "2 job(s) left queued" in run.text()
    with JobQueue(tmp_path / "queue.sqlite3") as queue:
        assert [(job.id, job.status) for job in queue.list()] == [
            (rest[0], S.QUEUED),
            (rest[1], S.QUEUED),
            (first, S.CANCELLED),
        ]
    assert not _files(tmp_path / "out"), "a cancelled run writes nothing"


def _infotext(path: Path) -> str:
    with Image.open(path) as image:
        image.load()  # a truncated file fails here
        return str(image.text["parameters"])
