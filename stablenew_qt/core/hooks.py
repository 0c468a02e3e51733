"""Learning hooks: observers the PipelineRunner calls after each finished stage and at the end of
every run, whatever its status.

A hook receives plain frozen records (:class:`StageRecord`, :class:`RunRecord`), never live runner
objects, so it can keep them, log them or feed them to something that learns from past runs.
:class:`JsonlLearningHook` appends one JSON line per run to a file. No hook is registered unless
the user asks for one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .outputs import app_data_dir, json_default


@dataclass(frozen=True)
class StageRecord:
    """One finished stage of a run. ``index`` counts from 0 in plan order; ``seconds`` is wall time;
    ``params`` are the stage's reported parameters (A1111 ``extra_generation_params`` keys)."""

    run_id: str
    stage: str
    index: int
    seconds: float
    image_count: int
    params: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of this record."""
        return {
            "run_id": self.run_id,
            "stage": str(self.stage),
            "index": self.index,
            "seconds": self.seconds,
            "image_count": self.image_count,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class RunRecord:
    """One finished run. ``status`` is COMPLETED, FAILED or CANCELLED; ``config`` is the RunConfig's
    JSON dict as run; ``outputs`` are the written file paths; ``seconds`` is the run's wall time;
    ``error`` is the user-facing message when the run failed."""

    run_id: str
    status: str
    config: Mapping[str, Any]
    seeds: tuple[int, ...]
    plan: Mapping[str, Any]
    stages: tuple[StageRecord, ...]
    outputs: tuple[str, ...]
    seconds: float
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of this record, stage records nested."""
        return {
            "run_id": self.run_id,
            "status": str(self.status),
            "config": dict(self.config),
            "seeds": list(self.seeds),
            "plan": dict(self.plan),
            "stages": [stage.to_dict() for stage in self.stages],
            "outputs": list(self.outputs),
            "seconds": self.seconds,
            "error": self.error,
        }


@runtime_checkable
class LearningHook(Protocol):
    """Receives records of finished stages and runs. Called on the runner's worker thread, so an
    implementation must not touch the UI and should return quickly."""

    def on_stage_finished(self, record: StageRecord) -> None: ...

    def on_run_finished(self, record: RunRecord) -> None: ...


def default_learning_log_path() -> Path:
    """The learning log's usual place: ``<user data dir>/learning/runs.jsonl``."""
    return app_data_dir() / "learning" / "runs.jsonl"


def _local_now() -> datetime:
    return datetime.now().astimezone()


class JsonlLearningHook:
    """Appends one JSON line per finished run to ``path`` (JSON Lines, UTF-8).

    Each line is the :class:`RunRecord` as a dict plus ``"timestamp"`` (ISO 8601 with timezone),
    written with a single append and fsynced, so lines from several hooks or processes on the same
    file never interleave. Parent folders are created on the first write. ``clock`` exists for
    tests. Stage records are ignored: they arrive nested in the run record.
    """

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _local_now) -> None:
        self._path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def on_stage_finished(self, record: StageRecord) -> None:
        """Does nothing; see :meth:`on_run_finished`."""

    def on_run_finished(self, record: RunRecord) -> None:
        """Append ``record`` as one line. Raises ValueError for NaN/infinite numbers (not JSON)."""
        line = json.dumps(
            {"timestamp": self._clock().isoformat(), **record.to_dict()},
            ensure_ascii=False,
            allow_nan=False,
            default=json_default,
        )
        self._append((line + "\n").encode("utf-8"))

    def _append(self, data: bytes) -> None:
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered append: the whole line goes to the OS in one write() call (a regular file
            # takes it whole; the loop only guards against a short write).
            with open(self._path, "ab", buffering=0) as handle:
                written = 0
                while written < len(data):
                    written += handle.write(data[written:])
                handle.flush()
                os.fsync(handle.fileno())
