"""JT05: standalone upscale from an input image, and txt2img then upscale, through the window."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from pytestqt.qtbot import QtBot

from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.gui import testing
from stablenew_qt.gui.testing import (
    MakeMainWindow,
    choose,
    generate_and_wait,
    set_spin,
    small_txt2img,
    widget,
)

make_main_window = testing.make_main_window  # the window fixture, shared with tests/gui


def test_jt05_standalone_upscale_of_an_input_image(
    qtbot: QtBot, make_main_window: MakeMainWindow, input_image: Path
) -> None:
    fake = FakeExecutor()
    window = make_main_window(fake)
    window.cards["txt2img"].setChecked(False)
    window.cards["upscale"].setChecked(True)
    assert "needs an input image" in window.input_panel.error_label.text()
    assert not window.generate_button.isEnabled()
    window.input_panel.set_image(input_image)
    choose(window, "upscale.upscale_model", "Nearest")
    set_spin(qtbot, window, "upscale.upscale_factor", 2.0)
    final_size = widget(window, "upscale.final_size")
    qtbot.waitUntil(lambda: final_size.text() == "Final size: 160 × 128", timeout=5000)  # type: ignore[attr-defined]

    generate_and_wait(qtbot, window)

    assert fake.stages_called == [StageName.UPSCALE]
    assert fake.calls[0].input_sizes == ((80, 64),)
    assert fake.calls[0].payload.config.upscale.upscale_model == "Nearest"
    [output] = window.results_panel.image_paths()
    with Image.open(output) as image:
        assert image.size == (160, 128)


def test_jt05_txt2img_then_upscale(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    fake = FakeExecutor()
    window = make_main_window(fake)
    small_txt2img(qtbot, window)
    window.cards["upscale"].setChecked(True)
    set_spin(qtbot, window, "upscale.upscale_factor", 3.0)
    assert widget(window, "upscale.final_size").text() == "Final size: 192 × 192"  # type: ignore[attr-defined]

    generate_and_wait(qtbot, window)

    assert fake.stages_called == [StageName.TXT2IMG, StageName.UPSCALE]
    assert fake.calls[1].input_sizes == ((64, 64),)
    [output] = window.results_panel.image_paths()
    with Image.open(output) as image:
        assert image.size == (192, 192)
