"""Hand-made :class:`~stablenew_qt.core.job.Job` records for tests that need a job as the queue
would return it without a queue file (placement, worker runs, History rows). Import it as
``from job_records import job_record`` (tests/ is on the path, as for local_workers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stablenew_qt.core.job import Job, JobStatus


def job_record(
    job_id: int, config_json: str = "{}", status: JobStatus = JobStatus.QUEUED, **changes: Any
) -> Job:
    """Job ``job_id`` with ``config_json`` and ``status``, created now, never started, no outputs;
    ``changes`` sets any other field (``attempts``, ``finished``, ``group_id``, ``rating`` …)."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "position": job_id,
        "priority": 0,
        "created": now,
        "started": None,
        "finished": None,
        "attempts": 0,
        "error": None,
        "outputs": (),
        "run_id": None,
        "output_root": None,
        "cancel_requested": False,
    }
    return Job(id=job_id, config_json=config_json, status=status, **{**fields, **changes})
