"""ThumbnailLoader on real PNG files in tmp_path, and the Results gallery that uses it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QListWidgetItem

from stablenew_qt.gui.bridge import EventBridge
from stablenew_qt.gui.image_facts import NO_PARAMETERS
from stablenew_qt.gui.results_panel import THUMB, ResultsPanel, past_images
from stablenew_qt.gui.testing import MakeMainWindow
from stablenew_qt.gui.thumbnails import ThumbnailLoader, read_scaled

WAIT_MS = 5000
Reply = tuple[Path, int, QImage]


def write_png(path: Path, width: int, height: int, color: str = "red", *, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor(color))
    assert image.save(str(path))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def loader(qtbot: Any) -> Iterator[ThumbnailLoader]:
    made = ThumbnailLoader()
    yield made
    made.shutdown()
    made.deleteLater()


@pytest.fixture
def replies(loader: ThumbnailLoader) -> list[Reply]:
    """Every thumbnailReady of ``loader``, in order."""
    got: list[Reply] = []
    loader.thumbnailReady.connect(lambda path, size, image: got.append((path, size, image)))
    return got


# -- the loader ---------------------------------------------------------------------------------


def test_loader_delivers_a_scaled_image_with_the_aspect_kept(
    qtbot: Any, loader: ThumbnailLoader, tmp_path: Path
) -> None:
    path = write_png(tmp_path / "wide.png", 400, 200)
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS) as blocker:
        loader.request(path, 96)
    got_path, size, image = blocker.args
    assert (got_path, size) == (path, 96)
    assert image.size() == QSize(96, 48)
    assert image.pixelColor(48, 24) == QColor("red")
    assert loader.decodes == 1


def test_small_images_are_not_enlarged(qtbot: Any, loader: ThumbnailLoader, tmp_path: Path) -> None:
    path = write_png(tmp_path / "small.png", 40, 20)
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS) as blocker:
        loader.request(path, 96)
    assert blocker.args[2].size() == QSize(40, 20)


def test_a_cache_hit_answers_at_once_without_decoding_again(
    qtbot: Any, loader: ThumbnailLoader, replies: list[Reply], tmp_path: Path
) -> None:
    path = write_png(tmp_path / "a.png", 256, 256)
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS):
        loader.request(path, 64)
    assert loader.decodes == 1 and loader.cache_bytes > 0

    loader.request(path, 64)  # answered inside request(), before any event is processed

    assert len(replies) == 2 and replies[1][2].size() == QSize(64, 64)
    assert loader.decodes == 1


def test_the_cache_key_holds_size_and_modification_time(
    qtbot: Any, loader: ThumbnailLoader, replies: list[Reply], tmp_path: Path
) -> None:
    path = write_png(tmp_path / "a.png", 256, 256, "red", mtime=1_000_000)
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS):
        loader.request(path, 64)
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS):
        loader.request(path, 32)  # another size is another image
    assert loader.decodes == 2
    write_png(path, 256, 256, "blue", mtime=2_000_000)  # rewritten in place
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS) as blocker:
        loader.request(path, 64)
    assert loader.decodes == 3
    assert blocker.args[2].pixelColor(0, 0) == QColor("blue")


def test_identical_requests_in_flight_share_one_decode(
    qtbot: Any, loader: ThumbnailLoader, replies: list[Reply], tmp_path: Path
) -> None:
    path = write_png(tmp_path / "a.png", 128, 128)
    loader.request(path, 64)
    loader.request(path, 64)
    qtbot.waitUntil(loader.is_idle, timeout=WAIT_MS)
    assert loader.decodes == 1
    assert [(p, s) for p, s, _image in replies] == [(path, 64)]


@pytest.mark.parametrize("content", [None, b"", b"not a png at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_missing_or_corrupt_files_are_answered_with_a_null_image(
    qtbot: Any, loader: ThumbnailLoader, replies: list[Reply], tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "broken.png"
    if content is not None:
        path.write_bytes(content)
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS) as blocker:
        loader.request(path, 96)
    assert blocker.args[0] == path and blocker.args[2].isNull()
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS):
        loader.request(path, 96)  # failures are not cached: the file may be written later
    assert loader.decodes == 2 and loader.cache_bytes == 0


def test_a_bad_size_is_refused(loader: ThumbnailLoader, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1 pixel, got 0"):
        loader.request(tmp_path / "a.png", 0)


def test_submitted_work_runs_off_the_gui_thread_and_reports_on_it(
    qtbot: Any, loader: ThumbnailLoader
) -> None:
    seen: dict[str, int] = {}

    def done(worker_thread: int) -> None:
        seen.update(worker=worker_thread, done=threading.get_ident())

    loader.submit(threading.get_ident, done)
    qtbot.waitUntil(lambda: "done" in seen, timeout=WAIT_MS)
    assert seen["done"] == threading.get_ident()
    assert seen["worker"] != threading.get_ident()


def test_failing_work_is_logged_and_not_reported(
    qtbot: Any, loader: ThumbnailLoader, caplog: pytest.LogCaptureFixture
) -> None:
    called: list[object] = []

    def fail() -> None:
        raise OSError("disk went away")

    loader.submit(fail, called.append)
    qtbot.waitUntil(loader.is_idle, timeout=WAIT_MS)
    assert called == []
    assert "disk went away" in caplog.text


def test_cancel_pending_drops_queued_and_running_work(
    qtbot: Any, loader: ThumbnailLoader, replies: list[Reply], tmp_path: Path
) -> None:
    started = threading.Event()
    release = threading.Event()
    finished: list[object] = []

    def slow() -> str:
        started.set()
        release.wait(WAIT_MS / 1000)
        return "late"

    loader.submit(slow, finished.append)  # occupies the one worker thread
    paths = [write_png(tmp_path / f"{i}.png", 64, 64) for i in range(5)]
    for path in paths:
        loader.request(path, 32)  # queued behind it
    assert started.wait(WAIT_MS / 1000)
    loader.cancel_pending()
    release.set()
    qtbot.waitUntil(loader.is_idle, timeout=WAIT_MS)
    qtbot.wait(50)  # a dropped reply would have been queued by now
    assert finished == [] and replies == [] and loader.decodes == 0
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS):
        loader.request(paths[0], 32)  # the loader still works after a cancel


def test_clear_empties_the_cache(qtbot: Any, loader: ThumbnailLoader, tmp_path: Path) -> None:
    path = write_png(tmp_path / "a.png", 64, 64)
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS):
        loader.request(path, 32)
    loader.clear()
    assert loader.cache_bytes == 0
    with qtbot.waitSignal(loader.thumbnailReady, timeout=WAIT_MS):
        loader.request(path, 32)
    assert loader.decodes == 2


def test_the_cache_stays_within_its_byte_budget(qtbot: Any, tmp_path: Path) -> None:
    small = ThumbnailLoader(cache_bytes=3 * 64 * 64 * 4)  # three 64x64 RGB32 images
    try:
        paths = [write_png(tmp_path / f"{i}.png", 64, 64) for i in range(5)]
        for path in paths:
            with qtbot.waitSignal(small.thumbnailReady, timeout=WAIT_MS):
                small.request(path, 64)
        assert small.cache_bytes == 3 * 64 * 64 * 4
        small.request(paths[-1], 64)  # recent: still cached, answered at once
        assert small.decodes == 5
        with qtbot.waitSignal(small.thumbnailReady, timeout=WAIT_MS):
            small.request(paths[0], 64)  # the oldest was evicted: decoded again
        assert small.decodes == 6
    finally:
        small.shutdown()


def test_shutdown_waits_for_running_work_and_ignores_later_requests(
    qtbot: Any, loader: ThumbnailLoader, replies: list[Reply], tmp_path: Path
) -> None:
    paths = [write_png(tmp_path / f"{i}.png", 512, 512) for i in range(10)]
    for path in paths:
        loader.request(path, 96)
    loader.shutdown()
    assert loader.is_idle()
    loader.request(paths[0], 96)
    qtbot.wait(50)
    assert replies == []


def test_a_loader_deleted_with_work_running_skips_queued_work_and_emits_nothing(qtbot: Any) -> None:
    doomed = ThumbnailLoader()
    ran: list[int] = []
    delivered: list[object] = []

    def work(i: int) -> int:
        ran.append(i)
        threading.Event().wait(0.02)
        return i

    for i in range(10):
        doomed.submit(partial(work, i), delivered.append)
    with qtbot.waitSignal(doomed.destroyed, timeout=WAIT_MS):
        doomed.deleteLater()  # its pool waits for the running work only
    qtbot.wait(50)  # a worker emitting into the deleted loader would fail or crash here
    assert len(delivered) <= len(ran) < 10


def test_read_scaled_fits_the_square(tmp_path: Path) -> None:
    assert read_scaled(write_png(tmp_path / "tall.png", 100, 300), 60).size() == QSize(20, 60)
    assert read_scaled(tmp_path / "nothing.png", 60).isNull()


# -- listing past images ------------------------------------------------------------------------


def test_past_images_are_the_newest_run_images_first(tmp_path: Path) -> None:
    old = write_png(tmp_path / "2025-01-01" / "run-a" / "00000.png", 8, 8, mtime=1_000)
    new = write_png(tmp_path / "2025-01-02" / "run-b" / "00000.png", 8, 8, mtime=3_000)
    mid = write_png(tmp_path / "2025-01-02" / "run-b" / "00001.png", 8, 8, mtime=2_000)
    write_png(tmp_path / "stray.png", 8, 8, mtime=9_000)  # not in a run folder
    (tmp_path / "2025-01-02" / "run-b" / "folder.png").mkdir()  # not a file
    assert past_images(tmp_path) == [new, mid, old]
    assert past_images(tmp_path, limit=2) == [new, mid]
    assert past_images(tmp_path / "missing") == []


# -- the Results gallery ------------------------------------------------------------------------


@pytest.fixture
def make_panel(qtbot: Any) -> Iterator[Callable[[Path], ResultsPanel]]:
    panels: list[ResultsPanel] = []

    def make(output_dir: Path) -> ResultsPanel:
        panel = ResultsPanel(EventBridge(), output_dir)
        qtbot.addWidget(panel)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.shutdown()


def icon_color(item: QListWidgetItem) -> QColor:
    pixmap = item.icon().pixmap(QSize(THUMB, THUMB))
    image = pixmap.toImage()
    return image.pixelColor(image.width() // 2, image.height() // 2)


def run_images(output_dir: Path, colors: list[str]) -> list[Path]:
    """One image per colour, each in its own run folder, the last one newest."""
    return [
        write_png(output_dir / "2025-01-01" / f"run-{i}" / "00000.png", 160, 80, color, mtime=1_000 + i)
        for i, color in enumerate(colors)
    ]


def test_the_gallery_opens_without_reading_images_and_gets_real_icons_later(
    qtbot: Any, make_panel: Callable[[Path], ResultsPanel], tmp_path: Path
) -> None:
    paths = run_images(tmp_path, ["red", "green", "blue"])
    panel = make_panel(tmp_path)
    assert panel.gallery.count() == 0 and panel.thumbnails.decodes == 0  # all of it on the pool
    qtbot.waitUntil(lambda: panel.gallery.count() == 3, timeout=WAIT_MS)
    assert panel.image_paths() == paths[::-1]
    wanted = [QColor("blue"), QColor("green"), QColor("red")]
    qtbot.waitUntil(lambda: [icon_color(panel.gallery.item(i)) for i in range(3)] == wanted, timeout=WAIT_MS)
    assert panel.thumbnails.decodes == 3


def test_added_images_show_a_placeholder_then_their_thumbnail(
    qtbot: Any, make_panel: Callable[[Path], ResultsPanel], tmp_path: Path
) -> None:
    panel = make_panel(tmp_path / "empty")
    qtbot.waitUntil(panel.thumbnails.is_idle, timeout=WAIT_MS)
    path = write_png(tmp_path / "new.png", 64, 64, "yellow")
    panel.add_image(path)
    item = panel.gallery.item(0)
    assert panel.image_paths() == [path]
    assert icon_color(item) != QColor("yellow")  # the placeholder, until the thumbnail arrives
    qtbot.waitUntil(lambda: icon_color(item) == QColor("yellow"), timeout=WAIT_MS)


def test_an_unreadable_image_keeps_its_placeholder_and_selecting_it_says_so(
    qtbot: Any, make_panel: Callable[[Path], ResultsPanel], tmp_path: Path
) -> None:
    panel = make_panel(tmp_path / "empty")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    panel.add_image(broken)
    panel.gallery.setCurrentRow(0)
    qtbot.waitUntil(lambda: panel.viewer.text() == "Cannot read this image", timeout=WAIT_MS)
    assert panel.selected == broken
    # read_image_metadata's message names it
    qtbot.waitUntil(lambda: "broken.png" in panel.parameters.toPlainText(), timeout=WAIT_MS)


def test_selecting_an_image_loads_the_viewer_off_the_gui_thread(
    qtbot: Any, make_panel: Callable[[Path], ResultsPanel], tmp_path: Path
) -> None:
    run_images(tmp_path, ["red", "blue"])
    panel = make_panel(tmp_path)
    qtbot.waitUntil(lambda: panel.gallery.count() == 2, timeout=WAIT_MS)
    panel.gallery.setCurrentRow(1)
    qtbot.waitUntil(lambda: not panel.viewer.pixmap().isNull(), timeout=WAIT_MS)
    shown = panel.viewer.pixmap().toImage()
    assert shown.pixelColor(shown.width() // 2, shown.height() // 2) == QColor("red")
    assert shown.width() == 2 * shown.height()  # aspect kept
    qtbot.waitUntil(lambda: panel.parameters.toPlainText() == NO_PARAMETERS, timeout=WAIT_MS)


def test_changing_the_output_folder_drops_the_previous_folder(
    qtbot: Any, make_panel: Callable[[Path], ResultsPanel], tmp_path: Path
) -> None:
    run_images(tmp_path / "first", ["red"] * 5)
    second = run_images(tmp_path / "second", ["blue"])
    panel = make_panel(tmp_path / "first")
    panel.set_output_dir(tmp_path / "second")  # before the first listing arrived
    qtbot.waitUntil(panel.thumbnails.is_idle, timeout=WAIT_MS)
    qtbot.wait(50)
    assert panel.image_paths() == second
    assert icon_color(panel.gallery.item(0)) == QColor("blue")


def test_a_listing_does_not_repeat_images_already_added(
    qtbot: Any, make_panel: Callable[[Path], ResultsPanel], tmp_path: Path
) -> None:
    old, new = run_images(tmp_path, ["red", "blue"])
    panel = make_panel(tmp_path)
    panel.add_image(new)  # a run finished before the listing arrived
    qtbot.waitUntil(panel.thumbnails.is_idle, timeout=WAIT_MS)
    assert panel.image_paths() == [new, old]


def test_closing_the_window_leaves_no_thumbnail_work_running(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    panel = window.results_panel
    for i in range(20):
        panel.add_image(write_png(tmp_path / "many" / f"{i}.png", 512, 512))
    window.close()
    assert panel.thumbnails.is_idle()
    count = panel.thumbnails.decodes
    qtbot.wait(50)
    assert panel.thumbnails.decodes == count  # nothing delivered after closing
    assert panel.gallery.item(0).data(Qt.ItemDataRole.UserRole) == str(tmp_path / "many" / "19.png")
