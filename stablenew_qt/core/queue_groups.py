"""The JobQueue's group operations (a mixin of :class:`~.queue.JobQueue`, kept apart so each module
holds one idea): queue many configs as one group, and cancel, pause, resume, move, remove or list it.

Each operation is one transaction, like the rest of the queue. See ``docs/queue.md``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from . import queue_group_sql as gsql
from . import queue_sql as sql
from .config import RunConfig
from .job import Job, JobStatus
from .job_group import GridState, GroupKind, JobGroup
from .queue_db import QueueError

__all__ = ["GroupOperations"]


class GroupOperations:
    """Group methods of the JobQueue; they use its connection, lock and notifications."""

    _conn: sqlite3.Connection
    _lock: threading.RLock

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _changed(self, ids: list[int]) -> list[Job]:
        raise NotImplementedError

    def _notify(self, ids: tuple[int, ...]) -> None:
        raise NotImplementedError

    def add_group(
        self,
        configs: Sequence[RunConfig],
        kind: GroupKind | str,
        meta: Mapping[str, Any] | None = None,
        *,
        indices: Sequence[int] | None = None,
        front: bool = False,
        priority: int = 0,
    ) -> JobGroup:
        """Queue ``configs`` as one group of ``kind`` with its ``meta`` JSON (for a sweep
        ``{"plan": plan.to_dict(), "base": base.model_dump(mode="json")}``), in that order, at the end (or the
        front). ``indices`` are the jobs' places in the group (a sweep cell's grid index; default
        0, 1, …). Each config runs as it is: no seed stepping."""
        if not configs:
            raise QueueError("a group needs at least one job")
        kind = _kind(kind)
        places = list(range(len(configs))) if indices is None else list(indices)
        if len(places) != len(configs) or len(set(places)) != len(places):
            raise QueueError("a group needs one distinct index per job")
        with self._write() as db:
            group_id = gsql.insert_group(
                db, kind, dict(meta or {}), configs, places, front=front, priority=priority
            )
            ids = gsql.group_job_ids(db, group_id)
        self._changed(ids)
        return self.group(group_id)

    def group(self, group_id: int) -> JobGroup:
        """The group ``group_id``; QueueError if there is none."""
        with self._lock:
            return gsql.select_group(self._conn, group_id)

    def groups(self) -> list[JobGroup]:
        """Every group, oldest first."""
        with self._lock:
            return gsql.select_groups(self._conn)

    def group_jobs(self, group_id: int) -> list[Job]:
        """The group's jobs in index order."""
        with self._lock:
            gsql.select_group(self._conn, group_id)
            return sql.select_jobs(self._conn, gsql.group_job_ids(self._conn, group_id))

    def cancel_group(self, group_id: int) -> int | None:
        """Cancel every queued or interrupted job of the group at once; the group's running job
        is flagged, as :meth:`JobQueue.cancel` does, and its id returned (the runner must stop it).
        None when none of its jobs was running."""
        with self._write() as db:
            gsql.select_group(db, group_id)
            ids = gsql.group_job_ids(db, group_id, ["queued", "interrupted", "running"])
            running = [job_id for job_id in ids if sql.cancel(db, job_id) is JobStatus.RUNNING]
        self._changed(ids)
        return running[0] if running else None

    def pause_group(self, group_id: int) -> None:
        """Start none of the group's jobs until :meth:`resume_group` (others still run)."""
        self._set_group_paused(group_id, True)

    def resume_group(self, group_id: int) -> None:
        self._set_group_paused(group_id, False)

    def move_group(self, group_id: int, *, top: bool = True) -> bool:
        """Move the group's queued jobs before (``top``) or after every other queued job, in their
        order; the others keep theirs. False when nothing moved."""
        with self._write() as db:
            gsql.select_group(db, group_id)
            changed = sql.move_together(db, gsql.group_job_ids(db, group_id, ["queued"]), top=top)
        if changed:
            self._notify(tuple(changed))
        return bool(changed)

    def remove_group(self, group_id: int) -> None:
        """Delete the group and its jobs' records (not while one runs; images stay on disk)."""
        with self._write() as db:
            ids = gsql.delete_group(db, group_id)
        self._notify(tuple(ids))

    def groups_due_for_grid(self) -> list[JobGroup]:
        """Sweep groups whose jobs have all ended and whose grid is not written yet."""
        with self._lock:
            return gsql.groups_due(self._conn)

    def record_grid(
        self, group_id: int, state: GridState, paths: Sequence[Path] = (), error: str | None = None
    ) -> JobGroup:
        """Note the group's grid: ``writing`` (``paths`` reserved, before writing), ``written``
        (``paths`` are on disk), or ``none`` (nothing to draw; ``error`` says why)."""
        with self._write() as db:
            gsql.select_group(db, group_id)
            gsql.set_grid(db, group_id, state, paths, error)
        self._notify(())
        return self.group(group_id)

    def _set_group_paused(self, group_id: int, paused: bool) -> None:
        with self._write() as db:
            gsql.set_paused(db, group_id, paused)
            ids = gsql.group_job_ids(db, group_id)
        self._notify(tuple(ids))


def _kind(kind: GroupKind | str) -> GroupKind:
    try:
        return GroupKind(kind)
    except ValueError:
        valid = ", ".join(k.value for k in GroupKind)
        raise QueueError(f"unknown group kind {kind!r}; valid kinds: {valid}") from None
