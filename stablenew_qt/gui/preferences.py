"""Preferences: what the app keeps between sessions, as one typed model that announces changes.

Like napari's settings, each preference is a typed attribute (``prefs.memory_mode`` is a
MemoryMode, ``prefs.output_dir`` a Path) backed by one QSettings key, and setting it to a new value
emits its ``...Changed`` signal. The menus write preferences and follow them; the window follows
them and tells the engine (a new memory mode builds a new engine, a new output folder reaches the
next job). Nothing else reads the QSettings keys, so each key is spelled once, here.

Besides the preferences proper it stores the last RunConfig (restored at start) and the window's
layout. Tests pass a QSettings on a temporary file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QByteArray, QObject, QSettings, Signal, SignalInstance

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.hooks import default_learning_log_path
from ..core.options import MemoryMode, memory_mode
from .theme import DEFAULT_THEME, THEME_KEY, THEMES

log = logging.getLogger(__name__)

T = TypeVar("T")


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in {"true", "1"}  # an INI file stores "true"


def _as_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class _Preference(Generic[T]):
    """One preference: a QSettings ``key`` read as ``T`` (``default`` when unset or unusable),
    written as text, announced through the signal ``<name>Changed`` when it changes."""

    def __init__(
        self,
        key: str,
        read: Callable[[Any], T | None],
        default: Callable[[Preferences], T],
        doc: str,
        write: Callable[[T], object] = str,
    ) -> None:
        self.key = key
        self._read = read
        self._default = default
        self._write = write
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.signal_name = (
            "".join(w.capitalize() if i else w for i, w in enumerate(name.split("_"))) + "Changed"
        )

    def __get__(self, prefs: Preferences, _owner: type | None = None) -> T:
        value = self._read(prefs.qsettings.value(self.key))
        return value if value is not None else self._default(prefs)

    def __set__(self, prefs: Preferences, value: T) -> None:
        if value == self.__get__(prefs):
            return
        prefs.qsettings.setValue(self.key, self._write(value))
        signal: SignalInstance = getattr(prefs, self.signal_name)
        signal.emit(value)


def _path(value: object) -> Path | None:
    text = _as_text(value)
    return Path(text) if text else None


def _flag(value: object) -> bool | None:
    return None if value is None else _as_bool(value)


def _memory(value: object) -> MemoryMode | None:
    text = _as_text(value)
    return memory_mode(text) if text else None


def _json_object(value: object) -> dict[str, Any] | None:
    text = _as_text(value)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _count(value: object) -> int | None:
    text = str(value) if isinstance(value, int | str) else ""
    return int(text) if text.isdigit() and int(text) > 0 else None


def _theme(value: object) -> str | None:
    return value if isinstance(value, str) and value in THEMES else None


#: The QSettings key of the models folder (``app.main --models-dir`` sets it too).
MODELS_DIR_KEY = "paths/models_dir"


@dataclass(frozen=True)
class WindowLayout:
    """The window's geometry, dock state, splitter and current tab, as Qt saved them."""

    geometry: QByteArray | None = None
    state: QByteArray | None = None
    splitter: QByteArray | None = None
    tab: int | None = None


class Preferences(QObject):
    """The app's preferences over ``settings``; ``models_dir``/``output_dir`` default to the
    given folders (the composition root's, or a test's)."""

    outputDirChanged = Signal(object)  # Path
    modelsDirChanged = Signal(object)  # Path
    memoryModeChanged = Signal(object)  # MemoryMode
    saveIntermediatesChanged = Signal(bool)
    autoResumeChanged = Signal(bool)
    pauseOnFailureChanged = Signal(bool)
    learningLogChanged = Signal(bool)
    themeChanged = Signal(str)
    samplerDefaultsChanged = Signal(object)  # dict
    expandDynamicPromptsChanged = Signal(bool)
    combinatorialPromptsChanged = Signal(bool)
    maxCombinationsChanged = Signal(int)
    wildcardsDirChanged = Signal(object)  # Path | None

    def __init__(
        self, settings: QSettings, *, models_dir: Path, output_dir: Path, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.qsettings = settings
        self.default_models_dir = models_dir
        self.default_output_dir = output_dir

    output_dir = _Preference[Path](
        "paths/output_dir", _path, lambda p: p.default_output_dir, "Where runs write their folders."
    )
    models_dir = _Preference[Path](
        MODELS_DIR_KEY, _path, lambda p: p.default_models_dir, "An A1111-style models folder."
    )
    memory_mode = _Preference[MemoryMode](
        "engine/memory_mode", _memory, lambda _p: MemoryMode.GPU, "Where the engine keeps weights."
    )
    save_intermediates = _Preference[bool](
        "paths/save_intermediates",
        _flag,
        lambda _p: False,
        "Keep each stage's images too (``intermediates/`` in the run folder), like the CLI's "
        "``--save-intermediates``.",
        write=bool,
    )
    auto_resume = _Preference[bool](
        "queue/auto_resume",
        _flag,
        lambda _p: False,
        "Queue jobs interrupted by a crash or by closing the app again at start.",
        write=bool,
    )
    pause_on_failure = _Preference[bool](
        "queue/pause_on_failure", _flag, lambda _p: False, "Pause the queue when a job fails.", write=bool
    )
    learning_log = _Preference[bool](
        "engine/learning_log",
        _flag,
        lambda _p: False,
        "Append one JSON line per run to the learning log (``learning/runs.jsonl``), like the CLI's "
        "``--learning-log``.",
        write=bool,
    )
    theme = _Preference[str](THEME_KEY, _theme, lambda _p: DEFAULT_THEME, "System, light or dark.")
    sampler_defaults = _Preference[dict[str, Any]](
        "engine/sampler_settings",
        _json_object,
        lambda _p: {},
        "A1111's Settings > Sampler parameters, RNG source, eta noise seed delta and emphasis "
        "(RunConfig keys ``rng_source``, ``eta_noise_seed_delta``, ``emphasis``, "
        "``sampler_settings``), as the Sampler settings dialog saved them; ``{}`` = A1111's defaults.",
        write=json.dumps,
    )

    # The window's dynamic prompts (gui/dynamic_prompts.py; docs/sweeps.md).
    expand_dynamic_prompts = _Preference[bool](
        "dynamic/expand", _flag, lambda _p: True, "Generate expands {a|b} and __wildcards__.", write=bool
    )
    combinatorial_prompts = _Preference[bool](
        "dynamic/combinatorial",
        _flag,
        lambda _p: False,
        "Every combination instead of random draws.",
        write=bool,
    )
    max_combinations = _Preference[int](
        "dynamic/max_combinations", _count, lambda _p: 100, "Combinatorial mode makes at most this many."
    )
    wildcards_dir = _Preference[Path | None](
        "dynamic/wildcards_dir",
        _path,
        lambda _p: None,
        "The wildcards folder chosen; None: A1111's sd-dynamic-prompts one beside the models folder, "
        "else ours (``wildcards/`` in the data folder).",
        write=lambda path: "" if path is None else str(path),
    )

    @property
    def learning_log_file(self) -> Path | None:
        """The learning log's file while the learning log is on, else None."""
        return default_learning_log_path() if self.learning_log else None

    # -- not preferences: the last config and the window's layout ------------------------------
    def last_config(self) -> RunConfig:
        """The config used last time, or the defaults (a stale or broken one is logged and dropped)."""
        text = _as_text(self.qsettings.value("config/last"))
        if text is None:
            return RunConfig()
        try:
            return RunConfig.from_json(text)
        except ConfigError as exc:
            log.warning("the saved settings could not be restored: %s", exc)
            return RunConfig()

    def save_config(self, config: RunConfig) -> None:
        self.qsettings.setValue("config/last", config.to_json(indent=None))

    def window_layout(self) -> WindowLayout:
        def data(key: str) -> QByteArray | None:
            value = self.qsettings.value(key)
            return value if isinstance(value, QByteArray) else None

        tab = self.qsettings.value("window/tab")
        index = int(tab) if isinstance(tab, int | str) and str(tab).isdigit() else None
        return WindowLayout(data("window/geometry"), data("window/state"), data("window/splitter"), index)

    def save_window_layout(self, layout: WindowLayout) -> None:
        for key, value in (
            ("window/geometry", layout.geometry),
            ("window/state", layout.state),
            ("window/splitter", layout.splitter),
            ("window/tab", layout.tab),
        ):
            if value is not None:
                self.qsettings.setValue(key, value)
        self.qsettings.sync()
