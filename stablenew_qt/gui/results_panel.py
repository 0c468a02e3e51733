"""ResultsPanel: this session's and past runs' images, newest first, with a viewer and parameters.

Buttons open the image's folder, copy its parameters (A1111 infotext) and restore the settings
that made it ("use these settings", through ``config_from_image``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QIcon, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import ConfigError
from ..core.events import RunCompleted
from ..core.infotext import read_image_metadata
from .bridge import EventBridge

THUMB = 96
#: Past images listed at start (the newest); older ones stay on disk.
MAX_PAST_IMAGES = 100


def past_images(output_dir: Path, limit: int = MAX_PAST_IMAGES) -> list[Path]:
    """Final images of earlier runs (``<date>/<run_id>/*.png``), newest first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.glob("*/*/*.png") if p.is_file()]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:limit]


def _thumbnail(path: Path) -> QIcon:
    reader = QImageReader(str(path))
    size = reader.size()
    if size.isValid():
        reader.setScaledSize(size.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
    return QIcon(QPixmap.fromImage(reader.read()))


class ResultsPanel(QWidget):
    """The gallery. Emits :attr:`useSettingsRequested` with an image path for the window to restore."""

    useSettingsRequested = Signal(object)

    def __init__(self, bridge: EventBridge, output_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gallery = QListWidget()
        self.gallery.setObjectName("results.gallery")
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMB, THUMB))
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.currentItemChanged.connect(self._on_gallery_current_item_changed)
        self.viewer = QLabel("No image selected")
        self.viewer.setObjectName("results.viewer")
        self.viewer.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.viewer.setMinimumSize(256, 256)
        self.parameters = QPlainTextEdit()
        self.parameters.setObjectName("results.parameters")
        self.parameters.setReadOnly(True)
        self.open_button = self._button("Open folder", "Show the image's folder", self._on_open_clicked)
        self.copy_button = self._button(
            "Copy parameters", "Copy the A1111 parameters text", self._on_copy_clicked
        )
        self.use_button = self._button(
            "Use these settings", "Restore every knob from this image", self._on_use_clicked
        )
        buttons = QHBoxLayout()
        for button in (self.open_button, self.copy_button, self.use_button):
            buttons.addWidget(button)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.parameters, 1)
        side_layout.addLayout(buttons)
        detail = QSplitter(Qt.Orientation.Horizontal)
        detail.addWidget(self.viewer)
        detail.addWidget(side)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(detail)
        split.addWidget(self.gallery)
        layout = QVBoxLayout(self)
        layout.addWidget(split)
        self._set_selected(None)
        self.set_output_dir(output_dir)
        bridge.runCompleted.connect(self._on_run_completed)

    def _button(self, text: str, tooltip: str, slot: object) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tooltip)
        button.clicked.connect(slot)
        return button

    def set_output_dir(self, output_dir: Path) -> None:
        """List the images already in ``output_dir`` (newest first)."""
        self.gallery.clear()
        for path in reversed(past_images(output_dir)):
            self.add_image(path)

    def add_image(self, path: Path) -> None:
        """Put ``path`` first in the gallery."""
        item = QListWidgetItem(_thumbnail(path), path.stem)
        item.setData(Qt.ItemDataRole.UserRole, str(path))
        item.setToolTip(str(path))
        self.gallery.insertItem(0, item)

    def image_paths(self) -> list[Path]:
        """The gallery's images, in display order (newest first)."""
        return [
            Path(self.gallery.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.gallery.count())
        ]

    @property
    def selected(self) -> Path | None:
        item = self.gallery.currentItem()
        return Path(item.data(Qt.ItemDataRole.UserRole)) if item else None

    def _on_run_completed(self, event: RunCompleted) -> None:
        for path in event.image_paths:
            self.add_image(path)
        if event.image_paths:
            self.gallery.setCurrentRow(0)

    def _on_gallery_current_item_changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        self._set_selected(Path(current.data(Qt.ItemDataRole.UserRole)) if current else None)

    def _set_selected(self, path: Path | None) -> None:
        for button in (self.open_button, self.copy_button, self.use_button):
            button.setEnabled(path is not None)
        if path is None:
            self.parameters.setPlainText("")
            return
        pixmap = QPixmap(str(path))
        self.viewer.setPixmap(
            pixmap.scaled(
                self.viewer.size(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
        try:
            text = read_image_metadata(path).parameters or "(no parameters stored in this image)"
        except ConfigError as exc:
            text = str(exc)
        self.parameters.setPlainText(text)

    def _on_open_clicked(self) -> None:
        if self.selected is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.selected.parent)))

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.parameters.toPlainText())

    def _on_use_clicked(self) -> None:
        if self.selected is not None:
            self.useSettingsRequested.emit(self.selected)
