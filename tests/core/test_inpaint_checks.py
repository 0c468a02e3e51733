"""Inpaint settings refused before any model loads: the field named, and what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError, ConfigProblem
from stablenew_qt.core.inpaint_checks import check_inpaint_pixels
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.preflight import preflight
from stablenew_qt.core.sequencer import StageSequencer


def _inpaint(input_image: Path | None, **img2img: Any) -> RunConfig:
    data: dict[str, Any] = {
        "txt2img": {"enabled": False},
        "img2img": {"enabled": True, **img2img},
    }
    if input_image is not None:
        data["input_image_path"] = str(input_image)
    return RunConfig.from_dict(data)


def _mask(
    tmp_path: Path, size: tuple[int, int] = (80, 64), box: tuple[int, ...] | None = (10, 10, 30, 30)
) -> Path:
    mask = Image.new("L", size)
    if box is not None:
        mask.paste(255, box)
    path = tmp_path / "mask.png"
    mask.save(path)
    return path


def _problems(config: RunConfig) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        StageSequencer().build_execution_plan(config)
    return caught.value.problems


def test_a_good_mask_plans_and_passes_every_check(tmp_path: Path, input_image: Path) -> None:
    config = _inpaint(input_image, mask_path=str(_mask(tmp_path)))
    plan = StageSequencer().build_execution_plan(config)
    assert plan.input_image_path == str(input_image) and plan.warnings == ()
    check_inpaint_pixels(config)
    preflight(OutputSettings(tmp_path / "out"), plan, config)


def test_a_mask_of_another_size_is_accepted_and_resized_later(tmp_path: Path, input_image: Path) -> None:
    config = _inpaint(input_image, mask_path=str(_mask(tmp_path, size=(40, 32), box=(1, 1, 5, 5))))
    StageSequencer().build_execution_plan(config)
    check_inpaint_pixels(config)


def test_a_mask_on_txt2img_output_is_refused(tmp_path: Path) -> None:
    config = RunConfig.from_dict({"img2img": {"enabled": True, "mask_path": str(_mask(tmp_path))}})
    (problem,) = _problems(config)
    assert problem.field == "img2img.mask_path"
    assert "turn txt2img off and set input_image_path" in problem.message


def test_a_mask_without_an_input_image_asks_for_one(tmp_path: Path) -> None:
    (problem,) = _problems(_inpaint(None, mask_path=str(_mask(tmp_path))))
    assert problem.field == "input_image_path" and "needs an input image" in problem.message


def test_outpaint_without_an_image_or_after_txt2img_is_refused() -> None:
    (problem,) = _problems(_inpaint(None, outpaint={"left": 64}))
    assert problem.field == "input_image_path"
    config = RunConfig.from_dict({"img2img": {"enabled": True, "outpaint": {"top": 8}}})
    (problem,) = _problems(config)
    assert problem.field == "img2img.outpaint"


@pytest.mark.parametrize(
    ("write", "words"),
    [
        (None, "does not exist"),
        (b"not an image", "not a readable image"),
    ],
)
def test_an_unreadable_mask_file_names_the_field(
    tmp_path: Path, input_image: Path, write: bytes | None, words: str
) -> None:
    path = tmp_path / "mask.png"
    if write is not None:
        path.write_bytes(write)
    with pytest.raises(ConfigError) as caught:
        StageSequencer().build_execution_plan(_inpaint(input_image, mask_path=str(path)))
    (problem,) = caught.value.problems
    assert problem.field == "img2img.mask_path" and "mask.png" in problem.message
    assert words in problem.message.lower()


def test_an_empty_mask_is_nothing_to_inpaint(tmp_path: Path, input_image: Path) -> None:
    config = _inpaint(input_image, mask_path=str(_mask(tmp_path, box=None)))
    StageSequencer().build_execution_plan(config)  # the header is fine ...
    with pytest.raises(ConfigError, match="all black, so there is nothing to inpaint") as caught:
        preflight(OutputSettings(tmp_path / "out"), StageSequencer().build_execution_plan(config), config)
    assert caught.value.problems[0].field == "img2img.mask_path"
    assert not (tmp_path / "out").exists()


def test_an_all_white_mask_with_not_masked_is_nothing_to_inpaint(tmp_path: Path, input_image: Path) -> None:
    path = _mask(tmp_path, box=(0, 0, 80, 64))
    check_inpaint_pixels(_inpaint(input_image, mask_path=str(path)))
    with pytest.raises(ConfigError, match="all white"):
        check_inpaint_pixels(_inpaint(input_image, mask_path=str(path), mask_mode="inpaint not masked"))


def test_mask_from_alpha_needs_a_transparent_pixel(tmp_path: Path, input_image: Path) -> None:
    with pytest.raises(ConfigError, match="no transparent pixel") as caught:
        check_inpaint_pixels(_inpaint(input_image, mask_from_alpha=True))
    assert caught.value.problems[0].field == "img2img.mask_from_alpha"
    rgba = Image.new("RGBA", (80, 64), (10, 20, 30, 255))
    alpha = np.full((64, 80), 255, np.uint8)
    alpha[5:9, 5:9] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "cut.png")
    check_inpaint_pixels(_inpaint(tmp_path / "cut.png", mask_from_alpha=True))


def test_mask_settings_with_img2img_off_are_a_warning(tmp_path: Path) -> None:
    config = RunConfig.from_dict({"img2img": {"mask_path": str(_mask(tmp_path))}})
    plan = StageSequencer().build_execution_plan(config)
    assert plan.warnings == ("img2img.mask_path is ignored: img2img is off",)


@pytest.mark.parametrize(
    ("img2img", "field", "words"),
    [
        ({"mask_path": "m.png", "mask_from_alpha": True}, "img2img", "not both"),
        ({"outpaint": {"left": 12}}, "img2img.outpaint.left", "multiple of 8, for example 8 or 16"),
        ({"width": 500}, "img2img.width", "multiple of 8"),
        ({"resize_mode": "stretch"}, "img2img.resize_mode", "must be one of"),
        ({"masked_content": "noise"}, "img2img.masked_content", "must be one of"),
        ({"mask_blur": 65}, "img2img.mask_blur", "at most 64"),
    ],
)
def test_bad_inpaint_values_name_their_field(img2img: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict({"img2img": img2img})
    (problem,) = caught.value.problems
    assert problem.field == field and words in problem.message


def test_an_empty_mask_path_text_is_refused(input_image: Path) -> None:
    (problem,) = _problems(_inpaint(input_image, mask_path="  "))
    assert problem.field == "img2img.mask_path" and "choose a mask image file" in problem.message
