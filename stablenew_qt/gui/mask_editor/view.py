"""ViewTransform: where the image sits in the canvas (zoom and pan), and the mapping both ways.

``widget = image * zoom + offset``. A widget pixel ``(wx, wy)`` covers ``[wx, wx+1)``; the point a
mouse event names is taken at that pixel's centre, so at 100 % with an integer offset a click
lands on an image pixel's centre and a 1 px brush paints exactly that pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSizeF
from PySide6.QtGui import QTransform

MIN_ZOOM = 1 / 64
MAX_ZOOM = 32.0
#: One wheel notch (or Ctrl +/-) zooms by this factor.
ZOOM_STEP = 1.25
#: Free space kept around the document when it is fitted, in widget pixels.
FIT_MARGIN = 8


@dataclass
class ViewTransform:
    zoom: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0

    def to_image(self, widget_point: QPointF) -> tuple[float, float]:
        """The image point under the centre of the widget pixel at ``widget_point``."""
        x = (math.floor(widget_point.x()) + 0.5 - self.offset_x) / self.zoom
        y = (math.floor(widget_point.y()) + 0.5 - self.offset_y) / self.zoom
        return x, y

    def to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(x * self.zoom + self.offset_x, y * self.zoom + self.offset_y)

    def rect_to_widget(self, rect: QRectF) -> QRectF:
        top_left = self.to_widget(rect.x(), rect.y())
        return QRectF(top_left, QSizeF(rect.width() * self.zoom, rect.height() * self.zoom))

    def rect_to_image(self, rect: QRectF) -> QRectF:
        return QRectF(
            (rect.x() - self.offset_x) / self.zoom,
            (rect.y() - self.offset_y) / self.zoom,
            rect.width() / self.zoom,
            rect.height() / self.zoom,
        )

    def qtransform(self) -> QTransform:
        return QTransform(self.zoom, 0.0, 0.0, self.zoom, self.offset_x, self.offset_y)

    def pan(self, dx: float, dy: float) -> None:
        self.offset_x += dx
        self.offset_y += dy

    def zoom_at(self, zoom: float, anchor: QPointF) -> None:
        """Zoom to ``zoom`` (clamped) keeping the image point under ``anchor`` (widget) still."""
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        image_x = (anchor.x() - self.offset_x) / self.zoom
        image_y = (anchor.y() - self.offset_y) / self.zoom
        self.zoom = zoom
        self.offset_x = anchor.x() - image_x * zoom
        self.offset_y = anchor.y() - image_y * zoom

    def center_on(self, document: QRectF, viewport: QSizeF) -> None:
        """Put the middle of ``document`` (image coordinates) in the middle of the viewport,
        on whole widget pixels so that 100 % shows image pixels unblurred."""
        self.offset_x = round(viewport.width() / 2 - (document.x() + document.width() / 2) * self.zoom)
        self.offset_y = round(viewport.height() / 2 - (document.y() + document.height() / 2) * self.zoom)

    def fit(self, document: QRectF, viewport: QSizeF) -> None:
        """Zoom so the whole ``document`` fills ``viewport`` (small images are enlarged), centred."""
        if document.isEmpty() or viewport.isEmpty():
            self.zoom, self.offset_x, self.offset_y = 1.0, 0.0, 0.0
            return
        free_w = max(1.0, viewport.width() - 2 * FIT_MARGIN)
        free_h = max(1.0, viewport.height() - 2 * FIT_MARGIN)
        self.zoom = min(MAX_ZOOM, max(MIN_ZOOM, min(free_w / document.width(), free_h / document.height())))
        self.center_on(document, viewport)
