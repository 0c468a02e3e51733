"""ImageViewer: one image at full size, with zoom and keyboard navigation (issue 17: double-click
full view, keyboard navigation).

Ctrl+wheel, + / - (with or without Ctrl) zoom, 0 fits the window, 1 shows 100 %; Left / Right step
to the previous / next image of the list it was opened from (the Results gallery or the History),
Delete asks, then moves the image to the trash (the gallery's own delete, same question); Up /
Down scroll; Esc closes. With a loader the file is decoded on its pool, never on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QImage, QKeyEvent, QKeySequence, QPixmap, QWheelEvent
from PySide6.QtWidgets import QDialog, QLabel, QScrollArea, QVBoxLayout, QWidget

from .thumbnails import ThumbnailLoader

ZOOM_STEP = 1.25
ZOOM_RANGE = (0.05, 16.0)
#: Keys the viewer takes before the scroll area would (it scrolls with Left / Right otherwise).
_NAVIGATION_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Delete)


def read_full(path: Path) -> QImage:
    """The whole image (any thread: QImage, unlike QPixmap, may be made off the GUI thread)."""
    return QImage(str(path))


class ImageViewer(QDialog):
    """Shows ``path`` fitted to the dialog; ``paths`` is the list Left / Right step through (it
    holds ``path``; default: ``path`` alone). Emits :attr:`deleteRequested` on Delete."""

    #: Delete was pressed on the image shown (its path); the owner asks and trashes it.
    deleteRequested = Signal(object)
    #: The image shown changed (its path), after Left / Right or a removal.
    imageChanged = Signal(object)
    #: The image shown was read (its path); null pixmap if unreadable.
    loaded = Signal(object)

    def __init__(
        self,
        path: Path,
        parent: QWidget | None = None,
        *,
        paths: Sequence[Path] = (),
        loader: ThumbnailLoader | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("dialog.image_viewer")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.paths = list(paths) if path in paths else [path]
        self.loader = loader
        self.path = path
        self.pixmap = QPixmap()
        self.image = QLabel("")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.area = QScrollArea()
        self.area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.area.setWidget(self.image)
        self.area.installEventFilter(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.area)
        self.zoom = 1.0
        self._closed = False  # a read still on the pool must not touch the deleted widgets
        self.resize(900, 700)
        self.show_image(path)

    @property
    def index(self) -> int:
        """Where the image shown is in :attr:`paths`."""
        return self.paths.index(self.path)

    def show_image(self, path: Path) -> None:
        """Show ``path`` (read on the loader's pool when there is one), fitted to the dialog."""
        self.path = path
        self.pixmap = QPixmap()
        self.image.setPixmap(QPixmap())
        self._set_title()
        if self.loader is None:
            self._on_read(path, read_full(path))
            return
        self.image.setText("Loading…")
        self.loader.submit(partial(read_full, path), partial(self._on_read, path))

    def _on_read(self, path: Path, image: QImage) -> None:
        if self._closed or path != self.path:
            return  # closed, or the user stepped on before this one arrived
        self.pixmap = QPixmap.fromImage(image)
        self.image.setText("Cannot read this image" if self.pixmap.isNull() else "")
        self.fit()
        self.loaded.emit(path)

    def step(self, delta: int) -> None:
        """Show the image ``delta`` places on in :attr:`paths` (stops at either end)."""
        index = min(max(self.index + delta, 0), len(self.paths) - 1)
        if self.paths[index] != self.path:
            self.show_image(self.paths[index])
            self.imageChanged.emit(self.path)

    def remove(self, path: Path) -> None:
        """``path`` is gone (deleted): drop it and show the next image, or close when none is left."""
        if path not in self.paths:
            return
        index = self.paths.index(path)
        shown = path == self.path
        self.paths.remove(path)
        if not self.paths:
            self.close()
        elif shown:
            self.show_image(self.paths[min(index, len(self.paths) - 1)])
            self.imageChanged.emit(self.path)

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
        self._set_title()

    def _set_title(self) -> None:
        place = f" — {self.index + 1} of {len(self.paths)}" if len(self.paths) > 1 else ""
        zoom = "" if self.pixmap.isNull() else f" ({round(self.zoom * 100)} %)"
        self.setWindowTitle(f"{self.path.name}{zoom}{place}")

    def fit(self) -> None:
        """Zoom so the whole image fits the dialog."""
        if self.pixmap.isNull():
            return
        room = self.area.viewport().size()
        self.set_zoom(min(room.width() / self.pixmap.width(), room.height() / self.pixmap.height(), 1.0))

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        super().closeEvent(event)

    def done(self, result: int) -> None:  # Esc (reject) closes without a close event
        self._closed = True
        super().done(result)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom * (ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP))
            event.accept()
            return
        super().wheelEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.area and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in _NAVIGATION_KEYS and self._on_key(event):
                return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self._on_key(event):
            super().keyPressEvent(event)

    def _on_key(self, event: QKeyEvent) -> bool:
        key = event.key()
        if event.matches(QKeySequence.StandardKey.ZoomIn) or key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.set_zoom(self.zoom * ZOOM_STEP)
        elif event.matches(QKeySequence.StandardKey.ZoomOut) or key == Qt.Key.Key_Minus:
            self.set_zoom(self.zoom / ZOOM_STEP)
        elif key == Qt.Key.Key_0:
            self.fit()
        elif key == Qt.Key.Key_1:
            self.set_zoom(1.0)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.step(-1 if key == Qt.Key.Key_Left else 1)
        elif key == Qt.Key.Key_Delete:
            self.deleteRequested.emit(self.path)
        else:
            return False
        return True
