"""Dropping and restoring images (issue 17, items 3, 4, 9, 14): a PNG dropped on the prompt box
restores its settings (never types its URL), a picture without settings is offered as the input
image, and models the settings name that are not installed are listed with the closest names.
The image is read off the GUI thread, and the latest restore asked is the one that counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtWidgets import QComboBox, QDialogButtonBox, QMessageBox
from pytestqt.qtbot import QtBot

from stablenew_qt.core.config import RunConfig
from stablenew_qt.gui import restore as restore_module
from stablenew_qt.gui.installed import closest_names, is_installed, missing_models
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.missing_models_dialog import MissingModelsDialog, offered_names
from stablenew_qt.gui.services import ModelChoices
from stablenew_qt.gui.testing import (
    DEMO_CHOICES,
    Heartbeat,
    MakeMainWindow,
    SlowRead,
    drop_files,
    restore_and_wait,
)

INFOTEXT = (
    "a red fox in the snow\nNegative prompt: blurry\n"
    "Steps: 12, Sampler: Euler a, CFG scale: 6, Seed: 4242, Size: 640x448, Model: {model}"
)


def a1111_png(path: Path, model: str = "tiny-sd") -> Path:
    info = PngInfo()
    info.add_text("parameters", INFOTEXT.format(model=model))
    Image.new("RGB", (64, 48), (200, 90, 40)).save(path, pnginfo=info)
    return path


def _dialog(window: object, name: str) -> QMessageBox:
    box = window.findChild(QMessageBox, name)  # type: ignore[attr-defined]
    assert isinstance(box, QMessageBox), f"no {name} dialog"
    return box


def _restored_sdxl_fox(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> tuple[MainWindow, QMessageBox]:
    """A window that restored a PNG naming 'tiny-sdxl' (not installed), and its warning."""
    window = make_main_window()
    restore_and_wait(qtbot, window, a1111_png(tmp_path / "dream.png", model="tiny-sdxl"))
    return window, _dialog(window, "dialog.missing_models")


def test_a_png_dropped_on_the_prompt_box_restores_its_settings(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    png = a1111_png(tmp_path / "a1111_fox.png")
    with qtbot.waitSignal(window.restorer.restored, timeout=5000):
        drop_files(window.prompt_panel.prompt, png)
    assert window.model.get("prompt") == "a red fox in the snow"
    assert "file:" not in window.prompt_panel.prompt.toPlainText()
    assert window.model.get("txt2img.width") == 640 and window.model.get("txt2img.height") == 448
    assert window.findChild(QMessageBox, "dialog.missing_models") is None, "tiny-sd is installed"
    window.model.set("negative_prompt", "")
    with qtbot.waitSignal(window.restorer.restored, timeout=5000):
        drop_files(window.prompt_panel.negative.viewport(), png)  # the negative box too
    assert window.model.get("negative_prompt") == "blurry"


def test_a_png_without_settings_is_offered_as_the_input_image(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(photo)
    with qtbot.waitSignal(window.restorer.offeredAsInput, timeout=5000) as offered:
        drop_files(window.prompt_panel.prompt, photo)
    assert offered.args == [photo]
    box = _dialog(window, "dialog.use_as_input")
    assert "no generation settings in this image" in box.text()
    assert window.prompt_panel.prompt.toPlainText() == window.model.get("prompt")  # nothing typed
    box.button(QMessageBox.StandardButton.Yes).click()
    assert window.model.get("input_image_path") == str(photo)


def test_a_restored_png_whose_model_is_missing_says_so_with_the_closest_names(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window, box = _restored_sdxl_fox(qtbot, make_main_window, tmp_path)
    assert "Model (txt2img): 'tiny-sdxl' is not installed; closest installed: " in box.text()
    assert "demo-tiny-sdxl" in box.text()
    assert window.model.get("txt2img.model") == "tiny-sdxl", "the settings are restored all the same"


def test_the_missing_models_dialog_offers_to_pick_installed_ones(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window, box = _restored_sdxl_fox(qtbot, make_main_window, tmp_path)
    assert box.defaultButton() is not box.button(QMessageBox.StandardButton.Apply)
    pick = box.button(QMessageBox.StandardButton.Apply)
    assert pick.text() == "Pick installed models…"
    pick.click()
    picker = window.restorer.picker
    assert isinstance(picker, MissingModelsDialog) and picker.isVisible()
    combo = picker.combos["txt2img.model"]
    offered = [combo.itemText(i) for i in range(combo.count())]
    assert offered[0] == "keep 'tiny-sdxl' (not installed)"
    assert set(offered[1:]) == {"tiny-sd.safetensors", "demo-tiny-sdxl", "demo-tiny-sdxl-refiner"}
    assert combo.currentIndex() == 1, "the closest spelling is proposed"
    combo.setCurrentIndex(combo.findText("demo-tiny-sdxl"))  # the user knows it was an SDXL model
    picker.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert window.model.get("txt2img.model") == "demo-tiny-sdxl"
    assert window.model.get("prompt") == "a red fox in the snow", "the rest stays as restored"
    assert window.statusBar().currentMessage() == "Using installed: demo-tiny-sdxl"


def test_picking_keeps_the_name_or_a_field_the_user_changed_meanwhile(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window, _box = _restored_sdxl_fox(qtbot, make_main_window, tmp_path)
    picker = window.restorer.pick_models(missing_models(window.model.config, DEMO_CHOICES))
    picker.combos["txt2img.model"].setCurrentIndex(0)  # keep 'tiny-sdxl'
    assert picker.choice() == {}
    picker.combos["txt2img.model"].setCurrentIndex(2)
    window.model.set("txt2img.model", "tiny-sd")  # picked in the card while the dialog was open
    picker.accept()
    assert window.model.get("txt2img.model") == "tiny-sd"


def test_a_kind_with_nothing_installed_has_nothing_to_offer_so_no_picker_button(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    config = RunConfig.model_validate({"txt2img": {"model": "dreamshaper_8"}})
    [missing] = missing_models(config, ModelChoices())
    assert missing.installed == () and offered_names(missing) == []
    window = make_main_window(choices=ModelChoices())  # not even the demo models
    restore_and_wait(qtbot, window, a1111_png(tmp_path / "dream.png", model="dreamshaper_8"))
    box = _dialog(window, "dialog.missing_models")
    assert "none of this kind is installed" in box.text()
    assert box.button(QMessageBox.StandardButton.Apply) is None


def test_an_image_whose_settings_cannot_be_used_is_refused_in_one_line(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    before = window.model.config
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    with qtbot.waitSignal(window.restorer.refused, timeout=5000) as refused:
        window.restore_from_image(broken)
    path, message = refused.args
    assert path == broken and "\n" not in message
    assert message.endswith("broken.png': not an image file this app can read (PNG, JPEG or WebP)")
    assert window.statusBar().currentMessage().startswith("Cannot use broken.png: ")
    assert window.model.config == before, "nothing restored"


def test_a_slow_image_never_holds_the_window_and_the_latest_restore_wins(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first image sits on a slow disk (its read blocks until released); the user drops a
    second one meanwhile. The window keeps running its event loop, the second image's settings
    are restored, and the first one's, arriving last, are dropped."""
    window = make_main_window()
    slow = a1111_png(tmp_path / "slow.png", model="tiny-sdxl")
    fast = a1111_png(tmp_path / "fast.png")
    disk = SlowRead(monkeypatch, restore_module, "read_generation_settings", lambda path: path == slow)
    heartbeat = Heartbeat(window)
    restored: list[Path] = []
    window.restorer.restored.connect(lambda path, _settings: restored.append(path))
    window.restore_from_image(slow)  # returns at once
    qtbot.waitUntil(disk.reading.is_set, timeout=5000)
    window.restore_from_image(fast)  # queued behind the slow read on the reader's thread
    qtbot.waitUntil(lambda: heartbeat.ticks >= 5, timeout=5000)  # the GUI thread is free meanwhile
    assert restored == [] and window.model.get("txt2img.model") != "tiny-sdxl"
    disk.release()
    qtbot.waitUntil(lambda: restored == [fast], timeout=5000)
    assert window.restorer.wait(5000)
    qtbot.wait(50)  # any late answer would have arrived by now
    assert restored == [fast], "the slow image's answer was dropped"
    assert window.model.get("txt2img.model") == "tiny-sd"
    assert window.findChild(QMessageBox, "dialog.missing_models") is None, "nothing said about slow.png"
    assert disk.off_the_gui_thread, "never read on the GUI thread"
    heartbeat.stop()


def test_missing_models_knows_every_kind() -> None:
    choices = ModelChoices(checkpoints=("tiny-sd.safetensors",), detectors=("hand_yolov8n.pt",))
    config = RunConfig.model_validate(
        {
            "txt2img": {
                "model": "dreamshaper_8",
                "hires_enabled": True,
                "hires_upscaler_name": "R-ESRGAN 4x+",
            },
            "upscale": {"enabled": True, "upscale_model": "4x-UltraSharp"},
            "adetailer": {"enabled": True},
        }
    )
    found = {m.path: m for m in missing_models(config, choices)}
    assert set(found) == {
        "txt2img.model",
        "txt2img.hires_upscaler_name",
        "upscale.upscale_model",
        "adetailer.units.0.adetailer_model",
    }
    assert str(found["adetailer.units.0.adetailer_model"]) == (
        "ADetailer detector: 'face_yolov8n.pt' is not installed; closest installed: hand_yolov8n.pt"
    )
    assert missing_models(RunConfig.model_validate({"txt2img": {"model": "tiny-sd"}}), DEMO_CHOICES) == []


def test_missing_models_knows_the_vae_the_refiner_and_the_img2img_model() -> None:
    choices = ModelChoices(checkpoints=("sd_xl_base_1.0.safetensors",), vaes=("sdxl_vae.safetensors",))
    config = RunConfig.model_validate(
        {
            "txt2img": {
                "model": "sd_xl_base_1.0",
                "vae": "sdxl-vae-fp16-fix",
                "refiner_enabled": True,
                "refiner_model_name": "sd_xl_refiner_1.0",
            },
            "img2img": {"enabled": True, "model": "juggernautXL"},
        }
    )
    found = {m.path: m for m in missing_models(config, choices)}
    assert set(found) == {"txt2img.vae", "txt2img.refiner_model_name", "img2img.model"}
    assert found["txt2img.vae"].closest == ("sdxl_vae.safetensors",)
    assert found["txt2img.vae"].installed == ("sdxl_vae.safetensors",)
    assert found["txt2img.refiner_model_name"].label == "Refiner model"
    installed = config.model_copy(update={"txt2img": config.txt2img.model_copy(update={"vae": "sdxl_vae"})})
    assert "txt2img.vae" not in {m.path for m in missing_models(installed, choices)}


def test_installed_names_match_with_or_without_the_extension() -> None:
    assert is_installed("TINY-SD", ("tiny-sd.safetensors",))
    assert is_installed("tiny-sd.ckpt", ("tiny-sd.safetensors",))
    assert not is_installed("tiny-sdxl", ("tiny-sd.safetensors",))
    assert closest_names("dreamshaper_8", ("dreamshaper_7.safetensors", "juggernaut.ckpt")) == (
        "dreamshaper_7.safetensors",
    )


def test_validation_as_you_type_knows_what_is_installed(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    combo = window.cards["txt2img"].checkpoint  # type: ignore[attr-defined]
    combo.setEditText("dreamshaper_8")
    line = window.cards["txt2img"].error_label
    assert line.isVisibleTo(window)
    assert line.toolTip() == (
        "Model (txt2img): 'dreamshaper_8' is not installed; "
        "installed: tiny-sd.safetensors, demo-tiny-sdxl, demo-tiny-sdxl-refiner"
    )
    assert window.generate_button.isEnabled(), "a warning: the engine has the last word"
    combo.setEditText("tiny-sd")  # the installed file's name without its extension
    assert not line.isVisibleTo(window)


def test_uninstalled_detectors_are_not_offered_nor_the_default(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    choices = ModelChoices(checkpoints=("tiny-sd.safetensors",), detectors=("hand_yolov8n.pt",))
    window = make_main_window(choices=choices)
    detector = window.findChild(QComboBox, "adetailer.units.0.adetailer_model")
    assert isinstance(detector, QComboBox)
    assert [detector.itemText(i) for i in range(detector.count())] == ["hand_yolov8n.pt", "None"]
    assert window.model.get("adetailer.units.0.adetailer_model") == "hand_yolov8n.pt"
