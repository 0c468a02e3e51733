"""History groups (issue 15): a sweep's jobs under one expandable row with its name, n/N done and
its grid once written (``bridge.groupFinished`` refreshes the row), and "Load best-rated cell"
loading the highest-rated cell's settings into the editor. A real JobQueue file in a temp dir, the
window's own queue runner over the FakeExecutor."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from job_records import job_record
from PIL import Image
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.group_grid import write_group_grid
from stablenew_qt.core.job import Job, JobStatus
from stablenew_qt.core.job_group import GridState, GroupKind
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.sweep import SweepSpec, build_sweep, sweep_cells
from stablenew_qt.gui.history_groups import best_rated, grouped_order
from stablenew_qt.gui.history_panel import GROUP_ID_ROLE, JOB_ID_ROLE, HistoryPanel
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow

SPEC = {"x": {"type": "CFG Scale", "values": "4, 6, 8"}}


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


def add_sweep(queue: JobQueue, base: RunConfig) -> int:
    plan = build_sweep(base, SweepSpec.from_dict(SPEC), rng=random.Random(1))
    cells = sweep_cells(plan, base)
    group = queue.add_group(
        [cell.config for cell in cells],
        GroupKind.SWEEP,
        {"plan": plan.to_dict(), "base": base.model_dump(mode="json")},
        indices=[cell.index for cell in cells],
    )
    return group.id


def rows(history: HistoryPanel) -> list[tuple[str, Any, bool]]:
    """Each row as ("group", id, hidden) or ("job", id, hidden)."""
    found = []
    for index in range(history.list.count()):
        item = history.list.item(index)
        group = item.data(GROUP_ID_ROLE)
        kind, key = ("group", group) if group is not None else ("job", item.data(JOB_ID_ROLE))
        found.append((kind, key, item.isHidden()))
    return found


def header_text(history: HistoryPanel, group_id: int, missing: str | None = None) -> str:
    """The group row's text; ``missing`` when there is no row yet (None: fail)."""
    item = history._group_item(group_id)
    if item is None and missing is not None:
        return missing
    assert item is not None, f"no row for group {group_id}"
    return item.text()


def test_a_run_sweep_is_one_expandable_row_with_its_grid_and_its_best_cell_loads(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, make_config: Any
) -> None:
    window = make_main_window(queue=queue)
    history = window.history_panel
    loose = queue.add(make_config(seed=3))[0]  # a job of its own, listed beside the group
    group_id = add_sweep(queue, make_config(seed=7))
    cells = queue.group_jobs(group_id)
    with qtbot.waitSignal(window.bridge.groupFinished, timeout=RUN_TIMEOUT_MS):
        window.host.run_queue()
    qtbot.waitUntil(lambda: "grid written" in header_text(history, group_id), timeout=RUN_TIMEOUT_MS)
    [grid] = queue.group(group_id).grid_paths
    assert grid.is_file() and history.groups[group_id].grid == grid
    results = window.results_panel.image_paths()
    assert results[0] == grid and len(results) == 5, "Results: the grid first, then the 4 images"
    grid_item = window.results_panel.gallery.item(0)
    qtbot.waitUntil(lambda: grid_item.text().endswith("· xyz_grid-00000 · tiny-sd"), timeout=RUN_TIMEOUT_MS)
    assert "sweep 3: CFG Scale (group" in header_text(history, group_id)
    assert "3/3 done" in header_text(history, group_id) and header_text(history, group_id).startswith("▸")
    assert rows(history)[0] == ("group", group_id, False)  # the newest: the sweep ran last
    assert sorted(key for kind, key, hidden in rows(history) if kind == "job" and hidden) == [
        c.id for c in cells
    ]
    assert ("job", loose.id, False) in rows(history)
    assert history.image_paths() == list(queue.get(loose.id).outputs)  # the full view skips hidden rows
    qtbot.waitUntil(lambda: history.thumbnails.is_idle(), timeout=RUN_TIMEOUT_MS)
    header = history._group_item(group_id)
    assert header is not None
    with Image.open(grid) as drawn:
        assert drawn.width > drawn.height  # three cells side by side
    icon = header.icon().pixmap(64, 64).toImage()
    assert icon.width() == 64 and icon.height() < 64, "the grid's thumbnail, not a square folder icon"
    # Enter shows the group's jobs, Left hides them again.
    history.list.setCurrentItem(header)
    history.list.setFocus()
    qtbot.keyClick(history.list, Qt.Key.Key_Return)
    assert all(not hidden for _kind, _key, hidden in rows(history)) and "▾" in header.text()
    assert len(history.image_paths()) == 4
    assert [key for kind, key, _hidden in rows(history)][1:4] == sorted(c.id for c in cells)[::-1]
    assert not history.best_button.isEnabled(), "no cell is rated yet"
    # Rate the CFG 6 cell 5 stars and another 3: the best cell is the CFG 6 one.
    best = next(c for c in cells if c.config.txt2img.cfg_scale == 6)
    other = next(c for c in cells if c.config.txt2img.cfg_scale == 8)
    for job, key in ((other, Qt.Key.Key_3), (best, Qt.Key.Key_5)):
        history.list.setCurrentItem(history._job_items[job.id])
        qtbot.keyClick(history.list, key)
    qtbot.waitUntil(
        lambda: history.groups[group_id].best is not None and history.groups[group_id].best.id == best.id,
        timeout=RUN_TIMEOUT_MS,
    )
    assert "▾" in header_text(history, group_id), "still expanded after the refresh"
    history.list.setCurrentItem(history._group_item(group_id))
    assert history.best_button.isEnabled()
    assert window.model.get("txt2img.cfg_scale") != 6
    with qtbot.waitSignal(history.loadRequested, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(history.best_button, Qt.MouseButton.LeftButton)
    assert window.model.get("txt2img.cfg_scale") == 6 and window.model.get("seed") == best.config.seed
    qtbot.keyClick(history.list, Qt.Key.Key_Left)
    assert "▸" in header_text(history, group_id)
    assert all(hidden for kind, key, hidden in rows(history) if kind == "job" and key != loose.id)


def complete_by_hand(queue: JobQueue, jobs: list[Job], root: Path) -> None:
    for job in jobs:
        assert queue.claim(job.id) is not None
        image = root / "2026-12-03" / f"run{job.id}" / f"0000{job.group_index}-1.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (40 * (job.group_index or 0), 90, 90)).save(image)
        queue.mark_completed(job.id, f"run{job.id}", [image])


def test_group_finished_refreshes_the_row_with_the_grid(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, make_config: Any, tmp_path: Path
) -> None:
    window = make_main_window(queue=queue)
    history = window.history_panel
    group_id = add_sweep(queue, make_config(seed=7))
    jobs = queue.group_jobs(group_id)
    complete_by_hand(queue, jobs[:2], tmp_path / "runs")
    qtbot.waitUntil(lambda: "2/3 done" in header_text(history, group_id, missing=""), timeout=RUN_TIMEOUT_MS)
    history.list.setCurrentItem(history._group_item(group_id))
    messages: list[str] = []
    history.errorOccurred.connect(messages.append)
    history.load_best(group_id)
    assert messages == ["sweep 3: CFG Scale: 2 of 3 jobs done; wait for the rest"]
    complete_by_hand(queue, jobs[2:], tmp_path / "runs")
    qtbot.waitUntil(lambda: "3/3 done" in header_text(history, group_id), timeout=RUN_TIMEOUT_MS)
    history.load_best(group_id)
    assert messages[-1] == "sweep 3: CFG Scale: rate a cell first (keys 1-5 on its row)"
    # The grid is written through another connection (as another process would): this window's
    # queue hears nothing of it, so only GroupFinished can tell the History.
    with JobQueue(queue.path) as other:
        recorded = write_group_grid(other, other.group(group_id))
    assert recorded.grid_state is GridState.WRITTEN
    qtbot.wait(100)
    assert "grid written" not in header_text(history, group_id)
    window.bridge.post(ev.GroupFinished(recorded))
    qtbot.waitUntil(lambda: "grid written" in header_text(history, group_id), timeout=RUN_TIMEOUT_MS)
    menu = history.group_menu(group_id)
    [open_grid] = [a for a in menu.actions() if a.text() == "Open the grid"]
    assert open_grid.isEnabled()
    open_grid.trigger()
    viewer = history.actions_.viewer
    assert viewer is not None and viewer.path == recorded.grid_paths[0]
    viewer.close()


def test_a_pack_group_counts_its_jobs_and_offers_no_best_cell(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, make_config: Any, tmp_path: Path
) -> None:
    window = make_main_window(queue=queue)
    history = window.history_panel
    group = queue.add_group([make_config(seed=s) for s in (1, 2)], GroupKind.PACK, {"label": "prompts.txt"})
    jobs = queue.group_jobs(group.id)
    complete_by_hand(queue, jobs, tmp_path / "runs")
    queue.rate(jobs[0].id, 4)
    qtbot.waitUntil(
        lambda: history._group_item(group.id) is not None and "best: #" in header_text(history, group.id)
    )
    assert header_text(history, group.id).startswith(f"▸ prompts.txt (group {group.id})  ·  2/2 done")
    history.list.setCurrentItem(history._group_item(group.id))
    assert not history.best_button.isEnabled()  # a sweep's action
    assert [a.isEnabled() for a in history.group_menu(group.id).actions()] == [True, False, False]


def job(job_id: int, group_id: int | None, index: int | None = None, rating: int | None = None) -> Job:
    now = datetime.now(UTC)
    return job_record(
        job_id,
        status=JobStatus.COMPLETED,
        started=now,
        finished=now,
        attempts=1,
        group_id=group_id,
        group_index=index,
        rating=rating,
    )


def test_grouped_order_pulls_a_groups_jobs_under_its_first_and_best_rated_breaks_ties_by_cell() -> None:
    listed = [job(1, None), job(2, 9), job(3, None), job(4, 9), job(5, 8)]
    assert [j.id for j in grouped_order(listed, {9: None, 8: None})] == [1, 2, 4, 3, 5]
    assert [j.id for j in grouped_order(listed, {})] == [1, 2, 3, 4, 5]  # unknown groups: as listed
    cells = [job(1, 9, 2, 4), job(2, 9, 0, 5), job(3, 9, 1, 5), job(4, 9, 3, None)]
    assert best_rated(cells) is cells[1]
    assert best_rated([job(1, 9, 0)]) is None
