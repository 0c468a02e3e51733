"""The composition root: ``stablenew-qt`` opens the window without importing torch on the GUI thread
(nor Ray, with the workers setting off)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from stablenew_qt.app import main
code = main(["--exit-after-show"])
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "ultralytics", "ray") if m in sys.modules)
print("heavy:", ",".join(heavy))
from PySide6.QtWidgets import QApplication
app = QApplication.instance()
print("icon:", not app.windowIcon().isNull(), "stylesheet:", "StageCard" in app.styleSheet())
sys.exit(code)
"""


def test_app_opens_the_window_and_exits_without_importing_torch(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "STABLENEW_MODELS_DIR": str(tmp_path / "models")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "heavy: \n" in done.stdout
    assert "icon: True stylesheet: True" in done.stdout  # package data: stablenew_qt/resources/
    assert "QThread: Destroyed while thread is still running" not in done.stderr


def test_qt_void_calls_do_not_leak_none_references() -> None:
    """PySide6 6.12.0 released a reference to None on every void call, which aborts Python 3.11
    after a few thousand calls; pyproject excludes that release. Guard against a repeat."""
    from PySide6.QtCore import QObject

    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(5000):
        obj.setObjectName("x")
    assert sys.getrefcount(None) >= before - 10


def test_a_damaged_queue_file_is_reported_backed_up_and_left_alone_for_a_temporary_queue(
    tmp_path: Path,
) -> None:
    from stablenew_qt.core.queue import default_queue_path

    queue_file = default_queue_path()  # inside this test session's sandboxed data folder
    queue_file.parent.mkdir(parents=True, exist_ok=True)
    damaged = b"SQLite format 3\x00" + b"\xff" * 4000
    queue_file.write_bytes(damaged)
    try:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "STABLENEW_MODELS_DIR": str(tmp_path / "models")}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert "the job queue is unavailable; this session uses a temporary queue" in done.stderr
        assert queue_file.read_bytes() == damaged, "the damaged file is never changed"
        backups = list(queue_file.parent.glob(f"{queue_file.name}.backup-*"))
        assert [b.read_bytes() for b in backups] == [damaged]
    finally:
        for path in queue_file.parent.glob(f"{queue_file.name}*"):
            path.unlink()
