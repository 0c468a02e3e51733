"""The refiner/hires checkpoint family is checked as the user types (issue 17), off the GUI thread,
from real safetensors headers; a stale answer never shows."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pytestqt.qtbot import QtBot
from safetensors.numpy import save_file

from stablenew_qt.app import check_families, list_models
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigProblem
from stablenew_qt.gui.family_check import FamilyCheck
from stablenew_qt.gui.testing import MakeMainWindow

UNET_CONV = "model.diffusion_model.input_blocks.0.0.weight"
SD1_TE = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
XL_TE1 = "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"
XL_TE2 = "conditioner.embedders.1.model.positional_embedding"
REFINER_TE = "conditioner.embedders.0.model.text_projection"
HEADERS: dict[str, dict[str, tuple[int, ...]]] = {
    "tiny15": {SD1_TE: (77, 8), UNET_CONV: (320, 4, 3, 3)},
    "tinyxl": {XL_TE1: (77, 8), XL_TE2: (77, 8), UNET_CONV: (320, 4, 3, 3)},
    "tinyrefiner": {REFINER_TE: (8, 8), UNET_CONV: (384, 4, 3, 3)},
}


def _models(root: Path, headers: Mapping[str, Mapping[str, tuple[int, ...]]] = HEADERS) -> Path:
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True, exist_ok=True)
    for name, shapes in headers.items():
        save_file(
            {k: np.zeros(s, dtype=np.float16) for k, s in shapes.items()}, str(folder / f"{name}.safetensors")
        )
    return root / "models"


def _refiner_config(base: str, refiner: str) -> RunConfig:
    config = RunConfig()
    t2i = config.txt2img.model_copy(
        update={"model": base, "refiner_enabled": True, "refiner_model_name": refiner}
    )
    return config.model_copy(update={"txt2img": t2i})


def test_the_check_reads_the_headers_like_the_engine(tmp_path: Path) -> None:
    models = _models(tmp_path)
    [problem] = check_families(models, _refiner_config("tinyxl", "tiny15"))
    assert problem.field == "txt2img.refiner_model_name" and "not an SDXL refiner" in problem.message
    [problem] = check_families(models, _refiner_config("tiny15", "tinyrefiner"))
    assert "works only after an SDXL base" in problem.message
    assert check_families(models, _refiner_config("tinyxl", "tinyrefiner")) == []
    assert check_families(models, _refiner_config("tinyxl", "not-installed")) == [], "left to the engine"


def test_the_txt2img_card_shows_a_wrong_refiner_as_the_user_picks_it(
    qtbot: QtBot, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    models = _models(tmp_path)
    window = make_main_window(choices=list_models(models), check_families=check_families)
    card = window.cards["txt2img"]
    window.model.set("txt2img.model", "tinyxl")
    window.model.set("txt2img.refiner_enabled", True)
    window.model.set("txt2img.refiner_model_name", "tiny15")
    qtbot.waitUntil(lambda: "not an SDXL refiner" in card.error_label.toolTip(), timeout=5000)
    assert card.error_label.isVisible()
    window.model.set("txt2img.refiner_model_name", "tinyrefiner")
    qtbot.waitUntil(lambda: not window.family_check.pending, timeout=5000)
    qtbot.waitUntil(lambda: "refiner" not in card.error_label.toolTip(), timeout=5000)
    assert window.family_check.problems == ()


def test_a_stale_answer_is_dropped_and_the_gui_thread_never_waits(qtbot: QtBot, tmp_path: Path) -> None:
    release = threading.Event()
    asked: list[str | None] = []

    def slow_check(_models: Path, config: RunConfig) -> Sequence[ConfigProblem]:
        asked.append(config.txt2img.refiner_model_name)
        if config.txt2img.refiner_model_name == "first":
            assert release.wait(5), "the test never released the first check"
        return [ConfigProblem("txt2img.refiner_model_name", f"about {config.txt2img.refiner_model_name}")]

    check = FamilyCheck(slow_check)
    check.request(tmp_path, _refiner_config("tinyxl", "first"))  # returns at once: the check blocks
    qtbot.waitUntil(lambda: asked == ["first"], timeout=2000)
    check.request(tmp_path, _refiner_config("tinyxl", "second"))
    check.request(tmp_path, _refiner_config("tinyxl", "second"))  # nothing changed: not asked again
    heard: list[tuple[ConfigProblem, ...]] = []
    check.problemsChanged.connect(lambda: heard.append(check.problems))
    release.set()
    qtbot.waitUntil(lambda: not check.pending, timeout=5000)
    assert asked == ["first", "second"]
    assert heard == [(ConfigProblem("txt2img.refiner_model_name", "about second"),)], (
        "the first answer was stale"
    )
    check.shutdown()


def test_a_hires_checkpoint_of_another_family_is_found_too(tmp_path: Path) -> None:
    models = _models(tmp_path)
    config = RunConfig()
    t2i = config.txt2img.model_copy(
        update={"model": "tinyxl", "hires_enabled": True, "hires_checkpoint": "tiny15"}
    )
    [problem] = check_families(models, config.model_copy(update={"txt2img": t2i}))
    assert problem.field == "txt2img.hires_checkpoint" and "same family" in problem.message
