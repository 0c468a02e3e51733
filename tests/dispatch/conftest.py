"""Dispatch test fixtures: a fresh queue, and the session's controller (its output folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stablenew_qt.core.controller import AppController
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.runner import PipelineRunner


@pytest.fixture
def job_queue(tmp_path: Path) -> Iterator[JobQueue]:
    queue = JobQueue(tmp_path / "queue.sqlite3")
    yield queue
    queue.close()


@pytest.fixture
def app_controller(tmp_path: Path) -> AppController:
    """The session's controller: its output settings say where the dispatcher publishes runs."""
    return AppController(PipelineRunner(FakeExecutor(), OutputSettings(tmp_path / "runs")))
