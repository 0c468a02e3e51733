"""AppSettings: what the window keeps between sessions, in one QSettings object.

Window geometry, splitter and tab state, the last used RunConfig (restored at start), the output
and models folders, the memory mode and the queue's two settings (auto-resume, pause on failure).
Tests pass a QSettings on a temporary file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings

from ..core.config import RunConfig
from ..core.errors import ConfigError
from .services import MEMORY_MODES, AppServices

if TYPE_CHECKING:
    from .main_window import MainWindow

log = logging.getLogger(__name__)


class _Flag:
    """An on/off QSettings key as an attribute of :class:`AppSettings` (off when never set)."""

    def __init__(self, key: str, doc: str) -> None:
        self.key = key
        self.__doc__ = doc

    def __get__(self, settings: AppSettings, _owner: type | None = None) -> bool:
        value = settings.qsettings.value(self.key)
        if isinstance(value, bool):
            return value
        return str(value).lower() in {"true", "1"}  # an INI file stores "true"

    def __set__(self, settings: AppSettings, on: bool) -> None:
        settings.qsettings.setValue(self.key, bool(on))


class AppSettings:
    """Typed access to the window's QSettings keys."""

    def __init__(self, settings: QSettings, services: AppServices) -> None:
        self.qsettings = settings
        self.services = services

    def _text(self, key: str) -> str | None:
        value = self.qsettings.value(key)
        return value if isinstance(value, str) and value else None

    @property
    def output_dir(self) -> Path:
        text = self._text("paths/output_dir")
        return Path(text) if text else self.services.output_dir

    @output_dir.setter
    def output_dir(self, folder: Path) -> None:
        self.qsettings.setValue("paths/output_dir", str(folder))

    @property
    def models_dir(self) -> Path:
        text = self._text("paths/models_dir")
        return Path(text) if text else self.services.models_dir

    @models_dir.setter
    def models_dir(self, folder: Path) -> None:
        self.qsettings.setValue("paths/models_dir", str(folder))

    @property
    def memory_mode(self) -> str:
        mode = self._text("engine/memory_mode")
        return mode if mode in {m for m, _ in MEMORY_MODES} else self.services.memory_mode

    @memory_mode.setter
    def memory_mode(self, mode: str) -> None:
        self.qsettings.setValue("engine/memory_mode", mode)

    save_intermediates = _Flag(
        "paths/save_intermediates",
        "Keep each stage's images too (``intermediates/`` in the run folder), like the CLI's "
        "``--save-intermediates``.",
    )
    auto_resume = _Flag(
        "queue/auto_resume", "Queue jobs interrupted by a crash or by closing the app again at start."
    )
    pause_on_failure = _Flag("queue/pause_on_failure", "Pause the queue when a job fails (else go on).")

    def last_config(self) -> RunConfig:
        """The config used last time, or the defaults (a stale or broken one is logged and dropped)."""
        text = self._text("config/last")
        if text is None:
            return RunConfig()
        try:
            return RunConfig.from_json(text)
        except ConfigError as exc:
            log.warning("the saved settings could not be restored: %s", exc)
            return RunConfig()

    def save_config(self, config: RunConfig) -> None:
        self.qsettings.setValue("config/last", config.to_json(indent=None))

    def restore_window(self, window: MainWindow) -> None:
        for key, restore in (
            ("window/geometry", window.restoreGeometry),
            ("window/state", window.restoreState),
            ("window/splitter", window.splitter.restoreState),
        ):
            value = self.qsettings.value(key)
            if isinstance(value, QByteArray):
                restore(value)
        tab = self.qsettings.value("window/tab")
        if isinstance(tab, int | str) and str(tab).isdigit():
            window.tabs.setCurrentIndex(int(tab))

    def save_window(self, window: MainWindow) -> None:
        self.qsettings.setValue("window/geometry", window.saveGeometry())
        self.qsettings.setValue("window/state", window.saveState())
        self.qsettings.setValue("window/splitter", window.splitter.saveState())
        self.qsettings.setValue("window/tab", window.tabs.currentIndex())
        self.qsettings.sync()
