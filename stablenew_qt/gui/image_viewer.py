"""ImageViewer: one image at full size, with zoom (issue 17, "What to build": double-click full view).

Ctrl+wheel, + / - (with or without Ctrl) zoom, 0 fits the window, 1 shows 100 %; arrows scroll; Esc closes.
The image is read with QImage (one file the user asked to see, on a double-click).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent, QKeySequence, QPixmap, QWheelEvent
from PySide6.QtWidgets import QDialog, QLabel, QScrollArea, QVBoxLayout, QWidget

ZOOM_STEP = 1.25
ZOOM_RANGE = (0.05, 16.0)


class ImageViewer(QDialog):
    """Shows ``path`` fitted to the dialog; zoom with Ctrl+wheel or Ctrl++ / Ctrl+-."""

    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dialog.image_viewer")
        self.setWindowTitle(path.name)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.path = path
        self.pixmap = QPixmap(str(path))
        self.image = QLabel("Cannot read this image" if self.pixmap.isNull() else "")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.area = QScrollArea()
        self.area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.area.setWidget(self.image)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.area)
        self.zoom = 1.0
        self.resize(900, 700)
        self.fit()

    def set_zoom(self, zoom: float) -> None:
        """Show the image at ``zoom`` (1.0 = 100 %), within :data:`ZOOM_RANGE`."""
        self.zoom = min(max(zoom, ZOOM_RANGE[0]), ZOOM_RANGE[1])
        if self.pixmap.isNull():
            return
        size = self.pixmap.size() * self.zoom
        self.image.setPixmap(
            self.pixmap.scaled(
                size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        )
        self.image.resize(size)
        self.setWindowTitle(f"{self.path.name} ({round(self.zoom * 100)} %)")

    def fit(self) -> None:
        """Zoom so the whole image fits the dialog."""
        if self.pixmap.isNull():
            return
        room = self.area.viewport().size()
        self.set_zoom(min(room.width() / self.pixmap.width(), room.height() / self.pixmap.height(), 1.0))

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom * (ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP))
            event.accept()
            return
        super().wheelEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.ZoomIn) or event.key() in (
            Qt.Key.Key_Plus,
            Qt.Key.Key_Equal,
        ):
            self.set_zoom(self.zoom * ZOOM_STEP)
        elif event.matches(QKeySequence.StandardKey.ZoomOut) or event.key() == Qt.Key.Key_Minus:
            self.set_zoom(self.zoom / ZOOM_STEP)
        elif event.key() == Qt.Key.Key_0:
            self.fit()
        elif event.key() == Qt.Key.Key_1:
            self.set_zoom(1.0)
        else:
            super().keyPressEvent(event)
