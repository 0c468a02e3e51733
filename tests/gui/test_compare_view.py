"""Compare two images side by side (issue 17): from two selected Results images (context menu,
button, key C) or two History jobs, both shown at the same height under their labels, one zoom
for both, and the parameters that differ, read off the GUI thread from PNGs written with the
project's own infotext writer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import QItemSelectionModel, Qt
from pytestqt.qtbot import QtBot

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.infotext import build_infotext, png_metadata
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.gui.compare_view import ABSENT, CompareView, parameter_diff
from stablenew_qt.gui.results_panel import ResultsPanel
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow


def config(**txt2img: Any) -> RunConfig:
    t2i = {"model": "tiny-sd.safetensors", "width": 64, "height": 64, **txt2img}
    return RunConfig.from_dict({"prompt": "a fox", "txt2img": t2i})


def infotext(made: RunConfig, seed: int) -> str:
    return build_infotext(made, seed=seed, stage_infos={}, version="0.0")


def written(path: Path, made: RunConfig, seed: int, size: tuple[int, int]) -> Path:
    """A PNG as the runner writes it: pixels, A1111 ``parameters`` and the RunConfig."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (seed % 256, 80, 160)).save(path, pnginfo=png_metadata(infotext(made, seed), made))
    return path


def test_the_diff_holds_exactly_the_keys_that_differ() -> None:
    left = infotext(config(cfg_scale=5), 7)
    right = infotext(config(cfg_scale=9), 8)
    assert parameter_diff(left, right) == [("CFG scale", "5", "9"), ("Seed", "7", "8")]
    assert parameter_diff(left, left) == []
    other = RunConfig.from_dict({"prompt": "a cat", "negative_prompt": "blurry", "txt2img": {"width": 64}})
    keys = [key for key, _a, _b in parameter_diff(left, infotext(other, 7))]
    assert keys[:2] == ["Prompt", "Negative prompt"]
    assert ("Negative prompt", ABSENT, "blurry") in parameter_diff(left, infotext(other, 7))
    assert ("Model", "tiny-sd", ABSENT) in parameter_diff(left, infotext(other, 7))  # only one has it
    assert parameter_diff("", left)[0] == ("Prompt", ABSENT, "a fox")  # an image without parameters


def select_rows(panel: ResultsPanel, *rows: int) -> None:
    panel.gallery.clearSelection()
    for row in rows:
        index = panel.gallery.model().index(row, 0)
        panel.gallery.selectionModel().select(index, QItemSelectionModel.SelectionFlag.Select)


def opened(qtbot: QtBot, view: object) -> CompareView:
    assert isinstance(view, CompareView)
    qtbot.waitUntil(lambda: view._pending == 0, timeout=RUN_TIMEOUT_MS)
    return view


def test_two_selected_results_compare_side_by_side_with_their_diff_and_one_zoom(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    panel = make_main_window().results_panel
    a = written(tmp_path / "00000-7.png", config(cfg_scale=5), 7, (64, 48))
    b = written(tmp_path / "00000-8.png", config(cfg_scale=9), 8, (96, 96))
    panel.add_image(a)
    panel.add_image(b)  # the gallery: b, a
    qtbot.waitUntil(
        lambda: all("tiny-sd" in panel.gallery.item(row).text() for row in (0, 1)), timeout=RUN_TIMEOUT_MS
    )
    select_rows(panel, 0)
    assert not panel.compare_button.isEnabled()
    menu = panel.context_menu(panel.gallery.item(0))
    assert "Compare the two selected" not in [action.text() for action in menu.actions()]
    select_rows(panel, 0, 1)
    assert panel.compare_button.isEnabled()
    menu = panel.context_menu(panel.gallery.item(1))  # on one of the two: the selection stays
    assert panel.selected_paths() == [b, a]
    [compare] = [action for action in menu.actions() if action.text() == "Compare the two selected"]
    assert menu.actions()[0] is compare
    compare.trigger()
    view = opened(qtbot, panel.actions_.compare_view)
    assert view.paths == (b, a)
    assert view.diff_rows() == [("CFG scale", "9", "5"), ("Seed", "8", "7")]
    assert [label.text() for label in view.labels] == [
        panel.gallery.item(0).text(),
        panel.gallery.item(1).text(),
    ]
    assert "seed 8" in view.labels[0].text() and "tiny-sd" in view.labels[0].text()
    heights = [image.pixmap().height() for image in view.images]
    assert heights[0] == heights[1] == view.shown_height > 0  # the same height, whatever their sizes
    assert view.images[0].pixmap().width() == heights[0] and view.images[1].pixmap().width() == round(
        heights[1] * 64 / 48
    )
    before = view.shown_height
    qtbot.keyClick(view, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert view.shown_height == round(before * 1.25)
    assert [image.pixmap().height() for image in view.images] == [view.shown_height] * 2  # one zoom
    view.set_height(1200)  # larger than the view: both scroll, and together
    qtbot.waitUntil(lambda: view.areas[0].verticalScrollBar().maximum() > 0, timeout=RUN_TIMEOUT_MS)
    view.areas[0].verticalScrollBar().setValue(50)
    assert view.areas[1].verticalScrollBar().value() == 50
    view.close()


def test_the_button_and_key_c_compare_and_one_image_is_refused_with_a_message(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    panel = window.results_panel
    for seed in (1, 2):
        panel.add_image(written(tmp_path / f"00000-{seed}.png", config(), seed, (64, 64)))
    messages: list[str] = []
    panel.actions_.errorOccurred.connect(messages.append)
    select_rows(panel, 0)
    panel.gallery.setCurrentRow(0, QItemSelectionModel.SelectionFlag.NoUpdate)
    panel.gallery.setFocus()
    qtbot.keyClick(panel.gallery, Qt.Key.Key_C)
    assert messages == ["Select two images to compare (1 selected)"] and panel.actions_.compare_view is None
    select_rows(panel, 0, 1)
    qtbot.mouseClick(panel.compare_button, Qt.MouseButton.LeftButton)
    view = opened(qtbot, panel.actions_.compare_view)
    assert view.diff_rows() == [("Seed", "2", "1")]
    view.close()
    qtbot.waitUntil(lambda: panel.actions_.compare_view is None, timeout=RUN_TIMEOUT_MS)
    qtbot.keyClick(panel.gallery, Qt.Key.Key_C)
    opened(qtbot, panel.actions_.compare_view).close()


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened_queue:
        yield opened_queue


def test_two_history_jobs_compare_from_the_context_menu(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    window = make_main_window(queue=queue)
    history = window.history_panel
    ids = _finished_jobs(queue, tmp_path, ((3, 20), (4, 25)))
    qtbot.waitUntil(lambda: [job.id for job in history.jobs] == ids[::-1], timeout=RUN_TIMEOUT_MS)
    history.list.selectAll()
    [compare] = [a for a in history.context_menu(history.jobs[0]).actions() if a.text().startswith("Compare")]
    compare.trigger()
    view = opened(qtbot, history.actions_.compare_view)
    assert view.diff_rows() == [("Steps", "25", "20"), ("Seed", "4", "3")]
    assert view.labels[0].text() == f"#{ids[1]} · seed 4 · tiny-sd.safetensors"
    view.close()


def test_a_two_job_selection_in_history_survives_a_refresh(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    window = make_main_window(queue=queue)
    history = window.history_panel
    ids = _finished_jobs(queue, tmp_path, ((5, 20), (6, 20), (7, 20)))
    qtbot.waitUntil(lambda: len(history.jobs) == 3, timeout=RUN_TIMEOUT_MS)
    history._job_items[ids[0]].setSelected(True)
    history._job_items[ids[2]].setSelected(True)
    assert sorted(job.id for job in history.selected_jobs()) == [ids[0], ids[2]]
    queue.rate(ids[1], 4)  # a queue change: History lists again
    qtbot.waitUntil(lambda: any(job.rating == 4 for job in history.jobs), timeout=RUN_TIMEOUT_MS)
    assert sorted(job.id for job in history.selected_jobs()) == [ids[0], ids[2]]


def _finished_jobs(
    queue: JobQueue, tmp_path: Path, seeds_and_steps: tuple[tuple[int, int], ...]
) -> list[int]:
    """Completed jobs with a real PNG each (one per (seed, steps)), as a run would record them."""
    ids = []
    for seed, steps in seeds_and_steps:
        made = config(steps=steps).model_copy(update={"seed": seed})
        job = queue.add(made)[0]
        assert queue.claim(job.id) is not None
        image = written(tmp_path / "runs" / "d" / f"run{job.id}" / f"00000-{seed}.png", made, seed, (64, 64))
        queue.mark_completed(job.id, f"run{job.id}", [image])
        ids.append(job.id)
    return ids
