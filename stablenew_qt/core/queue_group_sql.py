"""The SQL of job groups: each function is one step inside the caller's transaction (see
:mod:`.queue_sql` for the jobs' own)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import RunConfig
from .job import FINISHED_STATUSES
from .job_group import GROUP_COLUMNS, GridState, GroupKind, JobGroup, group_from_row
from .queue_db import QueueError
from .queue_sql import front_slot, now_iso

_FINISHED = tuple(status.value for status in FINISHED_STATUSES)


def insert_group(
    db: sqlite3.Connection,
    kind: GroupKind,
    meta: dict[str, Any],
    configs: Sequence[RunConfig],
    indices: Sequence[int],
    *,
    front: bool,
    priority: int,
) -> int:
    """Insert a group and its queued jobs (in ``configs`` order); returns the group's id."""
    now = now_iso()
    cursor = db.execute(
        "INSERT INTO groups (kind, meta, created) VALUES (?, ?, ?)",
        (kind.value, json.dumps(meta, ensure_ascii=False), now),
    )
    group_id = cursor.lastrowid
    assert group_id is not None
    if front:
        priority, first = front_slot(db, len(configs))
    else:
        first = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM jobs").fetchone()[0]
    db.executemany(
        "INSERT INTO jobs (config, status, position, priority, created, group_id, group_index) "
        "VALUES (?, 'queued', ?, ?, ?, ?, ?)",
        [
            (config.to_json(indent=None), first + offset, priority, now, group_id, index)
            for offset, (config, index) in enumerate(zip(configs, indices, strict=True))
        ],
    )
    return group_id


def select_group(db: sqlite3.Connection, group_id: int) -> JobGroup:
    """The group ``group_id``; QueueError if there is none."""
    row = db.execute(f"SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?", (group_id,)).fetchone()
    if row is None:
        raise QueueError(f"there is no group {group_id} in the queue")
    return group_from_row(row)


def select_groups(db: sqlite3.Connection) -> list[JobGroup]:
    return [group_from_row(row) for row in db.execute(f"SELECT {GROUP_COLUMNS} FROM groups ORDER BY id")]


def group_job_ids(db: sqlite3.Connection, group_id: int, statuses: Sequence[str] | None = None) -> list[int]:
    """The group's job ids in index order (with one of ``statuses``, if given)."""
    where, args = "group_id = ?", [group_id]
    if statuses is not None:
        where += f" AND status IN ({', '.join('?' * len(statuses))})"
        args.extend(statuses)  # type: ignore[arg-type]
    rows = db.execute(f"SELECT id FROM jobs WHERE {where} ORDER BY group_index, id", args)
    return [int(row[0]) for row in rows]


def set_paused(db: sqlite3.Connection, group_id: int, paused: bool) -> None:
    select_group(db, group_id)
    db.execute("UPDATE groups SET paused = ? WHERE id = ?", (int(paused), group_id))


def delete_group(db: sqlite3.Connection, group_id: int) -> list[int]:
    """Delete the group and its jobs (none may be running); returns the deleted job ids."""
    select_group(db, group_id)
    if group_job_ids(db, group_id, ["running"]):
        raise QueueError(f"cannot remove group {group_id}: one of its jobs is running (cancel it first)")
    ids = group_job_ids(db, group_id)
    db.execute("DELETE FROM jobs WHERE group_id = ?", (group_id,))
    db.execute("DELETE FROM groups WHERE id = ?", (group_id,))
    return ids


def groups_due(db: sqlite3.Connection) -> list[JobGroup]:
    """Sweep groups whose every job has ended and whose grid is not written yet (or was being
    written when the app stopped)."""
    marks = ", ".join("?" * len(_FINISHED))
    rows = db.execute(
        f"SELECT {GROUP_COLUMNS} FROM groups g WHERE kind = 'sweep' "
        "AND (grid_state IS NULL OR grid_state = 'writing') "
        f"AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.group_id = g.id AND j.status NOT IN ({marks})) "
        "ORDER BY id",
        _FINISHED,
    ).fetchall()
    return [group_from_row(row) for row in rows]


def set_grid(
    db: sqlite3.Connection,
    group_id: int,
    state: GridState,
    paths: Sequence[Path] = (),
    error: str | None = None,
) -> None:
    db.execute(
        "UPDATE groups SET grid_state = ?, grid_paths = ?, grid_error = ? WHERE id = ?",
        (state.value, json.dumps([str(p) for p in paths], ensure_ascii=False), error, group_id),
    )
