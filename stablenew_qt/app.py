"""Composition root: wires the diffusers engine and the Qt window to the core's AppController.

This is the one module that may import both ``gui`` and ``engine``. Nothing here imports torch:
the DiffusersExecutor is only constructed, and loads torch on its first run, on the engine thread.
The model combos list names only (demo model names without building them).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .core.executor import Executor
from .gui.services import AppServices, ModelChoices

APP_NAME = "StableNewQt"


def make_executor(models_dir: Path, memory_mode: str) -> Executor:
    """A DiffusersExecutor for ``models_dir`` (cheap: no torch import until its first run)."""
    from .engine.executor import DiffusersExecutor, EngineSettings

    mode = memory_mode if memory_mode in ("gpu", "model_offload", "sequential_offload") else "gpu"
    return DiffusersExecutor(EngineSettings(models_dir=models_dir, memory_mode=mode))  # type: ignore[arg-type]


def list_models(models_dir: Path) -> ModelChoices:
    """Names of the demo models and of the models installed under ``models_dir`` (nothing is loaded)."""
    from .engine.demo import DEMO_MODELS
    from .engine.models import ModelCatalog

    catalog = ModelCatalog(models_dir)
    installed = tuple(e.name for e in catalog.checkpoints())
    return ModelChoices(
        checkpoints=DEMO_MODELS + installed,
        vaes=tuple(e.name for e in catalog.vaes()),
        upscalers=tuple(e.name for e in catalog.upscalers()),
        detectors=tuple(e.name for e in catalog.detectors()),
    )


def default_services() -> AppServices:
    """The real engine, the default models folder and the default output folder."""
    from .core.outputs import default_output_dir
    from .core.paths import default_models_dir

    return AppServices(make_executor, list_models, default_models_dir(), default_output_dir())


def main(argv: Sequence[str] | None = None) -> int:
    """Open the main window and run the event loop; returns the exit code.

    ``--exit-after-show`` closes the window as soon as it has been shown (smoke tests, timing).
    """
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from .gui.main_window import MainWindow

    args = list(argv or [])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "stablenew-qt"])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    window = MainWindow(default_services(), QSettings(APP_NAME, APP_NAME))
    window.show()
    if "--exit-after-show" in args:
        QTimer.singleShot(0, window.close)
    return int(app.exec())
