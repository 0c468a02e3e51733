"""MaskDocument: the input image, the mask painted over it, its coloured overlay and its undo steps.

The mask is a Format_Grayscale8 QImage of the image's size (0 = keep, 255 = inpaint), written in
place through a numpy view. Every edit touches only the pixels it changes: a stroke segment
paints its capsule's bounding box, refreshes the overlay (a premultiplied ARGB32 image the canvas
draws over the picture) in the same box and announces that box with :attr:`region_changed`, so
the canvas repaints just there. Whole-mask edits (invert, clear, replace) announce the full rect.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QRect, QSize, Signal
from PySide6.QtGui import QColor, QImage

from .mask_io import blank_buffers, qimage_view
from .strokes import Bounds, Brush, Mask, paint_segment, segment_bounds
from .undo import DEFAULT_BUDGET_BYTES, TileUndoStack

#: The overlay's colour where the mask is 255: a saturated magenta-red that reads on light and
#: dark pictures alike and is unlike skin, sky and foliage; drawn at OVERLAY_OPACITY.
OVERLAY_COLOR = QColor(235, 20, 110)
OVERLAY_OPACITY = 0.55
_OVERLAY_BAND_PIXELS = 128 * 1024


def overlay_lut(color: QColor = OVERLAY_COLOR, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """Premultiplied ARGB32 overlay pixel for each mask value 0..255."""
    alpha = np.rint(np.arange(256, dtype=np.float64) * opacity).astype(np.uint32)
    channels = [
        np.rint(c * alpha / 255.0).astype(np.uint32) for c in (color.red(), color.green(), color.blue())
    ]
    return (alpha << 24) | (channels[0] << 16) | (channels[1] << 8) | channels[2]


def _qrect(bounds: Bounds) -> QRect:
    return QRect(bounds.x0, bounds.y0, bounds.x1 - bounds.x0, bounds.y1 - bounds.y0)


class MaskDocument(QObject):
    """One image and its mask. With no image the mask is 0 x 0 and edits do nothing."""

    #: Image-space rect whose mask (and overlay) changed.
    region_changed = Signal(QRect)
    #: Any change of the mask's pixels (a stroke segment, undo, invert, ...); unthrottled.
    mask_edited = Signal()
    #: A new image (and so a new mask, possibly of another size).
    replaced = Signal()
    #: Undo or redo became possible or impossible, or their labels changed.
    undo_changed = Signal()

    def __init__(
        self, parent: QObject | None = None, *, undo_budget_bytes: int = DEFAULT_BUDGET_BYTES
    ) -> None:
        super().__init__(parent)
        self.undo_stack = TileUndoStack(budget_bytes=undo_budget_bytes)
        self.brush = Brush(48.0, 1.0)
        self._lut = overlay_lut()
        self._image = QImage()
        self._alpha_mask: Mask | None = None
        self._last_point: tuple[float, float] | None = None
        self._allocate(0, 0)

    def _allocate(self, width: int, height: int, buffers: tuple[QImage, QImage] | None = None) -> None:
        if buffers is None or buffers[0].size() != QSize(width, height):
            buffers = blank_buffers(width, height)
        self._mask_image, self._overlay_image = buffers
        if width and height:
            self._mask = qimage_view(self._mask_image)
            self._overlay = qimage_view(self._overlay_image)
        else:
            self._mask = np.zeros((0, 0), dtype=np.uint8)
            self._overlay = np.zeros((0, 0), dtype=np.uint32)

    # -- what is shown ------------------------------------------------------------------------

    @property
    def image(self) -> QImage:
        """The picture being masked (do not modify it)."""
        return self._image

    @property
    def overlay(self) -> QImage:
        """The coloured mask overlay, image-sized (the canvas draws it; do not keep or modify it)."""
        return self._overlay_image

    @property
    def mask_array(self) -> Mask:
        """The live mask pixels (height, width); read them, never write them."""
        return self._mask

    @property
    def width(self) -> int:
        return int(self._mask.shape[1])

    @property
    def height(self) -> int:
        return int(self._mask.shape[0])

    @property
    def has_image(self) -> bool:
        return not self._image.isNull()

    @property
    def alpha_mask(self) -> Mask | None:
        """The mask the image's transparency gives (not fully opaque -> 255), or None."""
        return self._alpha_mask

    def mask(self) -> QImage:
        """A copy of the mask: Format_Grayscale8, the image's size."""
        return self._mask_image.copy()

    def is_empty(self) -> bool:
        return not bool(self._mask.any())

    # -- replacing ----------------------------------------------------------------------------

    def set_image(
        self,
        image: QImage,
        alpha_mask: Mask | None = None,
        *,
        keep_mask: bool = False,
        buffers: tuple[QImage, QImage] | None = None,
    ) -> None:
        """Show ``image`` (RGB32 or ARGB32 premultiplied); a fresh empty mask unless ``keep_mask``
        and the size is unchanged. Undo history is cleared when the mask is replaced.
        ``buffers``: :func:`~.mask_io.blank_buffers` of the image's size, made ahead (on a worker)."""
        self.cancel_stroke()
        same_size = image.width() == self.width and image.height() == self.height
        self._image = image
        self._alpha_mask = alpha_mask
        if not (keep_mask and same_size):
            self._allocate(image.width(), image.height(), buffers)
            self.undo_stack.clear()
            self.undo_changed.emit()
        self.replaced.emit()
        self.mask_edited.emit()

    def replace_mask(self, mask: Mask, label: str) -> bool:
        """Make ``mask`` (the image's shape) the mask, as one undo step; False if nothing changed."""
        if mask.shape != self._mask.shape:
            raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {self.width}x{self.height}")
        return self._whole_mask_edit(label, lambda m: np.copyto(m, mask))

    def clear(self) -> bool:
        return self._whole_mask_edit("clear", lambda m: m.fill(0))

    def invert(self) -> None:
        if not self.has_image:
            return
        self.cancel_stroke()
        np.subtract(255, self._mask, out=self._mask)
        self.undo_stack.push_invert()
        self._changed(Bounds(0, 0, self.width, self.height))
        self.undo_changed.emit()

    def _whole_mask_edit(self, label: str, edit: Callable[[Mask], object]) -> bool:
        if not self.has_image:
            return False
        self.cancel_stroke()
        before = self._mask.copy()
        edit(self._mask)
        if not self.undo_stack.push_change(before, self._mask, label):
            return False
        self._changed(Bounds(0, 0, self.width, self.height))
        self.undo_changed.emit()
        return True

    # -- strokes ------------------------------------------------------------------------------

    @property
    def stroking(self) -> bool:
        return self._last_point is not None

    def begin_stroke(self, point: tuple[float, float]) -> None:
        """Start a stroke at ``point`` (image coordinates) and paint its first dab there."""
        if not self.has_image:
            return
        self.cancel_stroke()
        self.undo_stack.begin_stroke()
        self._last_point = point
        self._paint(point, point)

    def stroke_to(self, point: tuple[float, float]) -> None:
        """Continue the stroke to ``point``: the whole segment from the last point is painted."""
        if self._last_point is None:
            return
        start, self._last_point = self._last_point, point
        self._paint(start, point)

    def end_stroke(self) -> bool:
        """Finish the stroke as one undo step; False when it changed nothing."""
        if self._last_point is None:
            return False
        self._last_point = None
        pushed = self.undo_stack.end_stroke(self._mask, "erase" if self.brush.erase else "brush stroke")
        if pushed:
            self.undo_changed.emit()
        return pushed

    def cancel_stroke(self) -> None:
        """End a stroke in progress (what it painted stays, as an undo step)."""
        self.end_stroke()

    def _paint(self, a: tuple[float, float], b: tuple[float, float]) -> None:
        bounds = segment_bounds(a, b, self.brush.radius, (self.height, self.width))
        if bounds is None:
            return
        self.undo_stack.before_change(self._mask, bounds)
        paint_segment(self._mask, a, b, self.brush, bounds)
        self._changed(bounds)

    # -- undo ---------------------------------------------------------------------------------

    def undo(self) -> None:
        self.cancel_stroke()
        self._after_history(self.undo_stack.undo(self._mask))

    def redo(self) -> None:
        self.cancel_stroke()
        self._after_history(self.undo_stack.redo(self._mask))

    def _after_history(self, bounds: Bounds | None) -> None:
        if bounds is not None:
            self._changed(bounds)
        self.undo_changed.emit()

    def _changed(self, bounds: Bounds) -> None:
        self._refresh_overlay(bounds)
        self.region_changed.emit(_qrect(bounds))
        self.mask_edited.emit()

    def _refresh_overlay(self, bounds: Bounds) -> None:
        # np.take into the overlay in bands of rows that stay in the CPU cache: about 4x faster
        # than one fancy-indexed pass over a whole 2048² mask (invert, undo of a clear).
        columns = slice(bounds.x0, bounds.x1)
        rows_per_band = max(1, _OVERLAY_BAND_PIXELS // (bounds.x1 - bounds.x0))
        for y0 in range(bounds.y0, bounds.y1, rows_per_band):
            rows = slice(y0, min(bounds.y1, y0 + rows_per_band))
            np.take(self._lut, self._mask[rows, columns], out=self._overlay[rows, columns], mode="clip")
