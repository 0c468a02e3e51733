"""Dropping and restoring images (issue 17, items 3, 4, 9, 14): a PNG dropped on the prompt box
restores its settings (never types its URL), a picture without settings is offered as the input
image, and models the settings name that are not installed are listed with the closest names."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtWidgets import QComboBox, QMessageBox
from pytestqt.qtbot import QtBot

from stablenew_qt.core.config import RunConfig
from stablenew_qt.gui.installed import closest_names, is_installed, missing_models
from stablenew_qt.gui.services import ModelChoices
from stablenew_qt.gui.testing import DEMO_CHOICES, MakeMainWindow, drop_files

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


def test_a_png_dropped_on_the_prompt_box_restores_its_settings(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    png = a1111_png(tmp_path / "a1111_fox.png")
    drop_files(window.prompt_panel.prompt, png)
    assert window.model.get("prompt") == "a red fox in the snow"
    assert "file:" not in window.prompt_panel.prompt.toPlainText()
    assert window.model.get("txt2img.width") == 640 and window.model.get("txt2img.height") == 448
    assert window.findChild(QMessageBox, "dialog.missing_models") is None, "tiny-sd is installed"
    drop_files(window.prompt_panel.negative.viewport(), png)  # the negative box too
    assert window.model.get("negative_prompt") == "blurry"


def test_a_png_without_settings_is_offered_as_the_input_image(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(photo)
    drop_files(window.prompt_panel.prompt, photo)
    box = _dialog(window, "dialog.use_as_input")
    assert "no generation settings in this image" in box.text()
    assert window.prompt_panel.prompt.toPlainText() == window.model.get("prompt")  # nothing typed
    box.button(QMessageBox.StandardButton.Yes).click()
    assert window.model.get("input_image_path") == str(photo)


def test_a_restored_png_whose_model_is_missing_says_so_with_the_closest_names(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    assert window.restore_from_image(a1111_png(tmp_path / "dream.png", model="tiny-sdxl"))
    box = _dialog(window, "dialog.missing_models")
    assert "Model (txt2img): 'tiny-sdxl' is not installed; closest installed: " in box.text()
    assert "demo-tiny-sdxl" in box.text()
    assert window.model.get("txt2img.model") == "tiny-sdxl", "the settings are restored all the same"


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
