"""The theme: View > Theme in the window, the saved choice, the system scheme and the stylesheet."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from stablenew_qt.app import STYLE_SHEET
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.gui.config_model import ConfigModel
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.stage_cards import Txt2ImgCard
from stablenew_qt.gui.testing import DEMO_CHOICES, MakeMainWindow, leftovers
from stablenew_qt.gui.theme import (
    THEME_KEY,
    ThemeManager,
    apply_saved_theme,
    apply_stylesheet,
    explicit_palette,
    is_dark,
    load_theme,
    save_theme,
    theme_manager,
)


def application() -> QApplication:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    return app


@pytest.fixture
def manager(qapp: Any) -> Iterator[ThemeManager]:
    """The application's ThemeManager; back on "system" (and no stylesheet) afterwards, so the
    palette does not leak into later tests."""
    app = application()
    sheet = app.styleSheet()
    yield theme_manager(app)
    theme_manager(app).set_theme("system")
    app.setStyleSheet(sheet)
    assert not is_dark(app.palette())


def window_lightness(widget: QWidget) -> int:
    return widget.palette().color(QPalette.ColorRole.Window).lightness()


def wait_dark(qtbot: Any, widget: QWidget, dark: bool) -> None:
    """Wait for ``widget`` to show a dark (or light) window background: the application palette
    is set at once, widgets get it through posted ApplicationPaletteChange events."""
    qtbot.waitUntil(lambda: (window_lightness(widget) < 128) is dark, timeout=2000)


def choose_theme(window: MainWindow, theme: str) -> QAction:
    action = window.findChild(QAction, f"view.theme.{theme}")
    assert isinstance(action, QAction), f"no View > Theme action for {theme!r}"
    action.trigger()  # as clicking it in the menu does
    return action


def test_view_theme_dark_and_light_set_the_window_palette(
    qtbot: Any, make_main_window: MakeMainWindow, manager: ThemeManager
) -> None:
    window = make_main_window()
    choose_theme(window, "dark")
    wait_dark(qtbot, window, True)
    wait_dark(qtbot, window.results_panel, True)  # children follow the application palette
    assert window.prompt_panel.palette().color(QPalette.ColorRole.Base).lightness() < 128
    assert manager.theme == "dark"

    light = choose_theme(window, "light")
    wait_dark(qtbot, window, False)
    assert light.isChecked()
    assert [a.objectName() for a in light.actionGroup().actions() if a.isChecked()] == ["view.theme.light"]


def test_the_chosen_theme_is_saved_and_restored_in_a_new_window(
    qtbot: Any, make_main_window: MakeMainWindow, manager: ThemeManager
) -> None:
    first = make_main_window()
    choose_theme(first, "dark")
    settings_file = first.prefs.qsettings.fileName()
    assert load_theme(first.prefs.qsettings) == "dark"
    manager.set_theme("system")  # as after a restart, before the saved theme is applied
    wait_dark(qtbot, first, False)

    settings = QSettings(settings_file, QSettings.Format.IniFormat)
    second = MainWindow(first.services, settings)
    try:
        dark = second.findChild(QAction, "view.theme.dark")
        assert isinstance(dark, QAction) and dark.isChecked()
        apply_saved_theme(application(), settings)  # what app.main does at start
        wait_dark(qtbot, second, True)
    finally:
        second.close()
        assert leftovers(second) == []
        second.deleteLater()


def test_system_follows_the_platform_color_scheme(
    qtbot: Any, make_main_window: MakeMainWindow, manager: ThemeManager
) -> None:
    window = make_main_window()
    choose_theme(window, "system")
    hints = application().styleHints()
    # Offscreen the platform reports no scheme (Unknown): the platform's own palette, light.
    assert hints.colorScheme() == Qt.ColorScheme.Unknown
    wait_dark(qtbot, window, False)
    # The offscreen platform cannot switch schemes, so the platform's signal is emitted by hand:
    # the real QStyleHints.colorSchemeChanged, with the argument a desktop would send.
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    wait_dark(qtbot, window, True)
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    wait_dark(qtbot, window, False)


def test_a_forced_theme_ignores_the_platform_scheme(
    qtbot: Any, make_main_window: MakeMainWindow, manager: ThemeManager
) -> None:
    window = make_main_window()
    app = application()
    choose_theme(window, "light")
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert not is_dark(app.palette())  # the application palette changes at once, or not at all
    choose_theme(window, "dark")
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert is_dark(app.palette())
    wait_dark(qtbot, window, True)


def test_the_stylesheet_still_applies_in_both_themes(qtbot: Any, manager: ThemeManager) -> None:
    app = application()
    assert apply_stylesheet(app, STYLE_SHEET)
    sheet = app.styleSheet()
    assert "QProgressBar" in sheet
    holder = QWidget()
    qtbot.addWidget(holder)
    card = Txt2ImgCard(ConfigModel(), DEMO_CHOICES, holder)
    card.show_problems(ConfigError("must be at least 1", "txt2img.steps").problems)
    label = card.error_label  # styled by the sheet (role="error"): a fixed red over either palette
    holder.show()
    for theme, dark in (("dark", True), ("light", False), ("dark", True)):
        manager.set_theme(theme)
        assert app.styleSheet() == sheet
        wait_dark(qtbot, holder, dark)
        assert label.palette().color(QPalette.ColorRole.WindowText).name() == "#d64541"


def test_apply_stylesheet_without_the_file_keeps_running(manager: ThemeManager, tmp_path: Any) -> None:
    assert not apply_stylesheet(application(), tmp_path / "missing.qss")


def test_saved_values_are_checked(tmp_path: Any) -> None:
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    assert load_theme(settings) == "system"
    settings.setValue(THEME_KEY, "solarized")
    assert load_theme(settings) == "system"
    save_theme(settings, "light")
    assert load_theme(settings) == "light"
    with pytest.raises(ValueError, match="theme must be one of system, light, dark; got 'Dark'"):
        save_theme(settings, "Dark")


def test_explicit_palettes_are_dark_and_light_with_readable_text() -> None:
    for dark in (True, False):
        palette = explicit_palette(dark)
        assert is_dark(palette) is dark
        window = palette.color(QPalette.ColorRole.Window).lightness()
        text = palette.color(QPalette.ColorRole.WindowText).lightness()
        assert abs(window - text) > 150
