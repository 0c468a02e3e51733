"""Image files dropped on a text box restore settings instead of typing the file's URL.

A QPlainTextEdit takes a dropped file as text and inserts ``file:///…/fox.png`` at the cursor
(issue 17, item 3). :class:`FileDropFilter` sits on such a box (and its viewport): a drag that
carries local files is taken by the filter and reported through :attr:`filesDropped`; a drag of
plain text still goes to the box.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QAbstractScrollArea, QWidget


def local_files(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[Path]:
    """The local files a drag carries (none for text or remote URLs)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class FileDropFilter(QObject):
    """Takes drags of local files on the watched widgets; emits :attr:`filesDropped` on a drop."""

    filesDropped = Signal(list)

    def watch(self, widget: QWidget) -> None:
        """Filter ``widget``'s drags (and its viewport's, for a scroll area such as a text box)."""
        widget.installEventFilter(self)
        if isinstance(widget, QAbstractScrollArea):
            widget.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove) and isinstance(
            event, QDragEnterEvent | QDragMoveEvent
        ):
            if local_files(event):
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            files = local_files(event)
            if files:
                event.acceptProposedAction()
                self.filesDropped.emit(files)
                return True
        return super().eventFilter(watched, event)
