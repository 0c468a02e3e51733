"""LogPanel: the app's logging records, with a level filter, copy and clear.

A :class:`QtLogHandler` on the root logger forwards records from any thread through a queued
signal; the panel formats and appends them on the GUI thread.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_LINES = 5000


class _RecordSignal(QObject):
    recordLogged = Signal(object)


class QtLogHandler(logging.Handler):
    """A logging handler whose :attr:`signals` emit ``recordLogged`` (queued to the GUI thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.signals = _RecordSignal()

    def emit(self, record: logging.LogRecord) -> None:
        self.signals.recordLogged.emit(record)


class LogPanel(QWidget):
    """Shows log records at or above the chosen level (records below it are kept for later)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.records: list[logging.LogRecord] = []
        self.formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        self.text = QPlainTextEdit()
        self.text.setObjectName("log.text")
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.level = QComboBox()
        self.level.setObjectName("log.level")
        self.level.setToolTip("Show records at this level and above")
        self.level.addItems(LEVELS)
        self.level.setCurrentText("INFO")
        self.level.currentTextChanged.connect(self._on_level_current_text_changed)
        copy = QPushButton("Copy")
        copy.setToolTip("Copy the shown lines")
        copy.clicked.connect(self._on_copy_clicked)
        clear = QPushButton("Clear")
        clear.setToolTip("Forget every line")
        clear.clicked.connect(self._on_clear_clicked)
        row = QHBoxLayout()
        row.addWidget(self.level)
        row.addStretch(1)
        row.addWidget(copy)
        row.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.text)
        self.handler = QtLogHandler()
        self.handler.setLevel(logging.DEBUG)
        self.handler.signals.recordLogged.connect(self._on_record_logged, Qt.ConnectionType.QueuedConnection)
        logging.getLogger().addHandler(self.handler)

    def detach(self) -> None:
        """Stop listening to logging (when the window closes)."""
        logging.getLogger().removeHandler(self.handler)

    def _threshold(self) -> int:
        return int(logging.getLevelName(self.level.currentText()))

    def _on_record_logged(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        del self.records[:-MAX_LINES]
        if record.levelno >= self._threshold():
            self.text.appendPlainText(self.formatter.format(record))

    def _on_level_current_text_changed(self, _text: str) -> None:
        threshold = self._threshold()
        lines = [self.formatter.format(r) for r in self.records if r.levelno >= threshold]
        self.text.setPlainText("\n".join(lines))

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.text.toPlainText())

    def _on_clear_clicked(self) -> None:
        self.records.clear()
        self.text.clear()
