"""The img2img card's "Size and inpaint" section over a real ConfigModel: its knobs write the
img2img keys, and the mask editor it opens writes ``img2img.mask_path`` and ``outpaint``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QThread, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QComboBox, QSpinBox

from stablenew_qt.core.config import RunConfig
from stablenew_qt.gui.config_model import ConfigModel
from stablenew_qt.gui.fields import Binder
from stablenew_qt.gui.inpaint_section import InpaintSection
from stablenew_qt.gui.mask_editor.mask_io import qimage_view


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (80, 64), (200, 120, 40)).save(path)
    return path


@pytest.fixture
def section(qtbot: Any, tmp_path: Path, source: Path) -> Iterator[InpaintSection]:
    config = RunConfig.from_dict(
        {"input_image_path": str(source), "txt2img": {"enabled": False}, "img2img": {"enabled": True}}
    )
    model = ConfigModel(config)
    made = InpaintSection(model, Binder(model), masks=tmp_path / "masks")
    qtbot.addWidget(made)
    made.expand(animate=False)
    made.show()
    yield made
    made.shutdown()
    assert not [t for t in made.findChildren(QThread) if t.isRunning()]
    assert not [t for t in made.findChildren(QTimer) if t.isActive()]


def _painted(width: int, height: int, box: tuple[int, int, int, int]) -> QImage:
    mask = np.zeros((height, width), np.uint8)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = 255
    image = QImage(mask.data, width, height, width, QImage.Format.Format_Grayscale8)
    return image.copy()


def test_the_knobs_write_the_img2img_keys(section: InpaintSection) -> None:
    model = section.model
    width = next(box for box in section.findChildren(QSpinBox) if box.maximum() == 4096)
    width.setValue(512)
    assert model.get("img2img.width") == 512
    combos = section.findChildren(QComboBox)
    content = next(box for box in combos if box.findText("latent nothing") >= 0)
    content.setCurrentText("latent nothing")
    resize = next(box for box in combos if box.findText("crop and resize") >= 0)
    resize.setCurrentText("crop and resize")
    assert model.config.img2img.masked_content == "latent nothing"
    assert model.config.img2img.resize_mode == "crop and resize"
    assert model.error is None


def test_paint_without_an_input_image_says_what_to_do(section: InpaintSection) -> None:
    section.model.set("input_image_path", None)
    section.paint_button.click()
    assert section.dialog is None
    assert "input image" in section.mask_label.text()


def test_a_painted_mask_becomes_a_snapshot_file_and_the_mask_path(
    section: InpaintSection, qtbot: Any, tmp_path: Path
) -> None:
    assert section.mask_label.text().startswith("No mask")
    section.paint_button.click()
    dialog = section.dialog
    assert dialog is not None
    editor = dialog.editor
    qtbot.waitUntil(lambda: editor.has_image, timeout=5000)
    editor.set_mask(_painted(80, 64, (8, 8, 40, 32)))
    editor.set_outpaint((0, 16, 0, 0))
    dialog.reject()  # closing the window (Esc or Close) keeps what was painted
    qtbot.waitUntil(lambda: section.dialog is None, timeout=5000)
    path = Path(section.model.get("img2img.mask_path"))
    assert path.parent == tmp_path / "masks" and path.is_file()
    with Image.open(path) as saved:
        mask = np.asarray(saved.convert("L"))
    assert mask.shape == (64, 80) and mask[8:32, 8:40].min() == 255 and mask.sum() == 255 * 32 * 24
    config = section.model.config.img2img
    assert config.outpaint.right == 16 and config.inpainting
    assert path.name in section.mask_label.text() and "right 16" in section.mask_label.text()

    section.paint_button.click()  # opening again shows the saved mask
    editor = section.dialog.editor  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: not editor.is_empty, timeout=5000)
    assert np.array_equal(qimage_view(editor.mask(), writable=False) > 0, mask > 0)
    assert editor.outpaint() == (0, 16, 0, 0)
    section.shutdown()
    assert section.dialog is None

    section.clear_button.click()
    assert section.model.get("img2img.mask_path") is None
    assert not section.model.config.img2img.inpainting
    assert section.mask_label.text().startswith("No mask")
