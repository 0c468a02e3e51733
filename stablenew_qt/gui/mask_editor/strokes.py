"""Brush maths on a mask held as a 2-D ``uint8`` array (0 = keep, 255 = inpaint).

A stroke is a polyline of image-space points (floats; pixel ``(x, y)`` covers ``[x, x+1) x [y, y+1)``
and is sampled at its centre ``(x + 0.5, y + 0.5)``). Each segment between two consecutive points is
painted as the *capsule* it sweeps: a pixel's coverage depends on the distance from its centre to
the segment, so however far apart two mouse events are, the stroke has no gaps and no beads (the
same as stamping infinitely many dabs along the segment). Coverage combines with the mask by
maximum (brush) or by minimum with its complement (eraser), so overlapping segments of one stroke
never add up, and a stroke's result does not depend on how the mouse events were spaced.

The brush profile, for a brush of diameter ``size`` (radius ``r``) and ``hardness`` h in [0, 1]:

- hardness 1: a hard disc, coverage 255 where ``distance <= r``, else 0;
- otherwise 255 up to ``h * r``, then falling linearly (a two-stop radial gradient) to 0 at ``r``,
  rounded to the nearest 8-bit value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

#: Brush diameters the editor offers, in image pixels.
MIN_BRUSH_SIZE = 1
MAX_BRUSH_SIZE = 512

Mask = NDArray[np.uint8]
#: Pixels computed at once (float32 temporaries of 128 KiB each).
_BAND_PIXELS = 32 * 1024


class Bounds(NamedTuple):
    """A half-open pixel rectangle ``[x0, x1) x [y0, y1)`` inside the mask."""

    x0: int
    y0: int
    x1: int
    y1: int

    def union(self, other: Bounds | None) -> Bounds:
        if other is None:
            return self
        return Bounds(
            min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1)
        )


@dataclass(frozen=True)
class Brush:
    """``size``: diameter in image pixels; ``hardness``: 0 (soft cone) to 1 (hard disc)."""

    size: float
    hardness: float = 1.0
    erase: bool = False

    def __post_init__(self) -> None:
        if not MIN_BRUSH_SIZE <= self.size <= MAX_BRUSH_SIZE:
            raise ValueError(f"brush size must be {MIN_BRUSH_SIZE}..{MAX_BRUSH_SIZE} px, got {self.size}")
        if not 0.0 <= self.hardness <= 1.0:
            raise ValueError(f"brush hardness must be 0..1, got {self.hardness}")

    @property
    def radius(self) -> float:
        return self.size / 2.0


def segment_bounds(
    a: tuple[float, float], b: tuple[float, float], radius: float, shape: tuple[int, int]
) -> Bounds | None:
    """The pixels whose centres can lie within ``radius`` of segment a-b, clipped to ``shape`` (h, w)."""
    height, width = shape
    x0 = max(0, int(np.floor(min(a[0], b[0]) - radius - 0.5)))
    y0 = max(0, int(np.floor(min(a[1], b[1]) - radius - 0.5)))
    x1 = min(width, int(np.ceil(max(a[0], b[0]) + radius + 0.5)) + 1)
    y1 = min(height, int(np.ceil(max(a[1], b[1]) + radius + 0.5)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return Bounds(x0, y0, x1, y1)


def segment_distance(a: tuple[float, float], b: tuple[float, float], bounds: Bounds) -> NDArray[np.float32]:
    """Distance from each pixel centre in ``bounds`` to the segment a-b (a point when a == b)."""
    # Written with two (h, w) temporaries and in-place passes: this runs on every mouse move.
    xs = (np.arange(bounds.x0, bounds.x1, dtype=np.float32) + np.float32(0.5 - a[0]))[None, :]
    ys = (np.arange(bounds.y0, bounds.y1, dtype=np.float32) + np.float32(0.5 - a[1]))[:, None]
    dx, dy = np.float32(b[0] - a[0]), np.float32(b[1] - a[1])
    length2 = dx * dx + dy * dy
    if length2 == 0:
        squared: NDArray[np.float32] = xs * xs + ys * ys
    else:
        # t: where the pixel centre projects onto the segment, clamped to its ends; the distance
        # is then from the pixel centre to a + t (b - a).
        t = xs * (dx / length2) + ys * (dy / length2)
        np.clip(t, 0.0, 1.0, out=t)
        squared = t * -dx
        squared += xs
        np.multiply(squared, squared, out=squared)
        t *= -dy
        t += ys
        np.multiply(t, t, out=t)
        squared += t
    return np.sqrt(squared, out=squared)


def coverage(distance: NDArray[np.float32], brush: Brush) -> Mask:
    """The brush profile at ``distance`` from the stroke's centre line, as 0..255 (``distance`` is
    overwritten)."""
    r = np.float32(brush.radius)
    if brush.hardness >= 1.0:
        hard: Mask = np.where(distance <= r, np.uint8(255), np.uint8(0))
        return hard
    falloff = r * np.float32(1.0 - brush.hardness)
    value = np.subtract(r, distance, out=distance)
    value *= np.float32(255.0) / falloff
    np.clip(value, 0.0, 255.0, out=value)
    soft: Mask = np.rint(value, out=value).astype(np.uint8)
    return soft


def paint_segment(
    mask: Mask, a: tuple[float, float], b: tuple[float, float], brush: Brush, bounds: Bounds | None = None
) -> Bounds | None:
    """Paint (or erase) the capsule a-b into ``mask`` in place; the bounds it may have changed.

    ``bounds`` is :func:`segment_bounds` of the same segment when the caller has it already.
    """
    if bounds is None:
        bounds = segment_bounds(a, b, brush.radius, (mask.shape[0], mask.shape[1]))
    if bounds is None:
        return None
    # Bands of rows small enough for the temporaries to stay in the CPU cache: a 512 px brush
    # is several times faster this way than in one pass over its whole box.
    rows_per_band = max(1, _BAND_PIXELS // (bounds.x1 - bounds.x0))
    for y0 in range(bounds.y0, bounds.y1, rows_per_band):
        band = Bounds(bounds.x0, y0, bounds.x1, min(bounds.y1, y0 + rows_per_band))
        cover = coverage(segment_distance(a, b, band), brush)
        region = mask[band.y0 : band.y1, band.x0 : band.x1]
        if brush.erase:
            np.minimum(region, 255 - cover, out=region)
        else:
            np.maximum(region, cover, out=region)
    return bounds
