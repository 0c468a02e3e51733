"""ConfigModel: edits write into a RunConfig, validated as they happen."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from pytestqt.qtbot import QtBot

from stablenew_qt.core.config import RunConfig
from stablenew_qt.gui.config_model import ConfigModel, section_of


def test_a_valid_edit_updates_the_config(qtbot: QtBot) -> None:
    model = ConfigModel()
    with qtbot.waitSignal(model.changed) as blocker:
        model.set("txt2img.steps", 12)
    assert blocker.args == ["txt2img.steps"]
    assert model.config.txt2img.steps == 12
    assert model.error is None


def test_a_bad_value_stands_as_an_error_until_fixed(qtbot: QtBot) -> None:
    model = ConfigModel()
    with qtbot.waitSignal(model.validityChanged):
        model.set("txt2img.width", 100)
    assert model.error is not None
    assert model.error.problems[0].field == "txt2img.width"
    assert section_of(model.error.problems[0]) == "txt2img"
    assert model.config.txt2img.width == 1024  # the last valid value is kept
    with qtbot.waitSignal(model.validityChanged) as blocker:
        model.set("txt2img.width", 104)
    assert blocker.args == [None]
    assert model.config.txt2img.width == 104


def test_structural_errors_come_from_the_sequencer() -> None:
    model = ConfigModel()
    model.set("txt2img.enabled", False)
    assert model.error is not None
    assert "no stage is enabled" in str(model.error)
    model.set("upscale.enabled", True)
    assert model.error is not None
    assert section_of(model.error.problems[0]) == "input"


def test_replace_emits_the_new_config(qtbot: QtBot) -> None:
    model = ConfigModel()
    config = RunConfig.from_dict({"prompt": "a cat", "seed": 5})
    with qtbot.waitSignal(model.replaced) as blocker:
        model.replace(config)
    assert blocker.args == [config]
    assert model.get("prompt") == "a cat"


def test_a_missing_input_image_is_an_error_as_you_type(tmp_path: Path) -> None:
    model = ConfigModel()
    model.set("txt2img.enabled", False)
    model.set("upscale.enabled", True)
    model.set("input_image_path", str(tmp_path / "gone.png"))
    assert model.error is not None and section_of(model.error.problems[0]) == "input"
    assert "it does not exist; choose an existing image file" in str(model.error)
    for odd in ("~nosuchuser-stablenew/x.png", "a" * 5000, str(tmp_path)):  # never an exception
        model.set("input_image_path", odd)
        assert model.error is not None and section_of(model.error.problems[0]) == "input"
        assert len(str(model.error)) < 400
    Image.new("RGB", (8, 8)).save(tmp_path / "gone.png")
    model.set("input_image_path", str(tmp_path / "gone.png") + " ")
    model.set("input_image_path", str(tmp_path / "gone.png"))
    assert model.error is None
    model.set("txt2img.enabled", True)  # txt2img first: the input image is not read at all
    model.set("input_image_path", str(tmp_path / "other.png"))
    assert model.error is None
