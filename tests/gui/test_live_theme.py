"""The theme switches live everywhere under the app's stylesheet (issue 17, item 2): the cards, the
right pane, the form labels, the edit boxes, the status bar and the progress text, both ways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QPlainTextEdit, QSpinBox, QWidget

from stablenew_qt.app import STYLE_SHEET
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.testing import MakeMainWindow
from stablenew_qt.gui.theme import ThemeManager, apply_stylesheet, is_dark, theme_manager

Role = QPalette.ColorRole
#: Lightness (0-255) apart that text and its background must be.
CONTRAST = 100


@pytest.fixture
def styled(qapp: Any) -> Iterator[ThemeManager]:
    """The app's stylesheet applied as ``app.main`` does; back to "system" and no sheet afterwards."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    sheet = app.styleSheet()
    assert apply_stylesheet(app, STYLE_SHEET)
    yield theme_manager(app)
    theme_manager(app).set_theme("system")
    app.setStyleSheet(sheet)
    assert not is_dark(app.palette())


def _lightness(widget: QWidget, role: QPalette.ColorRole) -> int:
    return widget.palette().color(role).lightness()


def unreadable(window: MainWindow) -> list[str]:
    """Enabled, visible labels and edit boxes whose text is too close to their background."""
    found = []
    for label in window.findChildren(QLabel):
        shown = label.isVisible() and label.isEnabled() and label.property("role") is None
        text = _lightness(label, label.foregroundRole())
        if shown and abs(_lightness(label, Role.Window) - text) < CONTRAST:
            found.append(f"label {label.objectName() or label.text()[:20]!r}")
    edits: list[QWidget] = [*window.findChildren(QLineEdit), *window.findChildren(QPlainTextEdit)]
    for edit in [*edits, *window.findChildren(QSpinBox)]:
        shown = edit.isVisible() and edit.isEnabled()
        if shown and abs(_lightness(edit, Role.Base) - _lightness(edit, Role.Text)) < CONTRAST:
            found.append(f"edit {edit.objectName()!r}")
    return found


def test_switching_the_theme_live_reaches_every_widget_both_ways(
    qtbot: Any, make_main_window: MakeMainWindow, styled: ThemeManager
) -> None:
    window = make_main_window()
    progress = window.progress_panel.overall
    for theme, dark in (("dark", True), ("light", False), ("dark", True), ("light", False)):
        styled.set_theme(theme)
        parts: dict[str, QWidget] = {
            "txt2img card": window.cards["txt2img"],
            "ADetailer card": window.cards["adetailer"],
            "right pane": window.tabs,
            "results": window.results_panel,
            "status bar": window.statusBar(),
            "progress label": window.progress_panel.label,
            "progress bar": progress,
        }
        qtbot.waitUntil(
            lambda d=dark, p=parts: all(is_dark(w.palette()) is d for w in p.values()), timeout=2000
        )
        assert unreadable(window) == [], theme
        bar = window.statusBar()
        assert abs(_lightness(bar, Role.Window) - _lightness(bar, Role.WindowText)) >= CONTRAST
        assert abs(_lightness(progress, Role.Base) - _lightness(progress, Role.Text)) >= CONTRAST
