"""The SQL the JobQueue composes: each function is one step inside the caller's transaction.

Ordering: queued jobs run by ``priority`` (higher first), then ``position`` (lower first). New
positions come from the minimum or maximum over *all* jobs, and moves only permute the queued
jobs' existing (priority, position) slots, so no two jobs ever share a slot.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path

from .config import RunConfig
from .errors import FailureCause, FailureKind
from .job import JOB_COLUMNS, Job, JobStatus, job_from_row
from .queue_db import QueueError

QUEUED_ORDER = "ORDER BY priority DESC, position, id"
DISPLAY_ORDER = (
    "ORDER BY CASE status WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, "
    "CASE status WHEN 'queued' THEN -priority ELSE 0 END, "
    "CASE status WHEN 'queued' THEN position ELSE id END, id"
)
INTERRUPTED_MESSAGE = "the app stopped while this job was running (crash, power loss or kill)"
CLOSED_MESSAGE = "the app was closed while this job was running"
INTERRUPTED_CAUSE = json.dumps(FailureCause(FailureKind.INTERRUPTED, INTERRUPTED_MESSAGE).to_dict())
CANCELLED_CAUSE = json.dumps(FailureCause(FailureKind.CANCELLED, "cancelled by the user").to_dict())
FINISHED_VALUES = (JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


def now_iso() -> str:
    return datetime.now().astimezone().isoformat()


def insert_jobs(
    db: sqlite3.Connection, configs: Sequence[RunConfig], *, front: bool, priority: int
) -> list[int]:
    """Insert queued jobs in order, at the end with ``priority`` or before every queued job."""
    if front:
        priority, first = front_slot(db, len(configs))
    else:
        first = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM jobs").fetchone()[0]
    now, ids = now_iso(), []
    for offset, config in enumerate(configs):
        cursor = db.execute(
            "INSERT INTO jobs (config, status, position, priority, created) VALUES (?, 'queued', ?, ?, ?)",
            (config.to_json(indent=None), first + offset, priority, now),
        )
        assert cursor.lastrowid is not None
        ids.append(cursor.lastrowid)
    return ids


def front_slot(db: sqlite3.Connection, count: int) -> tuple[int, int]:
    """(priority, first position) that puts ``count`` jobs before every queued job."""
    priority = db.execute("SELECT MAX(priority) FROM jobs WHERE status = 'queued'").fetchone()[0]
    first = db.execute("SELECT COALESCE(MIN(position), 1) FROM jobs").fetchone()[0] - count
    return max(priority or 0, 0), first


def requeue(db: sqlite3.Connection, ids: Sequence[int], *, front: bool) -> None:
    """Make jobs queued again, before or after every queued job. ``attempts`` is kept, and so are
    ``run_id``/``output_root`` until the next claim (they name the last attempt's folder)."""
    if front:
        priority, first = front_slot(db, len(ids))
    else:
        lowest = db.execute("SELECT MIN(priority) FROM jobs WHERE status = 'queued'").fetchone()[0]
        priority = min(lowest or 0, 0)
        first = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM jobs").fetchone()[0]
    for offset, job_id in enumerate(ids):
        db.execute(
            "UPDATE jobs SET status = 'queued', priority = ?, position = ?, started = NULL, "
            "finished = NULL, error = NULL, cause = NULL, cancel_requested = 0 WHERE id = ?",
            (priority, first + offset, job_id),
        )


RUNNABLE = (
    "status = 'queued' AND (group_id IS NULL OR group_id NOT IN (SELECT id FROM groups WHERE paused = 1))"
)


def claim_next(db: sqlite3.Connection) -> int | None:
    """Mark the first queued job running (attempts + 1), skipping paused groups' jobs; None if one
    runs already or none waits."""
    if db.execute("SELECT 1 FROM jobs WHERE status = 'running'").fetchone():
        return None
    row = db.execute(f"SELECT id FROM jobs WHERE {RUNNABLE} {QUEUED_ORDER}").fetchone()
    return None if row is None else claim(db, int(row[0]))


def runnable_jobs(db: sqlite3.Connection, limit: int) -> list[Job]:
    """The first ``limit`` queued jobs in run order, paused groups' jobs skipped."""
    rows = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {RUNNABLE} {QUEUED_ORDER} LIMIT ?", (limit,))
    return [job_from_row(row) for row in rows.fetchall()]


def claim(db: sqlite3.Connection, job_id: int, *, concurrent: bool = False) -> int | None:
    """Mark the queued job ``job_id`` running (attempts + 1); None if it is not queued (any more) or
    another job runs already (unless ``concurrent``: a dispatcher runs several at once)."""
    if not concurrent and db.execute("SELECT 1 FROM jobs WHERE status = 'running'").fetchone():
        return None
    cursor = db.execute(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, started = ?, finished = NULL, "
        "error = NULL, cause = NULL, outputs = '[]', run_id = NULL, output_root = NULL, "
        "cancel_requested = 0 "
        "WHERE id = ? AND status = 'queued'",
        (now_iso(), job_id),
    )
    return job_id if cursor.rowcount == 1 else None


def mark_running_interrupted(db: sqlite3.Connection) -> list[int]:
    """Every ``running`` job becomes ``interrupted``; returns their ids in start order."""
    ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = 'running' ORDER BY started, id")]
    db.execute(
        "UPDATE jobs SET status = 'interrupted', error = ?, cause = ? WHERE status = 'running'",
        (INTERRUPTED_MESSAGE, INTERRUPTED_CAUSE),
    )
    return ids


def finish(
    db: sqlite3.Connection,
    job_id: int,
    status: JobStatus,
    error: str | None,
    cause: FailureCause | None,
    run_id: str | None,
    outputs: Iterable[Path] | None,
) -> None:
    """Record how a job ended: ``error`` for the user, ``cause`` (None: it completed) to branch
    on; ``run_id``/``outputs`` left as they are when None."""
    require(db, job_id)
    paths = None if outputs is None else json.dumps([str(p) for p in outputs], ensure_ascii=False)
    cause_json = json.dumps(cause.to_dict(), ensure_ascii=False) if cause is not None else None
    db.execute(
        "UPDATE jobs SET status = ?, finished = ?, error = ?, cause = ?, run_id = COALESCE(?, run_id), "
        "outputs = COALESCE(?, outputs), cancel_requested = 0 WHERE id = ?",
        (status.value, now_iso(), error, cause_json, run_id, paths, job_id),
    )


def cancel(db: sqlite3.Connection, job_id: int) -> JobStatus:
    """Cancel a queued/interrupted job, or flag the running one; returns its status before."""
    status = require(db, job_id)
    if status is JobStatus.RUNNING:
        db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
    elif status in (JobStatus.QUEUED, JobStatus.INTERRUPTED):
        db.execute(
            "UPDATE jobs SET status = 'cancelled', finished = ?, cause = ? WHERE id = ?",
            (now_iso(), CANCELLED_CAUSE, job_id),
        )
    return status


def move(db: sqlite3.Connection, job_id: int, target: Callable[[int], int]) -> list[int] | None:
    """Move a queued job from its index ``i`` among the queued jobs to ``target(i)`` (clamped).
    Returns the queued ids in their new order, or None if it did not move."""
    rows = db.execute(
        f"SELECT id, priority, position FROM jobs WHERE status = 'queued' {QUEUED_ORDER}"
    ).fetchall()
    ids = [row[0] for row in rows]
    if job_id not in ids:
        require(db, job_id, {JobStatus.QUEUED}, "move")
    current = ids.index(job_id)
    index = min(max(target(current), 0), len(ids) - 1)
    if index == current:
        return None
    ids.insert(index, ids.pop(current))
    for new_id, row in zip(ids, rows, strict=True):
        if new_id != row[0]:
            db.execute("UPDATE jobs SET priority = ?, position = ? WHERE id = ?", (row[1], row[2], new_id))
    return ids


def move_together(db: sqlite3.Connection, job_ids: Iterable[int], *, top: bool) -> list[int]:
    """Move the queued jobs among ``job_ids`` before (``top``) or after every other queued job,
    keeping their order among themselves and the others'. Returns the ids whose slot changed."""
    rows = db.execute(
        f"SELECT id, priority, position FROM jobs WHERE status = 'queued' {QUEUED_ORDER}"
    ).fetchall()
    wanted = set(job_ids)
    members = [row[0] for row in rows if row[0] in wanted]
    others = [row[0] for row in rows if row[0] not in wanted]
    order = members + others if top else others + members
    changed = []
    for new_id, row in zip(order, rows, strict=True):
        if new_id != row[0]:
            db.execute("UPDATE jobs SET priority = ?, position = ? WHERE id = ?", (row[1], row[2], new_id))
            changed.append(new_id)
    return changed


def require(
    db: sqlite3.Connection, job_id: int, allowed: Iterable[JobStatus] | None = None, action: str = ""
) -> JobStatus:
    """The job's status; QueueError if there is no such job or ``action`` does not apply to it."""
    row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise QueueError(f"there is no job {job_id} in the queue")
    status = JobStatus(row[0])
    allowed = None if allowed is None else frozenset(allowed)
    if allowed is not None and status not in allowed:
        choices = ", ".join(sorted(s.value for s in allowed))
        raise QueueError(f"cannot {action} job {job_id}: it is {status.value} (only {choices} jobs can)")
    return status


def select_jobs(
    db: sqlite3.Connection, ids: Iterable[int] | None = None, statuses: Iterable[JobStatus] | None = None
) -> list[Job]:
    """The jobs ``ids`` in that order (missing ones skipped), or every job (with one of
    ``statuses``, if given) in display order."""
    if ids is None:
        return [job_from_row(row) for row in select_rows(db, statuses)]
    ids = list(ids)
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    rows = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({marks})", ids).fetchall()
    by_id = {row["id"]: job_from_row(row) for row in rows}
    return [by_id[i] for i in ids if i in by_id]


def select_rows(db: sqlite3.Connection, statuses: Iterable[JobStatus] | None = None) -> list[sqlite3.Row]:
    """Every job's row (with one of ``statuses``, if given) in display order, unparsed: a quick read
    under the caller's lock, parsed (:func:`job_from_row`) after it is released."""
    values = [] if statuses is None else [status.value for status in statuses]
    where = "" if statuses is None else f"WHERE status IN ({', '.join('?' * len(values))})"
    return db.execute(f"SELECT {JOB_COLUMNS} FROM jobs {where} {DISPLAY_ORDER}", values).fetchall()


def read_setting(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def write_setting(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
