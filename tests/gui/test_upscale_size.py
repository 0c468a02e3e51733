"""The upscale card reads its input image's size off the GUI thread (issue 17: the GUI thread
never waits on the disk): "Final size: …" until it arrives, and the latest path wins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pytestqt.qtbot import QtBot

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.sizes import upscaled_size
from stablenew_qt.gui import stage_cards
from stablenew_qt.gui.config_model import ConfigModel
from stablenew_qt.gui.stage_cards import UpscaleCard
from stablenew_qt.gui.testing import DEMO_CHOICES, Heartbeat, MakeMainWindow, SlowRead


@pytest.fixture
def card(qtbot: QtBot) -> Iterator[UpscaleCard]:
    config = RunConfig.model_validate({"txt2img": {"enabled": False}, "upscale": {"enabled": True}})
    made = UpscaleCard(ConfigModel(config), DEMO_CHOICES)
    qtbot.addWidget(made)
    yield made
    made.shutdown()


def _image(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (9, 9, 9)).save(path)
    return path


def test_the_size_arrives_then_follows_the_factor(qtbot: QtBot, card: UpscaleCard, tmp_path: Path) -> None:
    assert card.final_size.text() == "Final size: (input image)"
    image = _image(tmp_path / "in.png", (80, 64))
    card.model.set("upscale.upscale_factor", 2.0)
    with qtbot.waitSignal(card.sizeRead, timeout=5000) as read:
        card.model.set("input_image_path", str(image))
        assert card.final_size.text() == "Final size: …"  # set returned before the read
    assert read.args == [str(image), (80, 64)]
    assert card.final_size.text() == "Final size: 160 × 128"
    card.model.set("upscale.upscale_factor", 3.0)  # the size is kept: no second read
    assert card.final_size.text() == "Final size: 240 × 192"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"no image here")
    with qtbot.waitSignal(card.sizeRead, timeout=5000) as read:
        card.model.set("input_image_path", str(broken))
    assert read.args == [str(broken), None]
    assert card.final_size.text() == "Final size: (input image)"


def test_a_slow_image_never_holds_the_window_and_the_latest_path_wins(
    qtbot: QtBot, card: UpscaleCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, fast = _image(tmp_path / "slow.png", (100, 50)), _image(tmp_path / "fast.png", (30, 20))
    disk = SlowRead(monkeypatch, stage_cards, "_image_size", lambda path: path == str(slow))
    heartbeat = Heartbeat(card)
    read: list[object] = []
    card.sizeRead.connect(lambda path, size: read.append((path, size)))
    card.model.set("input_image_path", str(slow))  # e.g. Send to upscale: returns at once
    qtbot.waitUntil(disk.reading.is_set, timeout=5000)
    card.model.set("input_image_path", str(fast))
    qtbot.waitUntil(lambda: heartbeat.ticks >= 5, timeout=5000)  # the GUI thread is free meanwhile
    assert read == [] and card.final_size.text() == "Final size: …"
    disk.release()
    qtbot.waitUntil(lambda: read == [(str(fast), (30, 20))], timeout=5000)
    assert card.wait(5000)
    qtbot.wait(50)  # any late answer would have arrived by now
    assert read == [(str(fast), (30, 20))], "the slow image's answer was dropped"
    width, height = upscaled_size(30, 20, card.model.config.upscale.upscale_factor)
    assert card.final_size.text() == f"Final size: {width} × {height}"
    assert disk.off_the_gui_thread, "never read on the GUI thread"
    heartbeat.stop()


def test_send_to_upscale_in_the_window_shows_the_size_when_read(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    image = _image(tmp_path / "made.png", (48, 40))
    window.send_to(image, "upscale")
    card = window.cards["upscale"]
    assert isinstance(card, UpscaleCard)
    assert window.model.get("upscale.enabled") and not window.model.get("txt2img.enabled")
    width, height = upscaled_size(48, 40, window.model.config.upscale.upscale_factor)
    qtbot.waitUntil(lambda: card.final_size.text() == f"Final size: {width} × {height}", timeout=5000)
