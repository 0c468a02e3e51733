"""Undo and redo of the mask: exact bytes back, and memory bounded by tiles, not image copies."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage

from stablenew_qt.gui.mask_editor.document import MaskDocument, overlay_lut
from stablenew_qt.gui.mask_editor.mask_io import qimage_view
from stablenew_qt.gui.mask_editor.strokes import Bounds, Brush
from stablenew_qt.gui.mask_editor.undo import TILE, TileUndoStack


def document(width: int, height: int, *, budget: int | None = None) -> MaskDocument:
    doc = MaskDocument() if budget is None else MaskDocument(undo_budget_bytes=budget)
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor(90, 90, 90))
    doc.set_image(image)
    return doc


def drag(doc: MaskDocument, *points: tuple[float, float]) -> None:
    doc.begin_stroke(points[0])
    for point in points[1:]:
        doc.stroke_to(point)
    doc.end_stroke()


def test_undo_and_redo_restore_the_exact_bytes(qapp: object) -> None:
    doc = document(300, 200)
    states = [doc.mask_array.copy()]
    doc.brush = Brush(25, 0.3)
    drag(doc, (10, 10), (200, 150), (290, 20))
    states.append(doc.mask_array.copy())
    doc.brush = Brush(40, 1.0, erase=True)
    drag(doc, (100, 80), (120, 90))
    states.append(doc.mask_array.copy())
    doc.invert()
    states.append(doc.mask_array.copy())
    doc.clear()
    states.append(doc.mask_array.copy())
    assert len(doc.undo_stack) == 4
    for expected in reversed(states[:-1]):
        doc.undo()
        np.testing.assert_array_equal(doc.mask_array, expected)
    assert not doc.undo_stack.can_undo and doc.undo_stack.can_redo
    for expected in states[1:]:
        doc.redo()
        np.testing.assert_array_equal(doc.mask_array, expected)
    assert not doc.undo_stack.can_redo
    # The overlay follows the mask through undo and redo (what the user sees is what is stored).
    np.testing.assert_array_equal(qimage_view(doc.overlay, writable=False), overlay_lut()[doc.mask_array])


def test_a_new_step_drops_the_redo_branch(qapp: object) -> None:
    doc = document(100, 100)
    drag(doc, (20, 20))
    drag(doc, (70, 70))
    doc.undo()
    drag(doc, (20, 80))
    assert not doc.undo_stack.can_redo and len(doc.undo_stack) == 2


def test_a_stroke_that_changes_nothing_is_not_a_step(qapp: object) -> None:
    doc = document(100, 100)
    doc.brush = Brush(10, 1.0, erase=True)
    drag(doc, (50, 50), (60, 60))  # erasing nothing
    assert len(doc.undo_stack) == 0
    assert not doc.clear()


def test_a_step_keeps_only_the_tiles_it_changed(qapp: object) -> None:
    doc = document(2048, 2048)
    doc.brush = Brush(10, 1.0)
    drag(doc, (100.5, 100.5))  # a 10 px dab inside one 64 px tile
    assert doc.undo_stack.nbytes == TILE * TILE
    drag(doc, (0.5, 1000.5), (2047.5, 1000.5))  # across the image: one row of tiles
    assert doc.undo_stack.nbytes == TILE * TILE * (1 + 2048 // TILE)


def test_many_strokes_on_a_2048_image_stay_within_the_budget(qapp: object) -> None:
    budget = 8 * 1024 * 1024  # two full-image copies
    doc = document(2048, 2048, budget=budget)
    doc.brush = Brush(300, 0.5)
    rng = np.random.default_rng(7)
    snapshots: list[np.ndarray] = []
    for _ in range(25):
        x, y = rng.uniform(0, 2048, size=2)
        doc.brush = Brush(300, 0.5, erase=bool(rng.integers(2)))
        drag(doc, (x, y), (2048 - x, y), (x, 2048 - y))
        snapshots.append(doc.mask_array.copy())
        assert doc.undo_stack.nbytes <= budget
    held = len(doc.undo_stack)
    assert 2 <= held < 25, "the oldest steps were dropped to stay within the budget"
    for expected in reversed(snapshots[-held:-1]):  # the steps still held undo exactly
        doc.undo()
        np.testing.assert_array_equal(doc.mask_array, expected)


def test_the_latest_step_is_kept_even_when_larger_than_the_budget() -> None:
    stack = TileUndoStack(budget_bytes=1000)
    before = np.zeros((200, 200), dtype=np.uint8)
    after = np.full((200, 200), 9, dtype=np.uint8)
    assert stack.push_change(before, after, "fill")
    assert len(stack) == 1 and stack.nbytes == 200 * 200
    assert stack.push_change(after, before, "clear")
    assert len(stack) == 1  # the older one went


def test_invert_keeps_no_pixels() -> None:
    stack = TileUndoStack()
    mask = np.arange(256, dtype=np.uint8).reshape(16, 16).copy()
    original = mask.copy()
    np.subtract(255, mask, out=mask)
    stack.push_invert()
    assert stack.nbytes == 0
    stack.undo(mask)
    np.testing.assert_array_equal(mask, original)


def test_before_change_outside_a_stroke_is_a_programming_error() -> None:
    stack = TileUndoStack()
    with pytest.raises(RuntimeError, match="begin_stroke"):
        stack.before_change(np.zeros((8, 8), dtype=np.uint8), Bounds(0, 0, 4, 4))
