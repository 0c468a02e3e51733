"""MaskCanvas: shows a MaskDocument's image with the mask overlay, and paints on it with the mouse.

Left button paints (or erases) with the document's brush; the middle button, or the left button
while Space is held, pans; the wheel zooms around the cursor. A circle of the brush's size follows
the cursor (drawn, not a cursor bitmap, so it has no size limit). The outpaint area is drawn
around the image as masked. Repaints cover only what changed: a stroke segment's box, the old and
new place of the brush circle, the strips a pan brings into view (the rest is scrolled).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QEnterEvent,
    QFocusEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

from .document import OVERLAY_COLOR, OVERLAY_OPACITY, MaskDocument
from .outpaint import OutpaintSides, document_rect
from .view import ZOOM_STEP, ViewTransform

#: Where the outpaint area is (under the overlay colour) and where the image is transparent.
NEW_AREA_COLOR = QColor(128, 128, 128)
_TEXT_INPUTS = (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit)


class MaskCanvas(QWidget):
    """The painting surface. Strokes are in image coordinates whatever the zoom and pan."""

    #: The zoom factor changed (1.0 = 100 %).
    zoom_changed = Signal(float)

    def __init__(self, document: MaskDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mask.canvas")
        self.document = document
        self.view = ViewTransform()
        self.fitted = True  # follow the widget's size until the user zooms or pans
        self.overlay_visible = True
        self.outpaint = OutpaintSides()
        self._hover: QPointF | None = None
        self._pan_from: QPointF | None = None
        self._space_held = False
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setMinimumSize(160, 120)
        document.region_changed.connect(self._on_region_changed)
        document.replaced.connect(self._on_replaced)

    # -- view -----------------------------------------------------------------------------------

    def document_rect(self) -> QRectF:
        """The image plus the outpaint area, in image coordinates."""
        return document_rect(self.document.width, self.document.height, self.outpaint)

    def fit(self) -> None:
        self.fitted = True
        self.view.fit(self.document_rect(), QSizeF(self.size()))
        self._view_moved()

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom around ``anchor`` (widget point; default the middle)."""
        self.fitted = False
        self.view.zoom_at(zoom, anchor if anchor is not None else QRectF(self.rect()).center())
        self._view_moved()

    def actual_size(self) -> None:
        """100 %, centred on the document."""
        self.fitted = False
        self.view.zoom = 1.0
        self.view.center_on(self.document_rect(), QSizeF(self.size()))
        self._view_moved()

    def zoom_in(self) -> None:
        self.set_zoom(self.view.zoom * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self.view.zoom / ZOOM_STEP)

    def pan_by(self, dx: float, dy: float) -> None:
        self.fitted = False
        self.view.pan(dx, dy)
        if dx == int(dx) and dy == int(dy) and abs(dx) < self.width() and abs(dy) < self.height():
            # Move what is already drawn and paint only the strips that come into view.
            self.scroll(int(dx), int(dy))
        else:
            self.update()

    def _view_moved(self) -> None:
        self.update()
        self.zoom_changed.emit(self.view.zoom)

    def set_overlay_visible(self, visible: bool) -> None:
        self.overlay_visible = visible
        self.update()

    def set_outpaint(self, sides: OutpaintSides) -> None:
        self.outpaint = sides
        if self.fitted:
            self.fit()
        else:
            self.update()

    def _on_replaced(self) -> None:
        self.fit()

    def brush_changed(self) -> None:
        """Redraw the brush circle at its new size."""
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        if self.fitted:
            self.view.fit(self.document_rect(), QSizeF(event.size()))
            self.zoom_changed.emit(self.view.zoom)
        super().resizeEvent(event)

    # -- painting ---------------------------------------------------------------------------------

    def _on_region_changed(self, rect: QRect) -> None:
        self.update(self.view.rect_to_widget(QRectF(rect)).toAlignedRect().adjusted(-1, -1, 1, 1))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(event.rect(), self.palette().color(self.backgroundRole()).darker(130))
        if self.document.has_image:
            painter.setTransform(self.view.qtransform())
            exposed = self.view.rect_to_image(QRectF(event.rect())).adjusted(-1, -1, 1, 1)
            self._paint_outpaint_area(painter, exposed)
            self._paint_image(painter, exposed)
            if self.outpaint.any:  # where the image ends and the new area begins
                self._paint_image_border(painter)
            painter.resetTransform()
        self._paint_brush_outline(painter)
        painter.end()

    def _paint_image(self, painter: QPainter, exposed: QRectF) -> None:
        document = self.document
        whole = QRectF(0, 0, document.width, document.height)
        if not exposed.intersects(whole):
            return
        # Always the whole image, clipped by the painter to the exposed region (the raster engine
        # then samples only the clipped pixels: no slower). Drawing just the exposed sub-rect
        # would sample a zoomed image with that sub-rect's rounding and leave seams where
        # partial repaints meet. Bilinear when shrinking (readable), nearest when enlarging.
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.view.zoom < 1.0)
        if document.image.hasAlphaChannel():
            painter.fillRect(whole.intersected(exposed), NEW_AREA_COLOR)
        painter.drawImage(whole, document.image, whole)
        if self.overlay_visible:
            painter.drawImage(whole, document.overlay, whole)

    def _paint_image_border(self, painter: QPainter) -> None:
        # Black dashes over white, one device pixel wide (width 0): visible on any picture.
        border = QRectF(0, 0, self.document.width, self.document.height)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(255, 255, 255), 0))
        painter.drawRect(border)
        painter.setPen(QPen(QColor(0, 0, 0), 0, Qt.PenStyle.DashLine))
        painter.drawRect(border)

    def _paint_outpaint_area(self, painter: QPainter, exposed: QRectF) -> None:
        masked = QColor(OVERLAY_COLOR)
        masked.setAlphaF(OVERLAY_OPACITY)
        for band in self.outpaint_bands():
            area = band.intersected(exposed)
            if not area.isEmpty():
                painter.fillRect(area, NEW_AREA_COLOR)
                if self.overlay_visible:
                    painter.fillRect(area, masked)

    def outpaint_bands(self) -> list[QRectF]:
        """The new area around the image (image coordinates): top and bottom full width, then
        left and right beside the image; empty rects left out."""
        whole, (width, height) = self.document_rect(), (self.document.width, self.document.height)
        sides = self.outpaint
        bands = [
            QRectF(whole.left(), whole.top(), whole.width(), sides.top),
            QRectF(whole.left(), height, whole.width(), sides.bottom),
            QRectF(whole.left(), 0, sides.left, height),
            QRectF(width, 0, sides.right, height),
        ]
        return [band for band in bands if not band.isEmpty()]

    def _outline_rect(self, centre: QPointF) -> QRect:
        radius = self.document.brush.radius * self.view.zoom + 2
        return QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius).toAlignedRect()

    def _paint_brush_outline(self, painter: QPainter) -> None:
        if self._hover is None or self._pan_from is not None or not self.document.has_image:
            return
        radius = max(1.0, self.document.brush.radius * self.view.zoom)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        # White under black dashes: visible on any picture.
        painter.setPen(QPen(QColor(255, 255, 255), 1))
        painter.drawEllipse(self._hover, radius, radius)
        painter.setPen(QPen(QColor(0, 0, 0), 1, Qt.PenStyle.DashLine))
        painter.drawEllipse(self._hover, radius, radius)

    def _move_outline(self, position: QPointF | None) -> None:
        if self._hover is not None:
            self.update(self._outline_rect(self._hover))
        self._hover = position
        if position is not None:
            self.update(self._outline_rect(position))

    # -- input ------------------------------------------------------------------------------------

    def _wants_pan(self, event: QMouseEvent) -> bool:
        button = event.button()
        return button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and self._space_held
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self._wants_pan(event):
            self._pan_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            if self._hover is not None:  # erase the circle now: a pan scrolls what is drawn
                old = self._outline_rect(self._hover)
                self._hover = None
                self.repaint(old)
        elif event.button() == Qt.MouseButton.LeftButton:
            self.document.begin_stroke(self.view.to_image(event.position()))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        position = event.position()
        if self._pan_from is not None:
            delta = position - self._pan_from
            self._pan_from = position
            self.pan_by(delta.x(), delta.y())
        else:
            if self.document.stroking:
                self.document.stroke_to(self.view.to_image(position))
            self._move_outline(position)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None and event.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._pan_from = None
            self._show_tool_cursor()
        elif event.button() == Qt.MouseButton.LeftButton:
            self.document.end_stroke()
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0
        if notches:
            self.set_zoom(self.view.zoom * ZOOM_STEP**notches, event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            self._show_tool_cursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def _show_tool_cursor(self) -> None:
        self.setCursor(Qt.CursorShape.OpenHandCursor if self._space_held else Qt.CursorShape.CrossCursor)

    def enterEvent(self, event: QEnterEvent) -> None:
        # Take the keyboard (Space to pan, the editor's shortcuts) unless the user is typing somewhere.
        if not isinstance(QApplication.focusWidget(), _TEXT_INPUTS):
            self.setFocus(Qt.FocusReason.MouseFocusReason)
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self._move_outline(None)
        super().leaveEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        self._space_held = False  # the key release goes elsewhere
        self._show_tool_cursor()
        super().focusOutEvent(event)
