"""V2 full journey: txt2img, img2img, upscale and ADetailer switched on in the window; the executor
sees the stages in canonical order with the knobs set in the widgets."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox
from pytestqt.qtbot import QtBot

from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.sequencer import CANONICAL_ORDER
from stablenew_qt.gui import testing
from stablenew_qt.gui.testing import (
    MakeMainWindow,
    choose,
    generate_and_wait,
    set_spin,
    small_txt2img,
    type_text,
    widget,
)

make_main_window = testing.make_main_window  # the window fixture, shared with tests/gui


def test_v2_full_pipeline_in_canonical_order_with_the_widget_knobs(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    fake = FakeExecutor()
    window = make_main_window(fake)
    small_txt2img(qtbot, window, "portrait of an astronaut")
    choose(window, "txt2img.sampler", "Euler a")
    set_spin(qtbot, window, "txt2img.cfg_scale", 5.5)
    # Switched on bottom-up: the cards keep canonical order whatever the clicking order.
    for card in ("adetailer", "upscale", "img2img"):
        window.cards[card].setChecked(True)
    set_spin(qtbot, window, "img2img.denoise", 0.35)
    set_spin(qtbot, window, "img2img.steps", 10)
    type_text(qtbot, window, "img2img.prompt", "astronaut, detailed")
    set_spin(qtbot, window, "upscale.upscale_factor", 2.0)
    set_spin(qtbot, window, "adetailer.units.0.adetailer_confidence", 0.45)
    window.cards["adetailer"].add_button.click()  # a second unit, for hands
    choose(window, "adetailer.units.1.adetailer_model", "hand_yolov8n.pt")
    use_steps = widget(window, "adetailer.units.1.adetailer_use_steps.Steps")
    assert isinstance(use_steps, QCheckBox)
    use_steps.setChecked(True)
    set_spin(qtbot, window, "adetailer.units.1.adetailer_steps", 12)
    assert window.generate_button.isEnabled(), window.error_label.text()

    generate_and_wait(qtbot, window)

    assert fake.stages_called == list(CANONICAL_ORDER)
    config = fake.calls[0].payload.config
    assert config.prompt == "portrait of an astronaut"
    assert (config.txt2img.sampler, config.txt2img.cfg_scale, config.txt2img.steps) == ("Euler a", 5.5, 3)
    assert (config.img2img.denoise, config.img2img.steps) == (0.35, 10)
    assert fake.calls[1].payload.prompt == "astronaut, detailed"
    assert config.upscale.upscale_factor == 2.0
    units = config.adetailer.units
    assert [u.adetailer_model for u in units] == ["face_yolov8n.pt", "hand_yolov8n.pt"]
    assert units[0].adetailer_confidence == 0.45
    assert (units[1].adetailer_use_steps, units[1].adetailer_steps) == (True, 12)
    assert fake.calls[3].input_sizes == ((128, 128),)
    assert len(window.results_panel.image_paths()) == 1
