"""The gallery off the GUI thread and from the keyboard (issue 17): the parameters of the selected
image are read on the loader's pool (a quick re-selection shows the latest), History's selection
never touches the disk, the full view steps with Left / Right, deletes with Delete (asking first)
and closes with Esc; Enter opens it from Results and History; labels tell images apart by model.
Real PNG files, a real JobQueue file, the FakeExecutor window."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from stablenew_qt.core.queue import JobQueue
from stablenew_qt.gui import history_listing, image_facts
from stablenew_qt.gui.image_viewer import ImageViewer
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.results_panel import READING, ResultsPanel
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow, threads_calling


def a1111_png(path: Path, seed: int, model: str = "tiny-sd", size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    info.add_text("parameters", f"a fox\nNegative prompt: blurry\nSteps: 12, Seed: {seed}, Model: {model}")
    Image.new("RGB", size, (seed % 256, 90, 40)).save(path, pnginfo=info)
    return path


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


def shown(panel: ResultsPanel, *paths: Path) -> list[Path]:
    for path in paths:
        panel.add_image(path)
    return panel.image_paths()


def opened_viewer(qtbot: QtBot, viewer: object) -> ImageViewer:
    assert isinstance(viewer, ImageViewer) and viewer.isVisible()
    qtbot.waitUntil(lambda: not viewer.pixmap.isNull(), timeout=RUN_TIMEOUT_MS)
    return viewer


# -- 1. reads off the GUI thread ---------------------------------------------------------------


def test_parameters_arrive_from_the_loader_and_a_quick_reselection_shows_the_latest(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = a1111_png(tmp_path / "00000-111.png", 111), a1111_png(tmp_path / "00000-222.png", 222)
    release = {first: threading.Event(), second: threading.Event()}
    readers: list[threading.Thread] = []
    real = image_facts.read_image_facts

    def held(path: Path) -> image_facts.ImageFacts:
        readers.append(threading.current_thread())
        if path in release:
            release[path].wait(5)
        return real(path)

    monkeypatch.setattr(image_facts, "read_image_facts", held)
    panel = make_main_window().results_panel
    assert shown(panel, first, second) == [second, first]
    panel.gallery.setCurrentRow(1)  # the first image: its file is being read on the pool
    assert panel.parameters.toPlainText() == READING
    panel.gallery.setCurrentRow(0)  # the user moves on before it arrives
    assert panel.parameters.toPlainText() == READING
    release[first].set()
    qtbot.waitUntil(lambda: panel.facts(first) is not None, timeout=RUN_TIMEOUT_MS)
    qtbot.wait(20)
    assert panel.parameters.toPlainText() == READING, "an answer for the earlier image was shown"
    release[second].set()
    qtbot.waitUntil(lambda: "Seed: 222" in panel.parameters.toPlainText(), timeout=RUN_TIMEOUT_MS)
    assert readers and threading.main_thread() not in readers
    panel.gallery.setCurrentRow(1)  # read before: shown at once from what the pool brought
    assert "Seed: 111" in panel.parameters.toPlainText()


def finished_with_images(queue: JobQueue, window: MainWindow, tmp_path: Path, seeds: list[int]) -> list[int]:
    """One completed job per seed, each with one real PNG in its own run folder."""
    ids = []
    for seed in seeds:
        job = queue.add(window.model.config.model_copy(update={"prompt": f"fox {seed}"}))[0]
        assert queue.claim(job.id) is not None
        image = a1111_png(tmp_path / "runs" / "2026-12-03" / f"run{job.id}" / f"00000-{seed}.png", seed)
        queue.mark_completed(job.id, f"run{job.id}", [image])
        ids.append(job.id)
    return ids


def test_history_looks_up_images_and_folders_on_the_queue_thread_not_on_selection(
    qtbot: QtBot,
    make_main_window: MakeMainWindow,
    queue: JobQueue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = threads_calling(monkeypatch, history_listing, "first_image", "job_folder")
    window = make_main_window(queue=queue)
    history = window.history_panel
    a, b = finished_with_images(queue, window, tmp_path, [5, 6])
    qtbot.waitUntil(lambda: [job.id for job in history.jobs] == [b, a], timeout=RUN_TIMEOUT_MS)
    looked_up = len(threads)
    assert looked_up >= 4 and threading.main_thread() not in threads
    for row in (0, 1, 0):
        history.list.setCurrentRow(row)
    menu = history.context_menu(history.jobs[1])
    assert len(threads) == looked_up, "selecting or opening the menu went to the disk"
    assert history.open_button.isEnabled()
    assert [a.isEnabled() for a in menu.actions() if a.text() == "Full view"] == [True]
    assert history.image_paths()[1].name == "00000-5.png"


# -- 2. the full view from the keyboard ---------------------------------------------------------


def test_full_view_steps_with_left_and_right_through_the_results_and_esc_closes(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    panel = make_main_window().results_panel
    paths = shown(panel, *(a1111_png(tmp_path / f"00000-{s}.png", s, size=(40 + s, 30)) for s in (1, 2, 3)))
    panel.gallery.setCurrentRow(1)
    panel.gallery.setFocus()
    qtbot.keyClick(panel.gallery, Qt.Key.Key_Return)  # Enter opens the full view
    viewer = opened_viewer(qtbot, panel.actions_.viewer)
    assert viewer.path == paths[1] and viewer.paths == paths
    viewer.area.setFocus()
    qtbot.keyClick(viewer.area, Qt.Key.Key_Right)  # the scroll area would scroll: the viewer steps
    qtbot.waitUntil(
        lambda: viewer.path == paths[2] and viewer.pixmap.width() == 40 + 1, timeout=RUN_TIMEOUT_MS
    )
    qtbot.keyClick(viewer.area, Qt.Key.Key_Right)  # at the end it stays
    assert viewer.path == paths[2]
    for _ in range(2):
        qtbot.keyClick(viewer.area, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: viewer.pixmap.width() == 40 + 3, timeout=RUN_TIMEOUT_MS)
    assert viewer.path == paths[0] and "1 of 3" in viewer.windowTitle()
    qtbot.keyClick(viewer.area, Qt.Key.Key_Escape)
    assert not viewer.isVisible()
    qtbot.waitUntil(lambda: panel.actions_.viewer is None, timeout=RUN_TIMEOUT_MS)  # deleted on close


def test_delete_in_the_full_view_asks_then_trashes_and_shows_the_next(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the trash, on Linux (Qt needs
    (tmp_path / "data").mkdir()  # the folder to exist; without it there is no trash)
    panel = make_main_window().results_panel
    paths = shown(panel, *(a1111_png(tmp_path / f"00000-{s}.png", s) for s in (1, 2)))
    viewer = opened_viewer(qtbot, panel.actions_.full_view(paths[0], panel.image_paths()))
    qtbot.keyClick(viewer, Qt.Key.Key_Delete)
    box = panel.actions_.confirm
    assert isinstance(box, QMessageBox) and box.parent() is viewer  # the same question, over the view
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert paths[0].exists() and viewer.path == paths[0]
    qtbot.keyClick(viewer, Qt.Key.Key_Delete)
    box = panel.actions_.confirm
    assert box is not None
    with qtbot.waitSignal(panel.actions_.deleted):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert not paths[0].exists() and panel.image_paths() == [paths[1]]
    assert viewer.path == paths[1] and viewer.paths == [paths[1]]
    qtbot.keyClick(viewer, Qt.Key.Key_Delete)
    box = panel.actions_.confirm
    assert box is not None
    with qtbot.waitSignal(panel.actions_.deleted):  # moved on the loader's pool
        box.button(QMessageBox.StandardButton.Yes).click()
    assert panel.image_paths() == [] and not viewer.isVisible()  # nothing left to show
    qtbot.waitUntil(lambda: panel.actions_.viewer is None, timeout=RUN_TIMEOUT_MS)


def test_enter_in_history_opens_the_jobs_image_and_steps_through_the_history(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    window = make_main_window(queue=queue)
    history = window.history_panel
    window.tabs.setCurrentWidget(history)
    a, b, c = finished_with_images(queue, window, tmp_path, [7, 8, 9])
    qtbot.waitUntil(lambda: [job.id for job in history.jobs] == [c, b, a], timeout=RUN_TIMEOUT_MS)
    history.list.setCurrentRow(1)
    history.list.setFocus()
    qtbot.keyClick(history.list, Qt.Key.Key_Enter)
    viewer = opened_viewer(qtbot, history.actions_.viewer)
    assert viewer.path.name == "00000-8.png"
    assert [p.name for p in viewer.paths] == ["00000-9.png", "00000-8.png", "00000-7.png"]
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.path.name == "00000-7.png"
    viewer.close()
    QApplication.processEvents()


# -- 4. labels that tell images apart -----------------------------------------------------------


def test_labels_show_time_seed_and_the_model_read_on_the_pool(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers = threads_calling(monkeypatch, image_facts, "read_image_facts")
    panel = make_main_window().results_panel
    # The same file name (index and seed) in two run folders, made with two models.
    first = a1111_png(tmp_path / "run1" / "00000-42.png", 42, model="dreamshaper_8")
    second = a1111_png(tmp_path / "run2" / "00000-42.png", 42, model="juggernautXL")
    plain = tmp_path / "fox.png"
    Image.new("RGB", (8, 8)).save(plain)
    shown(panel, first, second, plain)
    labels = [panel.gallery.item(row).text() for row in range(3)]
    assert labels[1].endswith("· seed 42") and "dreamshaper" not in labels[2]  # the model needs the file
    qtbot.waitUntil(lambda: "dreamshaper_8" in panel.gallery.item(2).text(), timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: "juggernautXL" in panel.gallery.item(1).text(), timeout=RUN_TIMEOUT_MS)
    labels = [panel.gallery.item(row).text() for row in range(3)]
    assert labels[1].endswith(" · seed 42 · juggernautXL") and labels[2].endswith(
        " · seed 42 · dreamshaper_8"
    )
    assert labels[0].endswith(" · fox")  # no infotext: the time and the file name
    assert len(set(labels)) == 3 and threading.main_thread() not in readers
    panel._on_rated(second, 3)  # what a stored rating calls back
    assert panel.gallery.item(1).text().endswith("juggernautXL  ★★★☆☆")  # the stars follow the label
