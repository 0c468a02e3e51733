"""Settings the window and the CLI share: the models folder (issue 17, item 12) and the workers.

One small JSON file, ``settings.json`` in the user data folder, holds ``{"models_dir": "...",
"workers": "local", "workers_models_dir": "..."}`` (see :func:`saved_workers`).
The window writes it when the user chooses a folder; every command reads it, so ``stablenew-qt
run`` uses the folder chosen in the window. :func:`models_dir` decides which folder applies:

1. the command line's ``--models-dir`` (a folder that does not exist is a ConfigError: exit 2);
2. ``$STABLENEW_MODELS_DIR``;
3. the saved folder (ignored, with a log line, once it no longer exists);
4. :func:`~stablenew_qt.core.paths.default_models_dir` (``./models`` or the data folder's).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from .atomic_files import atomic_replace_bytes
from .errors import ConfigError
from .outputs import app_data_dir
from .paths import default_models_dir
from .workers import WorkersSetting

log = logging.getLogger(__name__)

SETTINGS_NAME = "settings.json"
_MODELS_KEY = "models_dir"
_WORKERS_KEY = "workers"
_WORKERS_MODELS_KEY = "workers_models_dir"
#: The window writes from more than one thread (its models folder, the Workers dialog); each write
#: reads the file, changes its keys and replaces it, so two at once could drop the other's keys.
_WRITING = threading.Lock()


def settings_file() -> Path:
    """The shared settings file in the user data folder."""
    return app_data_dir() / SETTINGS_NAME


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring the settings file %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def saved_models_dir(path: Path | None = None) -> Path | None:
    """The models folder saved by the window (None when none is saved)."""
    value = _read(path or settings_file()).get(_MODELS_KEY)
    return Path(value).expanduser() if isinstance(value, str) and value else None


def _write(target: Path, changes: dict[str, object]) -> None:
    with _WRITING:
        data = _read(target)
        data.update(changes)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_replace_bytes(target, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def save_models_dir(folder: Path, path: Path | None = None) -> None:
    """Remember ``folder`` as the models folder for the window and the CLI."""
    _write(path or settings_file(), {_MODELS_KEY: str(folder)})


def saved_workers(path: Path | None = None) -> WorkersSetting:
    """The workers setting saved by the window (this GPU only when none is saved, or when the
    saved text no longer parses: logged)."""
    data = _read(path or settings_file())
    text = data.get(_WORKERS_KEY)
    folder = data.get(_WORKERS_MODELS_KEY)
    models = Path(folder).expanduser() if isinstance(folder, str) and folder else None
    try:
        return WorkersSetting.parse(text if isinstance(text, str) else "", models)
    except ConfigError as exc:
        log.warning("ignoring the saved workers setting: %s", exc)
        return WorkersSetting(models_dir=models)


def save_workers(setting: WorkersSetting, path: Path | None = None) -> None:
    """Remember ``setting`` (and its models folder on the nodes, "" for none) for the next start."""
    models = str(setting.models_dir) if setting.models_dir is not None else ""
    _write(path or settings_file(), {_WORKERS_KEY: str(setting), _WORKERS_MODELS_KEY: models})


def checked_models_dir(text: str) -> Path:
    """``text`` as a models folder that exists; ConfigError (exit 2) naming it otherwise."""
    folder = Path(text).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(
            f"{text} {what}: give an existing A1111/Forge models folder (the one holding Stable-diffusion/)",
            "--models-dir",
        )
    return folder


def models_dir(cli_value: str | None = None, path: Path | None = None) -> Path:
    """The models folder that applies (see the module's docstring for the order)."""
    if cli_value:
        return checked_models_dir(cli_value)
    if os.environ.get("STABLENEW_MODELS_DIR"):
        return default_models_dir()
    saved = saved_models_dir(path)
    if saved is not None:
        if saved.is_dir():
            return saved
        log.info("the saved models folder %s is gone; using the default", saved)
    return default_models_dir()
