"""The input image's preview is read off the GUI thread (issue 17: the GUI thread never waits on
the disk): "reading…" until it arrives, the latest path wins, a bad file says it cannot be read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from stablenew_qt.gui import prompt_panel as panel_module
from stablenew_qt.gui.config_model import ConfigModel
from stablenew_qt.gui.prompt_panel import CANNOT_READ, NO_IMAGE, READING, THUMB, InputImagePanel
from stablenew_qt.gui.testing import Heartbeat, SlowRead


@pytest.fixture
def panel(qtbot: QtBot) -> Iterator[InputImagePanel]:
    made = InputImagePanel(ConfigModel())
    qtbot.addWidget(made)
    yield made
    made.shutdown()


def _image(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def test_the_preview_arrives_scaled_to_the_thumbnail(
    qtbot: QtBot, panel: InputImagePanel, tmp_path: Path
) -> None:
    assert panel.thumbnail.text() == NO_IMAGE
    big = _image(tmp_path / "big.png", (400, 200), (10, 200, 30))
    with qtbot.waitSignal(panel.previewShown, timeout=5000) as shown:
        panel.set_image(big)
        assert panel.thumbnail.text() == READING  # set_image returned before the read
    assert shown.args == [str(big), True]
    pixmap = panel.thumbnail.pixmap()
    assert (pixmap.width(), pixmap.height()) == (THUMB, THUMB // 2)
    assert pixmap.toImage().pixelColor(5, 5).green() == 200
    panel.model.set("input_image_path", None)
    assert panel.thumbnail.text() == NO_IMAGE and panel.thumbnail.pixmap().isNull()


def test_a_file_that_is_not_an_image_says_it_cannot_be_read(
    qtbot: QtBot, panel: InputImagePanel, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with qtbot.waitSignal(panel.previewShown, timeout=5000) as shown:
        panel.set_image(broken)
    assert shown.args == [str(broken), False]
    assert panel.thumbnail.text() == CANNOT_READ
    assert str(broken) in panel.thumbnail.toolTip()
    with qtbot.waitSignal(panel.previewShown, timeout=5000) as shown:
        panel.set_image(tmp_path / "missing.png")
    assert shown.args == [str(tmp_path / "missing.png"), False]


def test_a_slow_image_never_holds_the_window_and_the_latest_path_wins(
    qtbot: QtBot, panel: InputImagePanel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first image sits on a slow disk (its read blocks until released); the user drops a
    second one meanwhile. The event loop keeps running, the second image shows, and the first
    one's answer, arriving last, is dropped."""
    slow = _image(tmp_path / "slow.png", (64, 64), (250, 0, 0))
    fast = _image(tmp_path / "fast.png", (64, 64), (0, 0, 250))
    disk = SlowRead(monkeypatch, panel_module, "read_scaled", lambda path, _size: path == slow)
    heartbeat = Heartbeat(panel)
    shown: list[tuple[str, bool]] = []
    panel.previewShown.connect(lambda path, ok: shown.append((path, ok)))
    panel.set_image(slow)  # returns at once
    qtbot.waitUntil(disk.reading.is_set, timeout=5000)
    panel.set_image(fast)  # queued behind the slow read on the panel's thread
    qtbot.waitUntil(lambda: heartbeat.ticks >= 5, timeout=5000)  # the GUI thread is free meanwhile
    assert shown == [] and panel.thumbnail.text() == READING
    disk.release()
    qtbot.waitUntil(lambda: shown == [(str(fast), True)], timeout=5000)
    assert panel.wait(5000)
    qtbot.wait(50)  # any late answer would have arrived by now
    assert shown == [(str(fast), True)], "the slow image's answer was dropped"
    assert panel.thumbnail.pixmap().toImage().pixelColor(5, 5).blue() == 250
    assert [path.name for path, _size in disk.calls] == ["slow.png", "fast.png"]
    assert disk.off_the_gui_thread, "never on the GUI thread"
    heartbeat.stop()


def test_paths_typed_one_key_at_a_time_skip_the_reads_already_superseded(
    qtbot: QtBot, panel: InputImagePanel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _image(tmp_path / "typed.png", (32, 32), (1, 2, 3))
    release = threading.Event()
    read: list[str] = []
    real_read = panel_module.read_scaled

    def reader(path: Path, size: int) -> QImage:
        read.append(path.name)
        assert release.wait(10)
        return real_read(path, size)

    monkeypatch.setattr(panel_module, "read_scaled", reader)
    text = str(image)
    for end in range(len(text) - 3, len(text) + 1):  # ".../typed.p", ..., ".../typed.png"
        panel.model.set("input_image_path", text[:end])
    release.set()
    with qtbot.waitSignal(panel.previewShown, timeout=5000) as shown:
        pass
    assert shown.args == [text, True]
    assert panel.wait(5000)
    assert len(read) <= 2, f"at most the first (already started) read and the last: {read}"
    assert read[-1] == "typed.png"
