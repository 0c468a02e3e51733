"""The History's listing (read on the queue thread): the finished jobs passing the filters, what
of them is on disk, and their groups; and the text of a job's row.

:func:`read_history` runs on the :class:`~stablenew_qt.gui.queue_client.QueueClient`'s thread, so
the panel never waits on the queue file or the disk (a long history takes tens of ms).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..core.queue import FINISHED_STATUSES, Job, JobQueue, JobStatus, QueueError, filter_jobs
from .history_groups import GroupRow, read_group_rows
from .queue_panel import job_text
from .rating import stars

log = logging.getLogger(__name__)

#: The newest jobs listed; older ones match the filters but are not shown (the label says so).
MAX_LISTED = 500
#: The period filter: label -> how far back from the start of today (None: any time).
PERIODS: dict[str, timedelta | None] = {
    "Any time": None,
    "Today": timedelta(0),
    "Last 7 days": timedelta(days=6),
    "Last 30 days": timedelta(days=29),
}


def period_start(label: str, now: datetime | None = None) -> datetime | None:
    """The first moment the period ``label`` keeps (local midnight ``n`` days ago); None: any time."""
    back = PERIODS[label]
    if back is None:
        return None
    now = now or datetime.now().astimezone()
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - back


def first_image(job: Job) -> Path | None:
    """The job's first image, if it still exists (what "Send to" starts from)."""
    return job.outputs[0] if job.outputs and job.outputs[0].is_file() else None


def job_folder(job: Job) -> Path | None:
    """The folder holding the job's images (its run folder), if it still exists."""
    if job.outputs:
        return job.outputs[0].parent if job.outputs[0].parent.is_dir() else None
    if job.output_root is not None and job.run_id:
        return next((p for p in job.output_root.glob(f"*/{job.run_id}") if p.is_dir()), None)
    return None


def seed_in_name(path: Path) -> str | None:
    """The seed in one of our image names (``<index>-<seed>.png``); None for any other name
    (``xyz_grid-00001.png``, ``fox.png``). Reads no file."""
    parts = path.stem.split("-")
    return parts[1] if len(parts) == 2 and all(part.isdigit() for part in parts) else None


def job_seed(job: Job) -> str | None:
    """The job's seed: its config's, or, for a random one (-1), the one its first image's name
    records (resolved by the runner); None while unknown (a random seed that made no image)."""
    seed = job.config_data.get("seed")
    if isinstance(seed, int) and seed >= 0:
        return str(seed)
    return seed_in_name(job.outputs[0]) if job.outputs else None


def history_text(job: Job, on_disk: int | None = None) -> str:
    """Two lines: the job's summary (id, status, model, prompt), then when it finished, its seed
    and what it left. ``on_disk``: how many of its images are still on disk (None: not looked
    up), said when some are gone."""
    when = job.when.strftime("%Y-%m-%d %H:%M")
    seed = job_seed(job)
    when += f"  ·  seed {seed}" if seed is not None else "  ·  random seed"
    images = f"{len(job.outputs)} image(s)" if job.outputs else "no images"
    if on_disk is not None and job.outputs and on_disk < len(job.outputs):
        images += f", {on_disk or 'none'} on disk"
    rated = f"  ·  {stars(job.rating)}" if job.rating else ""
    return f"{job_text(job)}\n{when}  ·  {images}  ·  attempt {job.attempts}{rated}"


def compare_label(job: Job) -> str:
    """What tells two jobs' images apart in the compare view: id, seed, model."""
    seed = job_seed(job)
    return f"#{job.id} · seed {seed} · {job.model}" if seed is not None else f"#{job.id} · {job.model}"


@dataclass(frozen=True)
class HistoryFilters:
    """What the history shows: None keeps everything (status: any finished status)."""

    status: JobStatus | None = None
    text: str | None = None
    model: str | None = None
    since: datetime | None = None
    #: Keep jobs rated at least this (1-5); None keeps rated and unrated.
    min_rating: int | None = None
    #: "newest" (newest first) or "rating" (best rated first, unrated last, then newest).
    sort: str = "newest"


#: The sort choices: label -> HistoryFilters.sort.
SORTS: dict[str, str] = {"Newest first": "newest", "Best rated first": "rating"}


@dataclass(frozen=True)
class HistoryListing:
    """The result of :func:`read_history`."""

    jobs: list[Job]  # newest first
    models: list[str]  # every model of the finished jobs (for the model filter), sorted
    #: For each listed job (by id): its first image and its folder, where they exist (looked up
    #: on the queue thread with the listing, so selecting a job never waits on the disk).
    files: dict[int, JobFiles] = field(default_factory=dict)
    #: The groups of the listed jobs (by group id), read with them.
    groups: dict[int, GroupRow] = field(default_factory=dict)


@dataclass(frozen=True)
class JobFiles:
    """What of a job is on disk: its first image and its run folder (None: gone), and every one
    of its images still there (what "Delete images" moves to the trash)."""

    image: Path | None = None
    folder: Path | None = None
    images: tuple[Path, ...] = ()


def job_files(job: Job) -> JobFiles:
    """The job's images and folder as the disk has them now (not on the GUI thread)."""
    return JobFiles(first_image(job), job_folder(job), tuple(p for p in job.outputs if p.is_file()))


def read_history(queue: JobQueue, filters: HistoryFilters) -> HistoryListing | QueueError:
    """The finished jobs of ``queue`` passing ``filters``, newest first (any thread). Never raises:
    a failure comes back as a QueueError, so the panel always hears back and can list again."""
    try:
        finished = queue.list(status=FINISHED_STATUSES)
    except (QueueError, sqlite3.Error) as exc:
        return QueueError(f"cannot read the history: {exc}")
    except Exception as exc:
        log.exception("reading the history failed")
        return QueueError(f"cannot read the history: {type(exc).__name__}: {exc} (details in the log)")
    jobs = filter_jobs(
        finished,
        None if filters.status is None else {filters.status},
        filters.text,
        model=filters.model,
        since=filters.since,
    )
    if filters.min_rating is not None:
        jobs = [job for job in jobs if (job.rating or 0) >= filters.min_rating]
    jobs.sort(key=lambda job: (job.when, job.id), reverse=True)
    if filters.sort == "rating":
        jobs.sort(key=lambda job: -(job.rating or 0))  # stable: newest first among equals
    files = {job.id: job_files(job) for job in jobs[:MAX_LISTED]}
    groups = read_group_rows(queue, (job.group_id for job in jobs[:MAX_LISTED] if job.group_id is not None))
    return HistoryListing(jobs, sorted({job.model for job in finished if job.model}), files, groups)
