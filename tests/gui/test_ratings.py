"""Ratings (issue 15): keys 1-5 rate the selected History job (0 clears), stored in the queue
file (seen by a queue opened again on that file), shown in the row; the History filters
"rated ≥ N" and sorts best rated first. A Results image is rated through the job that made it.
Real JobQueue file, FakeExecutor engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from stablenew_qt.core.queue import JobQueue, QueueError
from stablenew_qt.gui.history_panel import HistoryPanel
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.rating import rate_image, stars
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


def finished(queue: JobQueue, window: MainWindow, prompts: list[str], outputs: bool = False) -> list[int]:
    """One completed job per prompt (recorded by hand); with ``outputs``, each with one image file."""
    ids = []
    for prompt in prompts:
        config = window.model.config.model_copy(update={"prompt": prompt})
        job = queue.add(config)[0]
        assert queue.claim(job.id) is not None
        images = []
        if outputs:
            image = queue.path.parent / f"{job.id}-{1000 + job.id}.png"
            image.write_bytes(b"not really a png")
            images.append(image)
        queue.mark_completed(job.id, f"run{job.id}", images)
        ids.append(job.id)
    return ids


def listed(history: HistoryPanel) -> list[int]:
    return [job.id for job in history.jobs]


def select(qtbot: Any, history: HistoryPanel, job_id: int) -> None:
    history.list.setCurrentRow(listed(history).index(job_id))
    history.list.setFocus()


def test_number_keys_rate_the_selected_job_and_the_rating_is_in_the_queue_file(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    history = window.history_panel
    a, b = finished(queue, window, ["a barn", "a lake"])
    qtbot.waitUntil(lambda: listed(history) == [b, a], timeout=RUN_TIMEOUT_MS)
    select(qtbot, history, a)
    qtbot.keyClick(history.list, Qt.Key.Key_4)
    qtbot.waitUntil(lambda: queue.get(a).rating == 4, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: stars(4) in history.list.item(1).text(), timeout=RUN_TIMEOUT_MS)
    assert queue.get(b).rating is None, "only the selected job is rated"
    with JobQueue(queue.path) as reopened:  # what the next start reads
        assert reopened.get(a).rating == 4 and reopened.get(b).rating is None
    select(qtbot, history, a)
    qtbot.keyClick(history.list, Qt.Key.Key_0)
    qtbot.waitUntil(lambda: queue.get(a).rating is None, timeout=RUN_TIMEOUT_MS)
    qtbot.keyClick(history.list, Qt.Key.Key_7)  # not a rating: nothing stored
    qtbot.keyClick(history.list, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(50)
    assert queue.get(a).rating is None


def test_history_filters_rated_at_least_n_and_sorts_best_rated_first(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    history = window.history_panel
    a, b, c, d = finished(queue, window, ["one", "two", "three", "four"])
    queue.rate(a, 5)
    queue.rate(b, 2)
    queue.rate(c, 5)
    qtbot.waitUntil(lambda: listed(history) == [d, c, b, a], timeout=RUN_TIMEOUT_MS)
    history.sort_order.setCurrentIndex(history.sort_order.findData("rating"))
    qtbot.waitUntil(lambda: listed(history) == [c, a, b, d], timeout=RUN_TIMEOUT_MS)
    history.rating_filter.setCurrentIndex(history.rating_filter.findData(3))
    qtbot.waitUntil(lambda: listed(history) == [c, a], timeout=RUN_TIMEOUT_MS)
    history.rating_filter.setCurrentIndex(history.rating_filter.findData(2))
    qtbot.waitUntil(lambda: listed(history) == [c, a, b], timeout=RUN_TIMEOUT_MS)
    assert history.summary.text() == "3 finished job(s)"


def test_a_results_image_is_rated_through_its_job(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    [job_id] = finished(queue, window, ["a fox"], outputs=True)
    image = queue.get(job_id).outputs[0]
    assert rate_image(queue, image, 3).rating == 3 == queue.get(job_id).rating
    with pytest.raises(QueueError, match="no job in the queue"):
        rate_image(queue, image.with_name("stray.png"), 3)


def test_a_number_key_in_the_results_gallery_rates_the_image_s_job(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    [job_id] = finished(queue, window, ["a fox"], outputs=True)
    image = queue.get(job_id).outputs[0]
    results = window.results_panel
    results.add_image(image)
    results.gallery.setCurrentRow(0)
    with qtbot.waitSignal(results.rated, timeout=RUN_TIMEOUT_MS) as rated:
        qtbot.keyClick(results.gallery, Qt.Key.Key_5)
    assert rated.args == [image, 5] and queue.get(job_id).rating == 5
    assert results.gallery.item(0).text().endswith(stars(5))
