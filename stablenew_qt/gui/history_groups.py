"""History groups (issue 15): a sweep's, prompt pack's or wildcard expansion's jobs under one
expandable row of the History, with the group's name, how many of its jobs are done, its grid's
thumbnail once the grid is written, and its best-rated cell.

:func:`read_group_rows` runs on the queue thread with the history listing (it reads every job of
each group and looks for the grid file); the panel only shows what it found.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.job import FINISHED_STATUSES, Job
from ..core.job_group import GridState, GroupKind, JobGroup
from ..core.queue import JobQueue, QueueError
from .rating import stars

log = logging.getLogger(__name__)

#: The arrow a group row shows: expanded, collapsed.
EXPANDED, COLLAPSED = "▾", "▸"


@dataclass(frozen=True)
class GroupRow:
    """One group as the History shows it: ``done`` of its ``total`` jobs have ended (completed,
    failed or cancelled); ``grid`` is its grid image when written and on disk; ``best`` its
    highest-rated job (the first cell among equals), None when none is rated."""

    group: JobGroup
    done: int
    total: int
    grid: Path | None = None
    best: Job | None = None

    @property
    def finished(self) -> bool:
        """Every job of the group has ended."""
        return self.done == self.total

    @property
    def can_load_best(self) -> bool:
        """ "Load best-rated cell" applies: a finished sweep with a rated cell."""
        return self.group.kind is GroupKind.SWEEP and self.finished and self.best is not None


def best_rated(jobs: Iterable[Job]) -> Job | None:
    """The job rated highest; among equals, the lowest group index (the first cell)."""
    rated = [job for job in jobs if job.rating]
    return min(rated, key=lambda job: (-(job.rating or 0), job.group_index or 0, job.id), default=None)


def read_group_rows(queue: JobQueue, group_ids: Iterable[int]) -> dict[int, GroupRow]:
    """The rows of the groups ``group_ids`` (queue thread: reads the queue and stats the grid).
    A group that vanished meanwhile is left out."""
    rows: dict[int, GroupRow] = {}
    for group_id in dict.fromkeys(group_ids):
        try:
            group = queue.group(group_id)
            jobs = queue.group_jobs(group_id)
        except (QueueError, sqlite3.Error):
            log.info("group %s is gone from the queue", group_id)
            continue
        done = sum(job.status in FINISHED_STATUSES for job in jobs)
        written = group.grid_state is GridState.WRITTEN and group.grid_paths
        grid = group.grid_paths[0] if written and group.grid_paths[0].is_file() else None
        rows[group_id] = GroupRow(group, done, len(jobs), grid, best_rated(jobs))
    return rows


def group_text(row: GroupRow, expanded: bool, listed: int) -> str:
    """Two lines: the arrow, the group's name and progress; then what it holds (``listed`` of its
    jobs pass the filters), its grid and its best-rated cell."""
    arrow = EXPANDED if expanded else COLLAPSED
    group = row.group
    first = f"{arrow} {group.label} (group {group.id})  ·  {row.done}/{row.total} done"
    parts = [f"{listed} job(s) listed"]
    if row.grid is not None:
        parts.append("grid written")
    elif group.grid_state is GridState.NONE:
        parts.append(f"no grid ({group.grid_error or 'nothing to draw'})")
    if row.best is not None:
        parts.append(f"best: #{row.best.id} {stars(row.best.rating)}")
    return f"{first}\n" + "  ·  ".join(parts)


def grouped_order(jobs: Iterable[Job], groups: Iterable[int]) -> list[Job]:
    """``jobs`` in their order, except that the jobs of each of ``groups`` come together where the
    first of them is (under the group's row)."""
    wanted = set(groups)
    listed = list(jobs)
    members: dict[int, list[Job]] = {}
    for job in listed:
        if job.group_id in wanted:
            members.setdefault(job.group_id, []).append(job)
    ordered: list[Job] = []
    for job in listed:
        if job.group_id not in wanted:
            ordered.append(job)
        elif job is members[job.group_id][0]:
            ordered.extend(members[job.group_id])
    return ordered
