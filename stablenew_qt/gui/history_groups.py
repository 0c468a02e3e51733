"""History groups (issue 15): a sweep's, prompt pack's or wildcard expansion's jobs under one
expandable row of the History, with the group's name, how many of its jobs are done, its grid's
thumbnail once the grid is written, and its best-rated cell.

:func:`read_group_rows` runs on the queue thread with the history listing (it reads every job of
each group and looks for the grid file); the panel only shows what it found. The rows' operations
are :class:`GroupRows`, a mixin of the :class:`~stablenew_qt.gui.history_panel.HistoryPanel`
(kept apart so each module holds one idea, as the JobQueue's group operations are).
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QMenu, QStyle

from ..core.job import FINISHED_STATUSES, Job
from ..core.job_group import GridState, GroupKind, JobGroup
from ..core.queue import JobQueue, QueueError
from .image_actions import ImageActions
from .queue_panel import JOB_ID_ROLE, MenuEntry, job_menu
from .rating import stars
from .thumbnails import ThumbnailLoader

log = logging.getLogger(__name__)

#: The arrow a group row shows: expanded, collapsed.
EXPANDED, COLLAPSED = "▾", "▸"
#: The History's thumbnails (a job's first image, a group's grid), px.
THUMB = 64
#: Item data: the group a row heads (group rows), the group a job row belongs to (its jobs).
GROUP_ID_ROLE = Qt.ItemDataRole.UserRole + 10
MEMBER_OF_ROLE = Qt.ItemDataRole.UserRole + 11
#: How a group's job rows are set off under the group's row.
MEMBER_INDENT = "      "


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


class GroupRows:
    """The History panel's group rows: made, found, shown and hidden, and their menu's
    operations. Uses the panel's list, listing, loader and actions."""

    list: QListWidget
    jobs: builtins.list[Job]
    groups: dict[int, GroupRow]
    expanded: set[int]
    thumbnails: ThumbnailLoader
    actions_: ImageActions
    errorOccurred: Any  # the panel's Signal(str)
    _items_by_path: dict[Path, builtins.list[QListWidgetItem]]
    _group_items: dict[int, QListWidgetItem]  # the group rows listed now

    def load(self, job_id: int) -> None:
        raise NotImplementedError

    def _new_group_item(self, row: GroupRow, listed: int) -> QListWidgetItem:
        icon = QIcon(self.list.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon))
        item = QListWidgetItem(icon, group_text(row, row.group.id in self.expanded, listed))
        item.setData(GROUP_ID_ROLE, row.group.id)
        item.setData(JOB_ID_ROLE, None)
        item.setToolTip("Enter or double-click shows or hides its jobs")
        self._group_items[row.group.id] = item
        if row.grid is not None:
            self._items_by_path.setdefault(row.grid, []).append(item)
            self.thumbnails.request(row.grid, THUMB)
        return item

    def _group_item(self, group_id: int) -> QListWidgetItem | None:
        """The row of the group (None: none of its jobs is listed)."""
        return self._group_items.get(group_id)

    def set_expanded(self, group_id: int, expanded: bool) -> None:
        """Show (or hide) the group's jobs under its row."""
        header = self._group_item(group_id)
        if header is None:
            return
        (self.expanded.add if expanded else self.expanded.discard)(group_id)
        listed = sum(job.group_id == group_id for job in self.jobs)
        header.setText(group_text(self.groups[group_id], expanded, listed))
        for index in range(self.list.count()):
            item = self.list.item(index)
            if item.data(MEMBER_OF_ROLE) == group_id:
                item.setHidden(not expanded)

    def toggle(self, group_id: int) -> None:
        self.set_expanded(group_id, group_id not in self.expanded)

    def load_best(self, group_id: int) -> None:
        """Load the settings of the group's best-rated job into the editor (like "Load into the
        editor" on that job); a message when there is none yet."""
        row = self.groups.get(group_id)
        if row is None:
            return
        if not row.finished:
            done = f"{row.done} of {row.total} jobs done"
            self.errorOccurred.emit(f"{row.group.label}: {done}; wait for the rest")
        elif row.best is None:
            self.errorOccurred.emit(f"{row.group.label}: rate a cell first (keys 1-5 on its row)")
        else:
            self.load(row.best.id)

    def open_grid(self, group_id: int) -> None:
        row = self.groups.get(group_id)
        if row is not None and row.grid is not None:
            self.actions_.full_view(row.grid)

    def group_menu(self, group_id: int) -> QMenu:
        """The menu of a group's row: show or hide its jobs, open its grid, load its best cell."""
        row = self.groups[group_id]
        shown = group_id in self.expanded
        entries: tuple[MenuEntry, ...] = (
            ("Hide its jobs" if shown else "Show its jobs", True, self.toggle),
            ("Open the grid", row.grid is not None, self.open_grid),
            ("Load best-rated cell", row.can_load_best, self.load_best),
        )
        return job_menu(self.list, group_id, entries)
