"""The pre-flight's per-stage image sizes follow img2img's processing size and outpaint canvas
(``img2img_output_size``), so the disk estimate is that of the images the run really writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.preflight import planned_image_sizes
from stablenew_qt.core.sequencer import StageName, StageSequencer
from stablenew_qt.core.sizes import upscaled_size


def _sizes(image: Path, **img2img: Any) -> list[tuple[StageName, tuple[int, int]]]:
    config = RunConfig.from_dict(
        {
            "input_image_path": str(image),
            "txt2img": {"enabled": False},
            "img2img": {"enabled": True, **img2img},
            "upscale": {"enabled": True, "upscale_factor": 2.0},
        }
    )
    plan = StageSequencer().build_execution_plan(config)
    return planned_image_sizes(plan, config, (75, 69))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (75, 69)).save(path)
    return path


@pytest.mark.parametrize(
    ("img2img", "size"),
    [
        ({}, (72, 64)),  # the input's sides floored to multiples of 8
        ({"width": 64, "height": 96}, (64, 96)),
        ({"width": 64, "height": 96, "resize_mode": "latent upscale"}, (64, 96)),
        ({"outpaint": {"left": 16, "top": 8}}, (88, 72)),  # (75 + 16, 69 + 8) floored
        ({"outpaint": {"left": 16}, "inpaint_area": "only masked", "width": 64, "height": 64}, (91, 69)),
        ({"width": 128, "height": 64, "inpaint_area": "only masked"}, (128, 64)),  # no mask: whole
    ],
)
def test_img2img_hands_on_its_output_size(
    image: Path, img2img: dict[str, Any], size: tuple[int, int]
) -> None:
    sizes = _sizes(image, **img2img)
    assert sizes == [(StageName.IMG2IMG, size), (StageName.UPSCALE, upscaled_size(*size, 2.0))]
