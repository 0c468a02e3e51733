"""All-or-nothing runs: at any failure or kill, the output folder shows the whole run or nothing.

1. A simulated full disk at every write point in turn (``os.write``, ``fsync``, ``link``,
   ``mkstemp``, ``mkdir`` and the folder rename, each failing with ENOSPC at its n-th call).
2. A real full disk: a small tmpfs mounted in a private mount namespace (``unshare``), filled
   during the run by "another program"; also full and read-only before the run (pre-flight).
   Skipped, with the reason printed, where such a mount is not allowed.
3. SIGKILL in the middle of a file write and right after the publishing rename, in a child
   process running the queue; then the queue's crash recovery removes the staging folder, and the
   resumed job neither loses nor duplicates images.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stablenew_qt.core import outputs
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.controller import AppController
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job_runner import JobInterrupted, SingleNodeJobRunner
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.core.runner import PipelineRunner

pytestmark = pytest.mark.timeout(120)

BATCH = 3
CONFIG = {
    "prompt": "a lighthouse",
    "seed": 7,
    "batch_size": BATCH,
    "txt2img": {"width": 64, "height": 64, "steps": 1},
    "upscale": {"enabled": True, "upscale_model": "Lanczos", "upscale_factor": 1.0},
}


def files(root: Path) -> set[str]:
    return (
        {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}
        if root.exists()
        else set()
    )


def visible(root: Path) -> set[str]:
    """Files a user sees: no path component hidden (staging folders and temp files are)."""
    return {f for f in files(root) if not any(part.startswith(".") for part in f.split("/"))}


def run_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir() and not p.name.startswith("."))


def assert_whole_run_or_nothing(out: Path, completed: bool, intermediates: bool) -> None:
    """The invariant: no hidden leftovers; a completed run has everything, a failed one no final
    image (only, with intermediates, a folder of them with an ERROR manifest)."""
    hidden = [p for p in out.rglob(".*")] if out.exists() else []
    assert hidden == [], f"hidden leftovers: {hidden}"
    folders = run_folders(out)
    if completed:
        (folder,) = folders
        manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
        finals = sorted(p.name for p in folder.glob("*.png"))
        assert manifest["status"] == "COMPLETED" and len(finals) == BATCH
        assert [n for n in manifest["images"] if "/" not in n] == finals
        assert len(list((folder / "intermediates").glob("*.png"))) == (BATCH if intermediates else 0)
        return
    for folder in folders:  # a failed run keeps at most its intermediates
        assert json.loads((folder / "manifest.json").read_text("utf-8"))["status"] == "FAILED"
        assert not list(folder.glob("*.png")), "a failed run published a final image"
    assert intermediates or not folders


# -- 1. simulated ENOSPC at every write point ----------------------------------------------------


class FullDisk:
    """Makes the n-th call to any of our write points fail with ENOSPC; counts the calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
        self.calls, self.fail_at, self.failed = 0, fail_at, ""
        for module, name, ours in (
            (os, "write", "stablenew_qt.core.atomic_files"),
            (os, "fsync", "stablenew_qt.core.atomic_files"),
            (os, "link", "stablenew_qt.core.atomic_files"),
            (tempfile, "mkstemp", "stablenew_qt.core.atomic_files"),
            (pathlib.Path, "mkdir", "stablenew_qt.core.outputs"),
        ):
            monkeypatch.setattr(module, name, self._wrap(getattr(module, name), name, ours))
        monkeypatch.setattr(
            outputs, "rename_no_replace", self._wrap(outputs.rename_no_replace, "rename", None)
        )

    def _wrap(self, real: Callable[..., Any], name: str, caller: str | None) -> Callable[..., Any]:
        def fault(*args: Any, **kwargs: Any) -> Any:
            if caller is None or sys._getframe(1).f_globals.get("__name__") == caller:
                self.calls += 1
                if self.calls == self.fail_at:
                    self.failed = name
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(*args, **kwargs)

        return fault


@pytest.mark.parametrize("intermediates", [False, True], ids=["finals only", "with intermediates"])
def test_enospc_at_every_write_point_leaves_the_whole_run_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, intermediates: bool
) -> None:
    failed_runs: set[str] = set()
    for fail_at in range(1, 200):
        out = tmp_path / f"out-{fail_at}"
        with monkeypatch.context() as patch:
            disk = FullDisk(patch, fail_at)
            runner = PipelineRunner(FakeExecutor(), OutputSettings(out, save_intermediates=intermediates))
            result = runner.run(RunConfig.from_dict(CONFIG), CancelToken())
        if result.status is LifecycleState.COMPLETED:  # no fault, or one that only costs durability
            assert disk.failed in ("", "fsync"), (fail_at, disk.failed)  # a folder's fsync is best effort
            assert_whole_run_or_nothing(out, completed=True, intermediates=intermediates)
        else:
            failed_runs.add(disk.failed)
            assert result.status is LifecycleState.FAILED, (fail_at, disk.failed, result)
            assert result.error and "No space left on device" in result.error and "\n" not in result.error
            assert "unexpected" not in result.error and result.image_paths == ()
            assert_whole_run_or_nothing(out, completed=False, intermediates=intermediates)
        if not disk.failed:  # every write point has been failed once
            break
    else:
        pytest.fail("the run never got through")
    assert failed_runs == {"write", "fsync", "link", "mkstemp", "mkdir", "rename"}
    assert fail_at > 4 * BATCH, "too few write points were exercised"


def test_a_failed_publish_keeps_nothing_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: Path, dst: Path) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(outputs, "rename_no_replace", refuse)
    result = PipelineRunner(FakeExecutor(), OutputSettings(tmp_path / "out", save_intermediates=True)).run(
        RunConfig.from_dict(CONFIG), CancelToken()
    )
    assert result.status is LifecycleState.FAILED and result.manifest_path is None
    assert result.error is not None and result.error.startswith("cannot publish the run in ")
    assert "Read-only file system; free some space or choose another output folder" in result.error
    assert files(tmp_path / "out") == set()


def test_keyboard_interrupt_mid_run_discards_the_staging_folder(tmp_path: Path) -> None:
    executor = FakeExecutor().raise_at("upscale", KeyboardInterrupt())
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "out", save_intermediates=True))
    with pytest.raises(KeyboardInterrupt):
        runner.run(RunConfig.from_dict(CONFIG), CancelToken())
    assert files(tmp_path / "out") == set()


# -- 2. a real full disk (tmpfs in a private mount namespace) ------------------------------------

_TMPFS_CHILD = r"""
import json, os, sys
from pathlib import Path
from PIL import Image
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import CancelToken, StageResult
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner

disk, scenario = Path(sys.argv[1]), sys.argv[2]

def fill(leave):
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as handle:
        handle.write(b"\xff" * max(free - leave, 0))

class NoisyFiller(FakeExecutor):
    # Incompressible images, and "another program" fills the disk while the stage runs.
    def generate_images(self, stage, payload, progress, token):
        result = super().generate_images(stage, payload, progress, token)
        if scenario == "fills-during-run":
            fill(leave=100_000)
        images = tuple(Image.effect_noise(im.size, 128).convert("RGB") for im in result.images)
        return StageResult(images, result.info)

if scenario == "full-before":
    fill(leave=50_000)
config = RunConfig.from_dict(
    {"seed": 1, "batch_size": 4, "txt2img": {"width": 256, "height": 256, "steps": 1}}
)
report = {}
try:
    result = PipelineRunner(NoisyFiller(), OutputSettings(disk / "out")).run(config, CancelToken())
    report = {"status": result.status.value, "error": result.error}
except ConfigError as exc:
    report = {"config_error": str(exc)}
out = disk / "out"
report["files"] = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
print(json.dumps(report))
"""


def _in_tmpfs(tmp_path: Path, scenario: str, options: str = "size=2m") -> dict[str, Any]:
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        pytest.skip("needs Linux and unshare(1) to mount a private tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    remount = "mount -o remount,ro $0 &&" if scenario == "read-only" else ""
    script = f'mount -t tmpfs -o {options} tmpfs "$0" && {remount} exec "$1" -c "$2" "$0" "$3"'
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", 'mount -t tmpfs tmpfs "$0"', str(disk)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace here: {probe.stderr.strip()}")
    child = subprocess.run(
        [unshare, "-rm", "sh", "-c", script, str(disk), sys.executable, _TMPFS_CHILD, scenario],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def test_disk_full_during_the_run_leaves_nothing(tmp_path: Path) -> None:
    report = _in_tmpfs(tmp_path, "fills-during-run")
    assert report["status"] == "FAILED", report
    assert "No space left on device" in report["error"] and "nothing of this run was kept" in report["error"]
    assert report["files"] == [], "a failing run must leave nothing in the output folder"


def test_a_full_disk_is_refused_before_the_run(tmp_path: Path) -> None:
    report = _in_tmpfs(tmp_path, "full-before")
    assert "config_error" in report, report
    assert re.search(r"has 0\.0 MiB free, and this run needs up to 0\.\d MiB", report["config_error"])
    assert report["files"] == []


def test_a_read_only_output_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    report = _in_tmpfs(tmp_path, "read-only")
    assert "cannot write in the output folder" in report.get("config_error", ""), report
    assert "Read-only file system" in report["config_error"]


# -- 3. SIGKILL mid-write and right after publishing, then crash recovery ------------------------

_KILL_CHILD = r"""
import os, sys, time
from pathlib import Path
from stablenew_qt.core import atomic_files, outputs
from stablenew_qt.core.controller import AppController
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job_runner import SingleNodeJobRunner
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.runner import PipelineRunner

queue_path, out, point, nth = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def wait_for_the_kill():
    print("KILL-ME", flush=True)
    time.sleep(600)

if point == "write":
    real_write_all, calls = atomic_files._write_all, [0]
    def write_all(fd, data):
        calls[0] += 1
        if calls[0] == nth:
            os.write(fd, data[: len(data) // 2])  # half of the file is on disk
            wait_for_the_kill()
        real_write_all(fd, data)
    atomic_files._write_all = write_all
else:
    real_rename = outputs.rename_no_replace
    def rename(src, dst):
        real_rename(src, dst)
        wait_for_the_kill()  # published; the queue has not recorded it yet
    outputs.rename_no_replace = rename

queue = JobQueue(queue_path)
controller = AppController(PipelineRunner(FakeExecutor(), OutputSettings(out, save_intermediates=True)))
SingleNodeJobRunner(queue, controller).run_until_empty()
print("FINISHED WITHOUT A KILL", flush=True)
"""


@pytest.fixture
def queued_job(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "queue.sqlite3"
    with JobQueue(path) as queue:
        (job,) = queue.add(RunConfig.from_dict(CONFIG))
    yield path, job.id


def _kill_child_at(tmp_path: Path, queue_path: Path, point: str, nth: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(queue_path), str(tmp_path / "out"), point, str(nth)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        line = child.stdout.readline() if ready else ""
        assert line.strip() == "KILL-ME", (
            f"child said {line!r}; stderr: {child.stderr.read() if child.stderr else ''}"
        )
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        child.stdout.close()
        if child.stderr:
            child.stderr.close()


def _recover(queue_path: Path, out: Path) -> tuple[list[object], FakeExecutor]:
    events: list[object] = []
    executor = FakeExecutor()
    with JobQueue(queue_path) as queue:
        controller = AppController(PipelineRunner(executor, OutputSettings(out, save_intermediates=True)))
        runner = SingleNodeJobRunner(queue, controller, auto_resume=True)
        runner.subscribe(events.append)
        runner.run_until_empty()
    return events, executor


# 2 writes per image (intermediate, final) + the manifest: kill in the first, a middle and the last.
@pytest.mark.skipif(sys.platform != "linux", reason="kills a child process with SIGKILL")
@pytest.mark.parametrize("nth", [1, 4, 2 * BATCH + 1], ids=["first file", "a final image", "the manifest"])
def test_sigkill_mid_write_shows_nothing_and_the_resumed_job_runs_once(
    tmp_path: Path, queued_job: tuple[Path, int], nth: int
) -> None:
    queue_path, job_id = queued_job
    out = tmp_path / "out"
    _kill_child_at(tmp_path, queue_path, "write", nth)
    assert visible(out) == set(), "a killed run must show nothing"
    assert any(p.name.endswith(".partial") for p in out.glob("*/.*")), "the staging folder was written"

    events, executor = _recover(queue_path, out)
    (interrupted,) = [e for e in events if isinstance(e, JobInterrupted)]
    assert interrupted.resumed and interrupted.removed_files  # the staging folder's files went
    assert executor.calls, "the resumed job ran again"
    assert_whole_run_or_nothing(out, completed=True, intermediates=True)
    with JobQueue(queue_path) as queue:
        job = queue.get(job_id)
    assert (job.status, job.attempts, len(job.outputs)) == (JobStatus.COMPLETED, 2, BATCH)


@pytest.mark.skipif(sys.platform != "linux", reason="kills a child process with SIGKILL")
def test_sigkill_right_after_publishing_keeps_the_run_and_recovery_completes_the_job(
    tmp_path: Path, queued_job: tuple[Path, int]
) -> None:
    queue_path, job_id = queued_job
    out = tmp_path / "out"
    _kill_child_at(tmp_path, queue_path, "publish", 0)
    assert_whole_run_or_nothing(out, completed=True, intermediates=True)  # the whole run is there
    (published,) = run_folders(out)

    events, executor = _recover(queue_path, out)
    assert executor.calls == [], "a published run must not be made again"
    assert not [e for e in events if isinstance(e, JobInterrupted)]
    with JobQueue(queue_path) as queue:
        job = queue.get(job_id)
    assert (job.status, job.attempts, job.run_id) == (JobStatus.COMPLETED, 1, published.name)
    assert sorted(job.outputs) == sorted(published.glob("*.png"))
    assert run_folders(out) == [published]
