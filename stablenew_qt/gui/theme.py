"""Theme: the application's light or dark palette, following the system or chosen by the user.

The setting (``appearance/theme`` in the app's QSettings) is one of :data:`THEMES`:

- ``"system"`` (default) follows the platform's colour scheme, ``QStyleHints.colorScheme()``, and
  follows it again whenever ``colorSchemeChanged`` fires. A scheme the platform does not report
  (``Unknown``: offscreen, older desktops) keeps the platform's own palette, which is light there.
- ``"light"`` and ``"dark"`` force one. The platform is asked first (``QStyleHints.setColorScheme``,
  Qt 6.8+), so native styles draw their own dark mode; where it ignores the request (offscreen,
  many Linux desktops) the application gets an explicit palette under the Fusion style, which
  draws every control from the palette.

One :class:`ThemeManager` per application (:func:`theme_manager`) does the applying; the View menu
and ``app.main`` only choose. The stylesheet (``stablenew_qt/resources/style.qss``) uses palette roles, so it
follows whichever palette is in effect.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

THEMES: tuple[str, ...] = ("system", "light", "dark")
#: (value, menu label) for each theme, in menu order.
THEME_LABELS: tuple[tuple[str, str], ...] = (("system", "System"), ("light", "Light"), ("dark", "Dark"))
DEFAULT_THEME = "system"
THEME_KEY = "appearance/theme"

_Role = QPalette.ColorRole
_DARK = {
    _Role.Window: "#2b2b2b",
    _Role.WindowText: "#e6e6e6",
    _Role.Base: "#1e1e1e",
    _Role.AlternateBase: "#2f2f2f",
    _Role.ToolTipBase: "#3a3a3a",
    _Role.ToolTipText: "#e6e6e6",
    _Role.PlaceholderText: "#8a8a8a",
    _Role.Text: "#e6e6e6",
    _Role.Button: "#353535",
    _Role.ButtonText: "#e6e6e6",
    _Role.BrightText: "#ff6b6b",
    _Role.Link: "#6cb4ff",
    _Role.Highlight: "#3d7bd9",
    _Role.HighlightedText: "#ffffff",
}
_LIGHT = {
    _Role.Window: "#efefef",
    _Role.WindowText: "#1a1a1a",
    _Role.Base: "#ffffff",
    _Role.AlternateBase: "#f5f5f5",
    _Role.ToolTipBase: "#ffffdc",
    _Role.ToolTipText: "#1a1a1a",
    _Role.PlaceholderText: "#7a7a7a",
    _Role.Text: "#1a1a1a",
    _Role.Button: "#efefef",
    _Role.ButtonText: "#1a1a1a",
    _Role.BrightText: "#c0392b",
    _Role.Link: "#0b5cad",
    _Role.Highlight: "#308cc6",
    _Role.HighlightedText: "#ffffff",
}


def load_theme(settings: QSettings) -> str:
    """The saved theme; :data:`DEFAULT_THEME` when none (or an unknown value) is saved."""
    value = settings.value(THEME_KEY)
    return value if isinstance(value, str) and value in THEMES else DEFAULT_THEME


def save_theme(settings: QSettings, theme: str) -> None:
    settings.setValue(THEME_KEY, _checked(theme))


def is_dark(palette: QPalette) -> bool:
    """True for a palette whose window background is dark (lightness under 128 of 255)."""
    return palette.color(_Role.Window).lightness() < 128


def explicit_palette(dark: bool) -> QPalette:
    """The palette used where the platform cannot switch to the wanted scheme itself."""
    colors = _DARK if dark else _LIGHT
    palette = QPalette(QColor(colors[_Role.Button]), QColor(colors[_Role.Window]))  # derives the 3D shades
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    muted = QColor("#7a7a7a" if dark else "#9a9a9a")
    for role in (_Role.WindowText, _Role.Text, _Role.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, muted)
    return palette


class ThemeManager(QObject):
    """Applies a theme to ``app`` and keeps ``"system"`` in step with the platform.

    Lives as ``app``'s child; get it with :func:`theme_manager`. Create it before the application's
    stylesheet is set, so it can tell which native style to return to from Fusion.
    """

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.setObjectName("theme")
        self._app = app
        self._theme = DEFAULT_THEME
        self._native_style = app.style().name()  # "" once a stylesheet wraps the style
        self._style = self._native_style
        self._explicit = False
        app.styleHints().colorSchemeChanged.connect(self._on_style_hints_color_scheme_changed)

    @property
    def theme(self) -> str:
        return self._theme

    def set_theme(self, theme: str) -> None:
        """Use ``theme`` (one of :data:`THEMES`) from now on; raises ValueError for another value."""
        self._theme = _checked(theme)
        hints = self._app.styleHints()
        if hasattr(hints, "setColorScheme"):  # Qt 6.8+; older versions get the explicit palette
            if theme == "system":
                hints.unsetColorScheme()
            else:
                hints.setColorScheme(Qt.ColorScheme.Dark if theme == "dark" else Qt.ColorScheme.Light)
        self._apply(hints.colorScheme())

    def _on_style_hints_color_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        self._apply(scheme)

    def _apply(self, system_scheme: Qt.ColorScheme) -> None:
        forced = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}
        wanted = forced.get(self._theme, system_scheme)
        # Start from what the platform gives and keep it when it already is what we want.
        if self._explicit:
            self._app.setPalette(QPalette())  # an empty palette resolves to the platform's
            self._explicit = False
        if wanted == Qt.ColorScheme.Unknown or is_dark(self._app.palette()) == (
            wanted == Qt.ColorScheme.Dark
        ):
            self._use_style(self._native_style)
        else:
            self._use_style("fusion")
            self._app.setPalette(explicit_palette(wanted == Qt.ColorScheme.Dark))
            self._explicit = True
        self._repolish()

    def _repolish(self) -> None:
        # Under a stylesheet, widgets already polished keep the palette they were polished with
        # (issue 17, item 2: cards, the right pane and the status bar stayed light in Dark).
        # Setting the sheet again re-polishes every widget with the palette now in effect.
        sheet = self._app.styleSheet()
        if sheet:
            self._app.setStyleSheet(sheet)

    def _use_style(self, name: str) -> None:
        if name and name.lower() != self._style.lower():
            self._app.setStyle(name)
            self._style = name


def theme_manager(app: QApplication) -> ThemeManager:
    """``app``'s ThemeManager, created on first use."""
    found = app.findChild(ThemeManager, "theme")
    return found if isinstance(found, ThemeManager) else ThemeManager(app)


def apply_saved_theme(app: QApplication, settings: QSettings) -> ThemeManager:
    """Apply the theme saved in ``settings`` (at start, before the window shows)."""
    manager = theme_manager(app)
    manager.set_theme(load_theme(settings))
    return manager


def apply_stylesheet(app: QApplication, path: Path) -> bool:
    """Set ``path``'s text as ``app``'s stylesheet; False (logged) when it cannot be read."""
    try:
        app.setStyleSheet(path.read_text(encoding="utf-8"))
    except OSError as exc:
        log.info("no stylesheet: %s", exc)
        return False
    return True


def _checked(theme: str) -> str:
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {', '.join(THEMES)}; got {theme!r}")
    return theme
