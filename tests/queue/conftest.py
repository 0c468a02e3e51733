"""Queue test fixtures: a fresh JobQueue file per test, and controllers over the FakeExecutor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stablenew_qt.core.controller import AppController
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.runner import PipelineRunner


@pytest.fixture
def queue_path(tmp_path: Path) -> Path:
    return tmp_path / "queue.sqlite3"


@pytest.fixture
def job_queue(queue_path: Path) -> Iterator[JobQueue]:
    """A JobQueue on a new file, closed after the test."""
    queue = JobQueue(queue_path)
    yield queue
    queue.close()


@pytest.fixture
def make_controller(tmp_path: Path) -> Callable[..., AppController]:
    """Factory: ``make_controller(executor=None)`` -> an AppController writing to ``tmp_path/runs``."""

    def make(executor: FakeExecutor | None = None) -> AppController:
        return AppController(PipelineRunner(executor or FakeExecutor(), OutputSettings(tmp_path / "runs")))

    return make
