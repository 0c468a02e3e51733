"""A finished sweep group's grid, drawn once from its cells' images and written beside them.

When the last job of a sweep group ends (in any order, after any number of crashes and resumes),
:func:`write_group_grid` loads the images its completed cells wrote, assembles the grid
(``core/sweep``: A1111's ``draw_xyz_grid``; a failed or cancelled cell is a placeholder) and writes
it into the date folder that holds the first cell's run folder (``<output>/<date>/xyz_grid-NNNNN.png``,
A1111's name), with A1111's grid infotext: the first cell's parameters plus ``Script: X/Y/Z plot``,
``X Type``, ``X Values``, … before ``Version``.

Exactly once: the file names are reserved in the queue (``grid_state`` ``writing``) before
anything is written, each file is written atomically, and the group is marked ``written`` after.
A process killed in between finds the reservation on its next start and writes only what is
missing, to the same names; it never draws a second grid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from .atomic_files import atomic_write_bytes, safe_join
from .config import RunConfig
from .errors import ConfigError
from .infotext import format_value, read_image_metadata
from .job import Job, JobStatus
from .job_group import GridState, JobGroup
from .queue import JobQueue
from .sweep import SweepCell, SweepPlan, assemble_grids, grid_parameters, grid_png, grid_stem, sweep_cells

log = logging.getLogger(__name__)

__all__ = ["grid_folder", "insert_parameters", "write_group_grid"]

_MAX_NUMBER = 100_000


def write_group_grid(queue: JobQueue, group: JobGroup) -> JobGroup:
    """Draw and write the grid of the finished sweep ``group`` (see the module doc); returns the
    group as recorded. A group with nothing to draw (no cell made an image, or a plan this
    version cannot read) is marked ``none`` with the reason."""
    plan = group.plan
    if plan is None:
        return queue.record_grid(group.id, GridState.NONE, error="no sweep plan this version can read")
    jobs = queue.group_jobs(group.id)
    images = _cell_images(jobs)
    if not images:
        return queue.record_grid(group.id, GridState.NONE, error="no cell made an image")
    first = min(images)
    first_job = next(job for job in jobs if job.group_index == first)
    grids = assemble_grids(plan, images, _cells(plan, group))
    wanted = [grids.main, *(grids.sub_grids if plan.options.include_sub_grids else ())]
    paths = _reserved(queue, group, grid_folder(first_job), grid_stem(plan), len(wanted))
    parameters, config = _first_cell_text(first_job)
    for number, (image, path) in enumerate(zip(wanted, paths, strict=True)):
        pairs = grid_parameters(plan, sub_grid=number > 0)
        data = grid_png(image, parameters=insert_parameters(parameters, pairs), config=config, plan=plan)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
    log.info("group %s: grid written to %s", group.id, ", ".join(str(p) for p in paths))
    return queue.record_grid(group.id, GridState.WRITTEN, paths)


def grid_folder(job: Job) -> Path:
    """Where a group's grid goes: the date folder holding ``job``'s run folder."""
    return job.outputs[0].parent.parent


def insert_parameters(parameters: str, pairs: dict[str, str]) -> str:
    """``parameters`` (an image's infotext) with ``pairs`` added where A1111 adds a script's
    ``extra_generation_params``: after the other keys of the parameter line, before ``Version``."""
    if not pairs:
        return parameters
    added = ", ".join(f"{key}: {format_value(value)}" for key, value in pairs.items())
    head, _, last = parameters.rpartition("\n")
    marker = last.rfind(", Version: ")
    if marker >= 0:
        last = f"{last[:marker]}, {added}{last[marker:]}"
    elif last.startswith("Version: "):
        last = f"{added}, {last}"
    else:
        last = f"{last}, {added}" if last else added
    return f"{head}\n{last}" if head else last


def _cell_images(jobs: Sequence[Job]) -> dict[int, list[Image.Image]]:
    images: dict[int, list[Image.Image]] = {}
    for job in jobs:
        if job.status is not JobStatus.COMPLETED or job.group_index is None or not job.outputs:
            continue
        loaded = []
        for path in job.outputs:
            try:
                with Image.open(path) as opened:
                    loaded.append(opened.convert("RGB"))
            except OSError as exc:  # deleted or damaged since: the cell becomes a placeholder
                log.warning("group %s: cell image %s cannot be read (%s)", job.group_id, path, exc)
        if loaded:
            images[job.group_index] = loaded
    return images


def _cells(plan: SweepPlan, group: JobGroup) -> tuple[SweepCell, ...]:
    """The plan's cells (for the placeholders' labels), or none when the base cannot be read."""
    try:
        return sweep_cells(plan, RunConfig.from_dict(group.meta.get("base", {})))
    except ConfigError:
        return ()


def _first_cell_text(job: Job) -> tuple[str, RunConfig]:
    """The first cell's first image's infotext and RunConfig, as its PNG recorded them."""
    meta = read_image_metadata(job.outputs[0])
    return meta.parameters or "", meta.run_config or job.config


def _reserved(queue: JobQueue, group: JobGroup, folder: Path, stem: str, count: int) -> tuple[Path, ...]:
    """The grid file names: those reserved before a crash, else the first free ``stem-NNNNN.png``
    names in ``folder``, reserved now."""
    if group.grid_state is GridState.WRITING and len(group.grid_paths) == count:
        return group.grid_paths
    paths: list[Path] = []
    for number in range(_MAX_NUMBER):
        if len(paths) == count:
            break
        path = safe_join(folder, f"{stem}-{number:05d}.png")
        if not path.exists():
            paths.append(path)
    else:
        raise FileExistsError(f"no free grid file name in {str(folder)!r}")
    queue.record_grid(group.id, GridState.WRITING, paths)
    return tuple(paths)
