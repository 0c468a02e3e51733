"""Job: one queued run as the JobQueue stores it, and its status.

A job is an immutable RunConfig (stored as JSON, exactly as queued) plus what happened to it. Jobs
are frozen values: the JobQueue hands out fresh ones after every change.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from .config import MAX_SEED, RunConfig
from .errors import FailureCause, shorten
from .lifecycle import LifecycleState

#: The ``jobs`` columns :func:`job_from_row` reads.
JOB_COLUMNS = (
    "id, config, status, position, priority, created, started, finished, attempts, error, outputs, "
    "run_id, output_root, cancel_requested, cause, group_id, group_index, rating"
)


class JobStatus(StrEnum):
    """Where a job stands: queued -> running -> completed | failed | cancelled, or interrupted when
    its process died while it ran. See ``docs/queue.md`` for every transition."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


#: The job status a run's end records (the same words: a run and its job always agree).
STATUS_OF_RUN: dict[LifecycleState, JobStatus] = {
    LifecycleState.COMPLETED: JobStatus.COMPLETED,
    LifecycleState.FAILED: JobStatus.FAILED,
    LifecycleState.CANCELLED: JobStatus.CANCELLED,
}
#: Statuses of jobs that ended (``clear_finished`` removes these).
FINISHED_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
#: Statuses ``retry`` queues again.
RETRYABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED})


@dataclass(frozen=True)
class Job:
    """One job as stored. ``outputs`` are final images already on disk (set when completed);
    ``run_id``/``output_root`` name the run folder of the latest attempt (``<root>/<date>/<run_id>``);
    ``attempts`` counts how often it was started; ``cause`` says why a failed, cancelled or
    interrupted job did not complete (``error`` is its message). Timestamps are timezone-aware."""

    id: int
    config_json: str = field(repr=False)
    status: JobStatus
    position: int
    priority: int
    created: datetime
    started: datetime | None
    finished: datetime | None
    attempts: int
    error: str | None
    outputs: tuple[Path, ...]
    run_id: str | None
    output_root: Path | None
    cancel_requested: bool
    cause: FailureCause | None = None
    #: The :class:`~.job_group.JobGroup` the job belongs to, and its index there (a sweep cell's
    #: grid index); None for a job queued on its own.
    group_id: int | None = None
    group_index: int | None = None
    #: The user's 1-5 rating of the job's images (None: not rated).
    rating: int | None = None

    @cached_property
    def config(self) -> RunConfig:
        """The job's RunConfig. Raises ConfigError if it no longer validates."""
        return RunConfig.from_json(self.config_json)

    @cached_property
    def config_data(self) -> dict[str, Any]:
        """The stored config as plain JSON data (for display; never raises)."""
        try:
            data = json.loads(self.config_json)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def model(self) -> str:
        """The first stage's model name as written in the config ("" if none)."""
        t2i, i2i = self.config_data.get("txt2img") or {}, self.config_data.get("img2img") or {}
        model = t2i.get("model") if t2i.get("enabled", True) else i2i.get("model") or t2i.get("model")
        return str(model or "")

    @property
    def when(self) -> datetime:
        """When the job finished, or was created if it has not finished (the history's date)."""
        return self.finished or self.created

    def matches(self, text: str) -> bool:
        """Case-insensitive search in prompts, models, error and run id."""
        data = self.config_data
        fields = (data.get("prompt"), data.get("negative_prompt"), self.model, self.error, self.run_id)
        needle = text.casefold()
        return any(needle in str(value).casefold() for value in fields if value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``queue list --json``)."""

        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "id": self.id,
            "status": self.status.value,
            "priority": self.priority,
            "position": self.position,
            "created": iso(self.created),
            "started": iso(self.started),
            "finished": iso(self.finished),
            "attempts": self.attempts,
            "error": self.error,
            "cause": self.cause.to_dict() if self.cause else None,
            "outputs": [str(p) for p in self.outputs],
            "run_id": self.run_id,
            "group": self.group_id,
            "group_index": self.group_index,
            "rating": self.rating,
            "config": self.config_data,
        }


#: The most copies one ``add`` queues (``queue add --count``): more is surely a typo, and each
#: copy is a row in memory and in the queue file.
MAX_COPIES = 10_000


def stepped_copies(config: RunConfig, count: int) -> list[RunConfig]:
    """``count`` (1 to :data:`MAX_COPIES`) copies of ``config`` whose seeds step by the run's
    image count (copy i starts at ``seed + i * batch_size * batch_count``, wrapping at 2**32), so
    no two copies repeat an image. A random (-1) seed stays random in every copy; an explicit
    img2img seed steps the same way. With a variation seed on (strength > 0) the seeds stay and
    the variation seed steps instead, as A1111's batch count does."""
    if not 1 <= count <= MAX_COPIES:
        raise ValueError(f"count must be from 1 to {MAX_COPIES:,}, got {shorten(count)}")
    copies = []
    for i in range(count):
        offset = i * config.batch_size * config.batch_count
        updates: dict[str, object] = {}
        variation = config.subseed_strength > 0
        if variation and config.subseed != -1:
            updates["subseed"] = (config.subseed + offset) % (MAX_SEED + 1)
        if config.seed != -1 and not variation:
            updates["seed"] = (config.seed + offset) % (MAX_SEED + 1)
        i2i_seed = config.img2img.seed
        if i2i_seed is not None and i2i_seed != -1 and not variation:
            updates["img2img"] = config.img2img.model_copy(
                update={"seed": (i2i_seed + offset) % (MAX_SEED + 1)}
            )
        copies.append(config.model_copy(update=updates))
    return copies


def filter_jobs(
    jobs: Iterable[Job],
    status: Collection[JobStatus] | None = None,
    text: str | None = None,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Job]:
    """The ``jobs`` (order kept) with one of the ``status``es, whose prompts, models or error
    contain ``text``, made with ``model``, and that finished (or, unfinished, were created) in
    ``[since, until)``. A filter left None keeps everything."""
    return [
        job
        for job in jobs
        if (status is None or job.status in status)
        and (not text or job.matches(text))
        and (model is None or job.model == model)
        and (since is None or job.when >= since)
        and (until is None or job.when < until)
    ]


def with_new_seed(config: RunConfig, rng: random.Random | None = None) -> RunConfig:
    """``config`` with a fresh random seed drawn now (so it is recorded, not ``-1``); an explicit
    img2img seed is redrawn too. ``rng`` defaults to the OS's randomness."""
    draw = (rng or random.SystemRandom()).randint
    updates: dict[str, object] = {"seed": draw(0, MAX_SEED)}
    if config.img2img.seed is not None:
        updates["img2img"] = config.img2img.model_copy(update={"seed": draw(0, MAX_SEED)})
    return config.model_copy(update=updates)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def job_from_row(row: sqlite3.Row) -> Job:
    """A Job from a ``jobs`` row selected as :data:`JOB_COLUMNS` (with ``sqlite3.Row`` rows)."""
    created = _time(row["created"])
    assert created is not None
    return Job(
        id=row["id"],
        config_json=row["config"],
        status=JobStatus(row["status"]),
        position=row["position"],
        priority=row["priority"],
        created=created,
        started=_time(row["started"]),
        finished=_time(row["finished"]),
        attempts=row["attempts"],
        error=row["error"],
        outputs=tuple(Path(p) for p in json.loads(row["outputs"])),
        run_id=row["run_id"],
        output_root=Path(row["output_root"]) if row["output_root"] else None,
        cancel_requested=bool(row["cancel_requested"]),
        cause=_cause(row["cause"]),
        group_id=row["group_id"],
        group_index=row["group_index"],
        rating=row["rating"],
    )


def _cause(text: str | None) -> FailureCause | None:
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return FailureCause.from_dict(data) if isinstance(data, dict) else None
