"""History's context menu acts on a job's images as Results does (issue 17): open, copy image,
copy parameters, and "Delete images… (to trash)", which asks first (naming how many files),
moves them to the trash off the GUI thread, keeps the job listed without its thumbnail, and
never deletes a file for good without a second, explicit Yes. Real PNG files in real run
folders, a real JobQueue file, the FakeExecutor window."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from stablenew_qt.core.queue import JobQueue
from stablenew_qt.gui import image_actions
from stablenew_qt.gui.history_panel import HistoryPanel
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow, threads_calling

INFOTEXT = "a heron at dawn\nNegative prompt: blurry\nSteps: 9, Seed: {seed}, Model: tiny-sd"


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


@pytest.fixture
def trash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A trash of the test's own (Qt needs its data folder to exist); its ``files`` folder."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "Trash" / "files"


def finished_job(
    queue: JobQueue, window: MainWindow, tmp_path: Path, seeds: list[int], config_seed: int = -1
) -> tuple[int, list[Path]]:
    """One completed job with one real A1111 PNG per seed in its run folder (named as ours are)."""
    job = queue.add(window.model.config.model_copy(update={"prompt": "a heron", "seed": config_seed}))[0]
    assert queue.claim(job.id) is not None
    images = []
    for index, seed in enumerate(seeds):
        path = tmp_path / "runs" / "2026-12-03" / f"run{job.id}" / f"{index:05d}-{seed}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        info = PngInfo()
        info.add_text("parameters", INFOTEXT.format(seed=seed))
        Image.new("RGB", (40, 30), (seed % 256, 90, 40)).save(path, pnginfo=info)
        images.append(path)
    queue.mark_completed(job.id, f"run{job.id}", images)
    return job.id, images


def shown(qtbot: QtBot, window: MainWindow, job_id: int) -> HistoryPanel:
    history = window.history_panel
    qtbot.waitUntil(lambda: [job.id for job in history.jobs] == [job_id], timeout=RUN_TIMEOUT_MS)
    history.list.setCurrentRow(0)
    return history


def action(history: HistoryPanel, text: str) -> QAction:
    [found] = [a for a in history.context_menu(history.jobs[0]).actions() if a.text() == text]
    return found


def test_open_copy_image_and_copy_parameters_act_on_the_jobs_first_image(
    qtbot: QtBot,
    make_main_window: MakeMainWindow,
    queue: JobQueue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readers = threads_calling(monkeypatch, image_actions.image_facts, "read_image_facts")
    window = make_main_window(queue=queue)
    job_id, images = finished_job(queue, window, tmp_path, [31, 32])
    history = shown(qtbot, window, job_id)
    opened: list[str] = []
    monkeypatch.setattr(
        image_actions.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile())
    )
    action(history, "Open image").trigger()
    assert opened == [str(images[0])]
    QGuiApplication.clipboard().clear()
    action(history, "Copy parameters").trigger()
    qtbot.waitUntil(lambda: QGuiApplication.clipboard().text() != "", timeout=RUN_TIMEOUT_MS)
    assert QGuiApplication.clipboard().text() == INFOTEXT.format(seed=31)  # the first image's
    assert readers and threading.main_thread() not in readers
    action(history, "Copy image").trigger()
    qtbot.waitUntil(lambda: QGuiApplication.clipboard().image().width() == 40, timeout=RUN_TIMEOUT_MS)
    folder = [a for a in history.context_menu(history.jobs[0]).actions() if "folder" in a.text()]
    assert [a.text() for a in folder] == ["Open folder"], "one entry opens the folder"


def test_delete_images_asks_naming_how_many_and_cancel_keeps_them(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path, trash: Path
) -> None:
    window = make_main_window(queue=queue)
    job_id, images = finished_job(queue, window, tmp_path, [41, 42, 43])
    history = shown(qtbot, window, job_id)
    action(history, "Delete images… (to trash)").trigger()
    box = history.actions_.confirm
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert box.text() == f"Move the 3 image file(s) of job #{job_id} to the trash?"
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.wait(50)
    assert all(path.is_file() for path in images) and not trash.exists()
    assert [job.id for job in history.jobs] == [job_id]


def test_delete_images_confirmed_trashes_them_and_the_job_stays_without_its_thumbnail(
    qtbot: QtBot,
    make_main_window: MakeMainWindow,
    queue: JobQueue,
    tmp_path: Path,
    trash: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    movers = threads_calling(monkeypatch, image_actions, "move_to_trash")
    window = make_main_window(queue=queue)
    job_id, images = finished_job(queue, window, tmp_path, [51, 52])
    history = shown(qtbot, window, job_id)
    window.results_panel.add_image(images[0])  # also in this session's Results gallery
    assert window.results_panel.image_paths() == [images[0]]
    thumbnail = QSize(40, 30)  # the image's own size (below THUMB): not the status icon's sizes
    qtbot.waitUntil(lambda: thumbnail in history.list.item(0).icon().availableSizes(), timeout=RUN_TIMEOUT_MS)
    assert "2 image(s)  ·" in history.list.item(0).text()
    action(history, "Delete images… (to trash)").trigger()
    box = history.actions_.confirm
    assert box is not None
    with qtbot.waitSignals([history.actions_.deleted] * 2, timeout=RUN_TIMEOUT_MS):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert not any(path.exists() for path in images)
    assert window.results_panel.image_paths() == [], "gone from Results too"
    assert sorted(p.name for p in trash.iterdir()) == [p.name for p in images], "in the trash"
    assert len(movers) == 2 and threading.main_thread() not in movers
    qtbot.waitUntil(lambda: "none on disk" in history.list.item(0).text(), timeout=RUN_TIMEOUT_MS)
    assert [job.id for job in history.jobs] == [job_id] and list(queue.get(job_id).outputs) == images
    assert thumbnail not in history.list.item(0).icon().availableSizes(), "the placeholder, not the image"
    entries = {a.text(): a.isEnabled() for a in history.context_menu(history.jobs[0]).actions()}
    assert not entries["Delete images… (to trash)"] and not entries["Open image"] and entries["Remove"]


def test_delete_images_without_a_trash_asks_again_and_no_keeps_every_file(
    qtbot: QtBot,
    make_main_window: MakeMainWindow,
    queue: JobQueue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(image_actions, "move_to_trash", lambda path: False)  # no trash here
    window = make_main_window(queue=queue)
    job_id, images = finished_job(queue, window, tmp_path, [61, 62])
    history = shown(qtbot, window, job_id)
    first = history.delete_images(job_id)
    assert first is not None
    first.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: history.actions_.confirm is not first, timeout=RUN_TIMEOUT_MS)
    second = history.actions_.confirm
    assert second is not None
    assert second.text() == "The trash is not available here. Delete 2 file(s) permanently?"
    second.button(QMessageBox.StandardButton.No).click()
    qtbot.wait(50)
    assert all(path.is_file() for path in images)
    assert "on disk" not in history.list.item(0).text()


def test_history_rows_tell_jobs_apart_by_time_seed_and_model(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    window = make_main_window(queue=queue)
    chosen, _images = finished_job(queue, window, tmp_path, [77], config_seed=1234)  # the config's
    random_seed, _images = finished_job(queue, window, tmp_path, [987])  # -1: the image's name has it
    failed = queue.add(window.model.config.model_copy(update={"seed": -1}))[0]
    assert queue.claim(failed.id) is not None
    queue.mark_failed(failed.id, "out of memory")
    history = window.history_panel
    qtbot.waitUntil(lambda: len(history.jobs) == 3, timeout=RUN_TIMEOUT_MS)
    rows = {job.id: history.list.item(row).text() for row, job in enumerate(history.jobs)}
    model = queue.get(chosen).model
    assert model and f"  {model}  " in rows[chosen].splitlines()[0]  # the model, on the summary line
    assert "  ·  seed 1234  ·  1 image(s)" in rows[chosen].splitlines()[1]
    assert "  ·  seed 987  ·  1 image(s)" in rows[random_seed].splitlines()[1]
    assert "  ·  random seed  ·  no images" in rows[failed.id].splitlines()[1]
    assert rows[chosen].splitlines()[1].startswith(queue.get(chosen).when.strftime("%Y-%m-%d %H:%M  ·  "))


def test_copy_parameters_of_an_image_without_them_says_so_and_keeps_the_clipboard(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    window = make_main_window(queue=queue)
    job_id, [image] = finished_job(queue, window, tmp_path, [71])
    Image.new("RGB", (40, 30)).save(image)  # the same file, now without its infotext
    history = shown(qtbot, window, job_id)
    QGuiApplication.clipboard().setText("kept")
    with qtbot.waitSignal(history.errorOccurred, timeout=RUN_TIMEOUT_MS) as said:
        action(history, "Copy parameters").trigger()
    assert said.args == [f"Nothing copied: {image.name} stores no parameters"]
    assert QGuiApplication.clipboard().text() == "kept"


def test_an_image_deleted_in_results_shows_in_history_at_once(
    qtbot: QtBot, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path, trash: Path
) -> None:
    window = make_main_window(queue=queue)
    job_id, [image] = finished_job(queue, window, tmp_path, [61])
    history = shown(qtbot, window, job_id)
    window.results_panel.add_image(image)
    window.results_panel.actions_.delete(image).button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: "none on disk" in history.list.item(0).text(), timeout=RUN_TIMEOUT_MS)
    assert not image.exists() and [p.name for p in trash.iterdir()] == [image.name]
