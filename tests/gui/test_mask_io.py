"""Mask editor files: images decoded off the GUI thread, mask files read by A1111's rules
(alpha or luminance, Lanczos for another size), masks saved atomically as 8-bit greyscale PNGs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QImage

from stablenew_qt.gui.mask_editor import MaskEditor, MaskFileError, mask_io
from stablenew_qt.gui.mask_editor.mask_io import (
    qimage_view,
    read_mask_file,
    write_mask_png,
    write_mask_snapshot,
)


@pytest.fixture
def editor(qtbot: Any) -> Iterator[MaskEditor]:
    made = MaskEditor()
    qtbot.addWidget(made)
    made.resize(480, 400)
    made.show()
    yield made
    made.shutdown()
    assert not [t for t in made.findChildren(QTimer) if t.isActive()]


def mask_of(editor: MaskEditor) -> np.ndarray:
    mask = editor.mask()
    return qimage_view(mask, writable=False).copy()


def a1111_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Reference: what A1111 1.x makes of an uploaded mask file for an image of ``size``.

    Gradio hands the upload over as RGBA (``image_mode="RGBA"``), ``images.fix_image`` applies the
    EXIF orientation, ``processing.create_binary_mask`` takes the alpha channel rounded at 128
    when it is not all opaque (``mask_round`` defaults to True) and the luminance otherwise, and
    ``images.resize_image`` (mode 0, "Just resize") resizes an ``L`` image with Lanczos.
    """
    with Image.open(path) as im:
        rgba = ImageOps.exif_transpose(im).convert("RGBA")
    if rgba.getextrema()[-1] != (255, 255):
        mask = rgba.split()[-1].convert("L").point(lambda x: 255 if x > 128 else 0)
    else:
        mask = rgba.convert("L")
    return np.array(mask.resize(size, resample=Image.Resampling.LANCZOS))


def rgba_file(tmp_path: Path, name: str = "mask.png", size: tuple[int, int] = (64, 48)) -> Path:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    pixels[:, :, 3] = np.array([0, 100, 128, 129, 200, 255, 255, 30])[np.arange(size[0]) % 8]
    path = tmp_path / name
    Image.fromarray(pixels, "RGBA").save(path)
    return path


def load(qtbot: Any, editor: MaskEditor, path: Path) -> None:
    editor.load_mask(path)
    qtbot.waitUntil(editor.is_idle, timeout=5000)


def show(qtbot: Any, editor: MaskEditor, image: Path | QImage) -> None:
    with qtbot.waitSignal(editor.image_changed, timeout=5000):
        editor.set_image(image)


def grey_image(width: int, height: int) -> QImage:
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor(90, 90, 90))
    return image


# -- reading mask files ---------------------------------------------------------------------------


def test_an_rgba_mask_gives_its_alpha_rounded_at_128(editor: MaskEditor, qtbot: Any, tmp_path: Path) -> None:
    path = rgba_file(tmp_path)
    show(qtbot, editor, grey_image(64, 48))
    load(qtbot, editor, path)
    got = mask_of(editor)
    np.testing.assert_array_equal(got, a1111_mask(path, (64, 48)))
    assert list(got[0, :8]) == [0, 0, 0, 255, 255, 255, 255, 0]
    editor.undo()
    assert editor.is_empty, "loading is one undo step"


def test_an_opaque_mask_gives_its_luminance_with_grey_levels_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    colour = tmp_path / "colour.png"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), "RGB").save(colour)
    grey = tmp_path / "grey.png"
    Image.fromarray(np.arange(1200, dtype=np.uint32).reshape(30, 40).astype(np.uint8) % 251, "L").save(grey)
    opaque = tmp_path / "opaque.png"
    Image.open(colour).convert("RGBA").save(opaque)
    for path in (colour, grey, opaque):
        got = read_mask_file(path, (40, 30))
        np.testing.assert_array_equal(got, a1111_mask(path, (40, 30)))
    assert len(np.unique(read_mask_file(grey, (40, 30)))) > 200, "grey levels are not rounded"


def test_a_mask_of_another_size_is_resized_with_lanczos_as_a1111(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:40, 0:50]
    grey = tmp_path / "small.png"
    Image.fromarray(((xx * 5 + yy * 3) % 256).astype(np.uint8), "L").save(grey)
    got = read_mask_file(grey, (100, 80))
    assert got.shape == (80, 100)
    np.testing.assert_array_equal(got, a1111_mask(grey, (100, 80)))
    alpha = rgba_file(tmp_path, "alpha.png", (32, 24))
    got = read_mask_file(alpha, (96, 72))
    np.testing.assert_array_equal(got, a1111_mask(alpha, (96, 72)))
    assert len(np.unique(got)) > 2, "rounded first, then resized: Lanczos leaves soft edges"


def test_the_exif_orientation_of_a_mask_file_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("L", (40, 20), 255).save(path, exif=exif)
    assert read_mask_file(path, (20, 40)).shape == (40, 20)  # no resize needed once rotated


def test_an_in_memory_mask_follows_the_same_rule_as_a_file(
    editor: MaskEditor, qtbot: Any, tmp_path: Path
) -> None:
    path = rgba_file(tmp_path)
    show(qtbot, editor, grey_image(64, 48))
    editor.set_mask(QImage(str(path)))
    np.testing.assert_array_equal(mask_of(editor), read_mask_file(path, (64, 48)))
    colour = tmp_path / "colour.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8), "RGB").save(
        colour
    )
    editor.set_mask(QImage(str(colour)))
    np.testing.assert_array_equal(mask_of(editor), read_mask_file(colour, (64, 48)))


def test_mask_files_that_cannot_be_used_are_reported(editor: MaskEditor, qtbot: Any, tmp_path: Path) -> None:
    problems: list[str] = []
    editor.problem.connect(problems.append)
    editor.load_mask(rgba_file(tmp_path))
    assert problems == ["Choose an input image before loading a mask for it"]
    show(qtbot, editor, grey_image(64, 48))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    load(qtbot, editor, junk)
    assert problems[-1].startswith("cannot read mask junk.png")
    assert editor.is_empty and editor.status.text() == problems[-1]


# -- writing masks --------------------------------------------------------------------------------


def test_save_writes_an_8_bit_greyscale_png_that_round_trips(
    editor: MaskEditor, qtbot: Any, tmp_path: Path
) -> None:
    show(qtbot, editor, grey_image(64, 48))
    editor.set_brush(size=20, hardness=0.2)
    editor.document.begin_stroke((5.0, 5.0))
    editor.document.stroke_to((60.0, 40.0))
    editor.document.end_stroke()
    painted = mask_of(editor)
    saved: list[Path] = []
    target = tmp_path / "out" / "mask.png"
    target.parent.mkdir()
    editor.write_mask(target, saved.append)
    qtbot.waitUntil(lambda: bool(saved), timeout=5000)
    assert saved == [target]
    with Image.open(target) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "L", (64, 48))
        np.testing.assert_array_equal(np.array(im), painted)
    assert sorted(p.name for p in target.parent.iterdir()) == ["mask.png"], "no temp file left"
    editor.clear()
    load(qtbot, editor, target)
    np.testing.assert_array_equal(mask_of(editor), painted)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "mask.png"
    write_mask_png(np.full((8, 8), 7, dtype=np.uint8), target)
    before = target.read_bytes()

    def half_then_fail(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        fp.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    with pytest.raises(MaskFileError, match="No space left on device"):
        write_mask_png(np.zeros((8, 8), dtype=np.uint8), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]


def test_a_save_that_fails_is_reported(editor: MaskEditor, qtbot: Any, tmp_path: Path) -> None:
    show(qtbot, editor, grey_image(16, 16))
    problems: list[str] = []
    editor.problem.connect(problems.append)
    editor.write_mask(tmp_path / "missing" / "mask.png", lambda _path: pytest.fail("no file was written"))
    qtbot.waitUntil(editor.is_idle, timeout=5000)
    assert len(problems) == 1 and problems[0].startswith("cannot write mask")
    assert not (tmp_path / "missing").exists()


def test_a_snapshot_is_named_by_its_bytes(editor: MaskEditor, qtbot: Any, tmp_path: Path) -> None:
    show(qtbot, editor, grey_image(32, 32))
    written: list[Path] = []
    editor.invert()
    editor.write_mask_snapshot(tmp_path / "masks", written.append)
    editor.write_mask_snapshot(tmp_path / "masks", written.append)
    qtbot.waitUntil(lambda: len(written) == 2, timeout=5000)
    assert written[0] == written[1] and written[0].name.startswith("mask-")
    stamp = written[0].stat().st_mtime_ns
    editor.document.brush = editor.brush.__class__(4, 1.0, erase=True)
    editor.document.begin_stroke((10.0, 10.0))
    editor.document.end_stroke()
    editor.write_mask_snapshot(tmp_path / "masks", written.append)
    qtbot.waitUntil(lambda: len(written) == 3, timeout=5000)
    assert written[2] != written[0] and written[0].stat().st_mtime_ns == stamp
    assert write_mask_snapshot(mask_of(editor), tmp_path / "masks") == written[2]


# -- reading images -------------------------------------------------------------------------------


def test_an_image_file_is_decoded_off_the_gui_thread(editor: MaskEditor, qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 30), (200, 100, 50)).save(path, exif=exif)
    editor.set_image(path)
    assert not editor.has_image, "set_image(path) returns before the decode"
    with qtbot.waitSignal(editor.image_changed, timeout=5000):
        pass
    assert editor.image_path == path
    assert (editor.image().width(), editor.image().height()) == (30, 60), "EXIF orientation applied"
    assert (editor.mask().width(), editor.mask().height()) == (30, 60)
    assert editor.is_empty and not editor.has_alpha_mask


def test_the_images_alpha_channel_gives_a_mask(editor: MaskEditor, qtbot: Any, tmp_path: Path) -> None:
    pixels = np.full((20, 30, 4), 255, dtype=np.uint8)
    pixels[5:10, 5:15, 3] = 0  # a hole
    pixels[15, 20, 3] = 254  # barely transparent still counts
    path = tmp_path / "cutout.png"
    Image.fromarray(pixels, "RGBA").save(path)
    show(qtbot, editor, path)
    assert editor.has_alpha_mask and editor.controls.commands["from_alpha"].isEnabled()
    assert editor.is_empty, "the alpha is offered, not applied"
    assert editor.mask_from_alpha()
    expected = np.where(pixels[:, :, 3] < 255, 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(mask_of(editor), expected)


def test_an_opaque_image_has_no_alpha_mask(editor: MaskEditor, qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "opaque.png"
    Image.new("RGBA", (10, 10), (1, 2, 3, 255)).save(path)
    show(qtbot, editor, path)
    problems: list[str] = []
    editor.problem.connect(problems.append)
    assert not editor.has_alpha_mask and not editor.mask_from_alpha()
    assert problems == ["The image has no transparent pixels to make a mask from"]


def test_an_unreadable_image_clears_the_editor_and_says_why(
    editor: MaskEditor, qtbot: Any, tmp_path: Path
) -> None:
    show(qtbot, editor, grey_image(20, 20))
    junk = tmp_path / "broken.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    problems: list[str] = []
    editor.problem.connect(problems.append)
    with qtbot.waitSignal(editor.image_changed, timeout=5000):
        editor.set_image(junk)
    assert not editor.has_image and editor.image_path is None and editor.is_empty
    assert len(problems) == 1 and problems[0].startswith("cannot read broken.png")
    assert editor.status.text() == problems[0]


def test_answers_for_an_older_image_are_dropped(editor: MaskEditor, qtbot: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    Image.new("RGB", (40, 40)).save(first)
    Image.new("RGB", (24, 16)).save(second)
    editor.set_image(first)
    editor.set_image(second)
    qtbot.waitUntil(editor.is_idle, timeout=5000)
    assert editor.image_path == second and editor.mask().width() == 24
    editor.load_mask(rgba_file(tmp_path, size=(24, 16)))
    editor.set_image(grey_image(24, 16))  # a new image before the mask arrives
    qtbot.waitUntil(editor.is_idle, timeout=5000)
    assert editor.is_empty, "the mask read for the previous image was not applied"


def test_reading_functions_refuse_unsupported_depths() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        mask_io.qimage_view(QImage(4, 4, QImage.Format.Format_RGB16))
