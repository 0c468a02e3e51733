"""Stage headers that show their state and per-family default sizes (issue 17, item 11)."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox
from pytestqt.qtbot import QtBot

from stablenew_qt.core.config import Txt2ImgConfig
from stablenew_qt.gui.services import ModelChoices
from stablenew_qt.gui.stage_state import family_of, family_size_after, hires_title, refiner_title
from stablenew_qt.gui.testing import MakeMainWindow, choose, set_spin, widget


def test_collapsed_sections_say_whether_hires_and_the_refiner_are_on(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    card = window.cards["txt2img"]
    assert card.hires_section.text() == "Hires fix: off"  # type: ignore[attr-defined]
    assert card.refiner_section.text() == "Refiner: off"  # type: ignore[attr-defined]
    set_spin(qtbot, window, "txt2img.width", 640)
    set_spin(qtbot, window, "txt2img.height", 448)
    hires = widget(window, "txt2img.hires_enabled")
    assert isinstance(hires, QCheckBox)
    hires.setChecked(True)
    set_spin(qtbot, window, "txt2img.hires_upscale_factor", 1.5)
    assert card.hires_section.text() == "Hires fix: ×1.5 → 960×672"  # type: ignore[attr-defined]


def test_a_fresh_window_with_an_sd15_model_starts_at_512_and_switching_family_offers_its_size(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    assert window.model.get("txt2img.model") == "tiny-sd.safetensors"
    assert (window.model.get("txt2img.width"), window.model.get("txt2img.height")) == (512, 512)
    assert window.model.get("txt2img.steps") == 20, "A1111's default steps"
    choose(window, "txt2img.model", "demo-tiny-sdxl")
    assert (window.model.get("txt2img.width"), window.model.get("txt2img.height")) == (1024, 1024)
    assert widget(window, "txt2img.width").value() == 1024  # type: ignore[attr-defined]
    set_spin(qtbot, window, "txt2img.width", 832)  # a size the user chose stays
    choose(window, "txt2img.model", "tiny-sd.safetensors")
    assert window.model.get("txt2img.width") == 832


def test_family_rules() -> None:
    assert family_of("juggernautXL_v9.safetensors") == "SDXL"
    assert family_of("sd_xl_base_1.0.safetensors") == "SDXL"
    assert family_of("dreamshaper_8.safetensors") == "SD 1.5"
    assert family_of("ponyDiffusionV6.safetensors") == "SDXL"
    assert family_size_after("dreamshaper_8", "sdxl_base", (512, 512)) == (1024, 1024)
    assert family_size_after("dreamshaper_8", "sdxl_base", (512, 768)) is None
    assert family_size_after("a", "b", (512, 512)) is None


def test_titles() -> None:
    t2i = Txt2ImgConfig(
        width=512, height=512, hires_enabled=True, hires_resize_width=1024, hires_resize_height=768
    )
    assert hires_title(t2i) == "Hires fix: → 1024×768"
    refiner = Txt2ImgConfig(refiner_enabled=True, refiner_model_name="demo-tiny-sdxl-refiner")
    assert refiner_title(refiner) == "Refiner: demo-tiny-sdxl-refiner from 80 %"


def test_a_fresh_window_starts_on_the_users_own_base_model_not_a_demo_one() -> None:
    demo = ("demo-tiny-sd15", "demo-tiny-sdxl", "demo-tiny-sdxl-refiner")
    own = ModelChoices(
        checkpoints=(*demo, "sd_xl_refiner_1.0.safetensors", "juggernautXL_v9.safetensors"),
        demo_checkpoints=demo,
    )
    assert own.first_checkpoint() == "juggernautXL_v9.safetensors"
    assert ModelChoices(checkpoints=demo, demo_checkpoints=demo).first_checkpoint() == "demo-tiny-sd15"
    only_refiner = ModelChoices(checkpoints=(*demo, "sd_xl_refiner_1.0"), demo_checkpoints=demo)
    assert only_refiner.first_checkpoint() == "sd_xl_refiner_1.0", "their own model all the same"
    assert ModelChoices().first_checkpoint() == ""
