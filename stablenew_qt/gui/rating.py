"""Ratings: 1-5 stars on a job's images (issue 15), typed with the keys 1-5 (0 clears).

The rating lives in the queue file (``JobQueue.rate``), so it survives a restart; every write runs
on the :class:`~stablenew_qt.gui.queue_client.QueueClient`'s thread. An image in the Results
gallery is rated through the job that made it (found by its path among the finished jobs).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent

from ..core.queue import FINISHED_STATUSES, Job, JobQueue, QueueError

#: The number keys: key -> rating (None clears).
RATING_KEYS: dict[int, int | None] = {
    Qt.Key.Key_0: None,
    Qt.Key.Key_1: 1,
    Qt.Key.Key_2: 2,
    Qt.Key.Key_3: 3,
    Qt.Key.Key_4: 4,
    Qt.Key.Key_5: 5,
}

#: What a key press that is not a rating key returns from :func:`rating_from_key`.
NOT_A_RATING = -1


def stars(rating: int | None) -> str:
    """``★★★☆☆`` for 3; an empty string for no rating."""
    return "" if rating is None else "★" * rating + "☆" * (5 - rating)


def rating_from_key(event: QKeyEvent) -> int | None:
    """The rating a plain number key asks for (None: clear), or :data:`NOT_A_RATING`."""
    modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    if modifiers != Qt.KeyboardModifier.NoModifier or event.key() not in RATING_KEYS:
        return NOT_A_RATING
    return RATING_KEYS[event.key()]


def job_of_image(queue: JobQueue, path: Path) -> Job | None:
    """The finished job whose outputs hold ``path`` (queue thread: it lists the history)."""
    return next((job for job in queue.list(status=FINISHED_STATUSES) if path in job.outputs), None)


def rate_image(queue: JobQueue, path: Path, rating: int | None) -> Job:
    """Rate the job that made the image ``path`` (queue thread). QueueError when no job in the
    queue made it (an image from before the queue, or its job was removed)."""
    job = job_of_image(queue, path)
    if job is None:
        raise QueueError(f"{path.name} has no job in the queue to rate (its job was removed)")
    return queue.rate(job.id, rating)
