"""Brush maths of the mask editor (numpy only): the pixels a stroke sets, soft edges, the eraser,
no gaps however far apart the mouse events are."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from stablenew_qt.gui.mask_editor.strokes import Brush, paint_segment


def distance_to_segment(px: float, py: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    """Reference: the distance from a point to a segment, written out plainly."""
    (ax, ay), (bx, by) = a, b
    length2 = (bx - ax) ** 2 + (by - ay) ** 2
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / length2))
    return math.hypot(px - (ax + t * (bx - ax)), py - (ay + t * (by - ay)))


def reference_stroke(shape: tuple[int, int], points: list[tuple[float, float]], brush: Brush) -> np.ndarray:
    """Every pixel centre's coverage by the stroke, pixel by pixel (max over the segments)."""
    height, width = shape
    out = np.zeros(shape, dtype=np.uint8)
    segments = list(itertools.pairwise(points)) or [(points[0], points[0])]
    r = brush.radius
    for y in range(height):
        for x in range(width):
            d = min(distance_to_segment(x + 0.5, y + 0.5, a, b) for a, b in segments)
            if brush.hardness >= 1.0:
                out[y, x] = 255 if d <= r else 0
            else:
                out[y, x] = round(255 * max(0.0, min(1.0, (r - d) / (r * (1 - brush.hardness)))))
    return out


def stroke(shape: tuple[int, int], points: list[tuple[float, float]], brush: Brush) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for a, b in zip([points[0], *points], points, strict=False):
        paint_segment(mask, a, b, brush)
    return mask


def test_a_hard_horizontal_drag_sets_exactly_the_disc_swept_pixels() -> None:
    # Off-grid end points and a fractional radius, so no pixel centre sits exactly on the edge.
    brush = Brush(size=9.3, hardness=1.0)
    points = [(10.2, 20.3), (50.7, 20.3)]
    got = stroke((40, 64), points, brush)
    assert set(np.unique(got)) == {0, 255}
    np.testing.assert_array_equal(got, reference_stroke((40, 64), points, brush))
    # The capsule: rows within the radius across the middle, rounded ends beyond x1 and x2.
    assert got[20, 30] == 255 and got[20 - 5, 30] == 0
    assert got[20, 6] == 255 and got[20, 5] == 0  # 4.70 px from the start point: outside r = 4.65


def test_a_soft_brush_falls_off_radially_from_full_to_nothing() -> None:
    brush = Brush(size=30, hardness=0.25)
    centre = (32.0, 32.0)  # a pixel corner: the four middle pixels are equally far from it
    got = stroke((64, 64), [centre], brush)
    reference = reference_stroke((64, 64), [centre], brush)
    assert np.abs(got.astype(int) - reference.astype(int)).max() <= 1  # float32 vs float64 rounding
    row = got[31, 31:]  # from the centre outwards along a row
    assert row[0] == 255
    assert all(a >= b for a, b in itertools.pairwise(row)), "coverage must not rise outwards"
    assert 0 < row[10] < 255, "the edge between hardness*r and r is soft"
    assert row[16] == 0  # beyond the radius
    values = set(np.unique(got))
    assert len(values) > 20, "a soft brush gives many intermediate values"
    # Radial: the same distance in another direction gives the same value.
    assert got[31, 40] == got[40, 31] == got[31, 23] == got[23, 31]


def test_hardness_zero_is_a_cone() -> None:
    brush = Brush(size=20, hardness=0.0)
    got = stroke((40, 40), [(20.5, 20.5)], brush)  # the centre of pixel (20, 20)
    assert got[20, 20] == 255
    assert got[20, 25] == round(255 * (1 - 5 / 10))  # half way out: half coverage


def test_the_eraser_clears_what_the_brush_painted() -> None:
    mask = np.full((30, 60), 255, dtype=np.uint8)
    paint_segment(mask, (10.5, 15.5), (50.5, 15.5), Brush(6, 1.0, erase=True))
    assert mask[15, 30] == 0 and mask[15 - 2, 30] == 0
    assert mask[15 - 4, 30] == 255 and mask[0, 0] == 255
    soft = np.full((30, 30), 255, dtype=np.uint8)
    paint_segment(soft, (15.0, 15.0), (15.0, 15.0), Brush(20, 0.0, erase=True))
    assert soft[14, 14] < 30 and 0 < soft[14, 20] < 255 and soft[0, 0] == 255


def test_a_fast_drag_leaves_no_gaps() -> None:
    # Two mouse events 400 px apart with a 3 px brush: every pixel along the way is painted.
    mask = stroke((20, 500), [(20.5, 10.5), (420.5, 10.5)], Brush(3, 1.0))
    assert (mask[10, 20:421] == 255).all()
    diagonal = stroke((300, 300), [(10.0, 10.0), (290.0, 290.0)], Brush(2, 1.0))
    assert all(diagonal[i, i] == 255 for i in range(10, 290))


def test_the_result_does_not_depend_on_how_the_events_were_spaced() -> None:
    brush = Brush(11, 0.4)
    one = stroke((60, 120), [(5.3, 30.1), (110.8, 30.1)], brush)
    many = stroke((60, 120), [(5.3 + 10.55 * i, 30.1) for i in range(11)], brush)
    np.testing.assert_array_equal(one, many)


def test_painting_outside_the_mask_is_clipped_and_says_so() -> None:
    mask = np.zeros((10, 10), dtype=np.uint8)
    assert paint_segment(mask, (-50.0, -50.0), (-40.0, -40.0), Brush(4)) is None
    bounds = paint_segment(mask, (-3.0, 5.0), (3.0, 5.0), Brush(4))
    assert bounds is not None and bounds.x0 == 0 and mask[5, 0] == 255


@pytest.mark.parametrize(("size", "hardness"), [(0.5, 1.0), (513, 1.0), (10, -0.1), (10, 1.5)])
def test_a_brush_out_of_range_is_refused(size: float, hardness: float) -> None:
    with pytest.raises(ValueError, match="brush"):
        Brush(size, hardness)
