"""JobGroup: jobs queued together as one sweep, prompt pack or wildcard expansion.

A group is a row of its own (kind, the JSON it was made from, whether it is paused, and its grid);
each of its jobs records the group's id and its index in it (for a sweep, the cell's grid index
``x + y * X count + z * X count * Y count``). A sweep's grid is drawn once, when the last of its
jobs has ended, whatever order they ended in and however often the app stopped in between
(``grid_state``: None until then, ``writing`` while the files are written, ``written`` after,
``none`` when there is nothing to draw). See ``docs/queue.md``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .sweep import SweepPlan

#: The ``groups`` columns :func:`group_from_row` reads.
GROUP_COLUMNS = "id, kind, meta, created, paused, grid_state, grid_paths, grid_error"


class GroupKind(StrEnum):
    """What made a group: an X/Y/Z plot or prompt matrix, a prompt pack, or wildcards."""

    SWEEP = "sweep"
    PACK = "pack"
    WILDCARDS = "wildcards"


class GridState(StrEnum):
    """Where a group's grid stands (None on the group: not drawn yet)."""

    WRITING = "writing"
    WRITTEN = "written"
    NONE = "none"


@dataclass(frozen=True)
class JobGroup:
    """One group as stored. ``meta`` is its JSON: for a sweep ``{"plan": …, "base": …}`` (the
    :class:`SweepPlan` and the base RunConfig), for a pack ``{"source": …}``, for wildcards
    ``{"template": …, "mode": …}``. ``grid_paths`` are the grid files, reserved before they are
    written (``grid_state`` ``writing``) and final once ``written``."""

    id: int
    kind: GroupKind
    meta: dict[str, Any]
    created: datetime
    paused: bool
    grid_state: GridState | None
    grid_paths: tuple[Path, ...]
    grid_error: str | None

    @property
    def plan(self) -> SweepPlan | None:
        """The sweep's plan (None for other kinds, or a plan this version cannot read)."""
        data = self.meta.get("plan")
        if self.kind is not GroupKind.SWEEP or not isinstance(data, dict):
            return None
        try:
            return SweepPlan.from_dict(data)
        except ConfigError:
            return None

    @property
    def label(self) -> str:
        """A short description for a queue row (``sweep 3x2: CFG Scale × Sampler``)."""
        plan = self.plan
        if plan is None:
            return str(self.meta.get("label") or self.kind.value)
        if plan.matrix is not None:
            return f"prompt matrix of {plan.cell_count}"
        shape = "x".join(str(n) for n in plan.shape if n > 1) or "1"
        names = " × ".join(axis.type for axis in plan.axes if not axis.is_nothing)
        return f"sweep {shape}: {names}" if names else f"sweep {shape}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``queue list --json``, ``queue groups --json``)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "label": self.label,
            "created": self.created.isoformat(),
            "paused": self.paused,
            "grid_state": self.grid_state.value if self.grid_state else None,
            "grid_paths": [str(p) for p in self.grid_paths],
            "grid_error": self.grid_error,
        }


def group_from_row(row: sqlite3.Row) -> JobGroup:
    """A JobGroup from a ``groups`` row selected as :data:`GROUP_COLUMNS`."""
    try:
        meta = json.loads(row["meta"])
    except ValueError:
        meta = {}
    return JobGroup(
        id=row["id"],
        kind=GroupKind(row["kind"]),
        meta=meta if isinstance(meta, dict) else {},
        created=datetime.fromisoformat(row["created"]),
        paused=bool(row["paused"]),
        grid_state=GridState(row["grid_state"]) if row["grid_state"] else None,
        grid_paths=tuple(Path(p) for p in json.loads(row["grid_paths"] or "[]")),
        grid_error=row["grid_error"],
    )
