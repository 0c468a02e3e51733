"""Where the app looks for models and writes logs by default."""

from __future__ import annotations

import os
from pathlib import Path

from .outputs import app_data_dir


def default_models_dir() -> Path:
    """``$STABLENEW_MODELS_DIR``, else ``./models`` when it exists (a checkout, or an A1111
    install's folder), else ``models`` in the user data directory."""
    env = os.environ.get("STABLENEW_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / "models"
    return local if local.is_dir() else app_data_dir() / "models"


def log_file() -> Path:
    """The app's log file: details (tracebacks) that the one-line user messages leave out."""
    return app_data_dir() / "logs" / "stablenew-qt.log"
