"""Composition root: the diffusers engine, the Qt window and the core's EngineSession, wired.

This is the one module that may import both ``gui`` and ``engine``. Nothing here imports torch:
the DiffusersExecutor is only constructed, and loads torch on its first job (or its warm-up), on the
engine thread. The window opens its session with core's ``open_session`` over the queue file in the
user data folder (a temporary queue, and a warning, when that file cannot be used). The model
combos list names only (demo model names without building them).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from .core.config import RunConfig
from .core.errors import ConfigError, ConfigProblem
from .core.executor import Engine
from .core.job_runner import JobRunnerFactory
from .core.options import ExitCode, MemoryMode
from .core.queue import default_queue_path
from .core.workers import WorkersSetting
from .gui.services import AppServices, ModelChoices

log = logging.getLogger(__name__)

APP_NAME = "StableNewQt"
#: The stylesheet, icon and example presets: package data (``stablenew_qt/resources/``), found
#: through importlib.resources in a source checkout and in an installed wheel alike.
RESOURCES = Path(str(files("stablenew_qt") / "resources"))
STYLE_SHEET = RESOURCES / "style.qss"
APP_ICON = RESOURCES / "icons" / "stablenew.svg"
PRESETS = RESOURCES / "presets"


def make_engine(models_dir: Path, memory_mode: MemoryMode) -> Engine:
    """A DiffusersExecutor for ``models_dir`` (cheap: no torch import until its first job)."""
    from .engine.executor import DiffusersExecutor, EngineSettings, default_trust_file

    settings = EngineSettings(models_dir=models_dir, memory_mode=memory_mode, trust_file=default_trust_file())
    return DiffusersExecutor(settings)


def trust_detector(path: Path, sha256: str, trust_list: Path | None = None) -> None:
    """Trust ``path`` in the engine's trust list (default: the app data folder's), but only if its
    bytes still have the SHA-256 the user was shown. Raises OSError when they do not, when the file
    cannot be read or when the list cannot be written.
    """
    from .engine.adetailer.detector import DetectorTrust, file_sha256
    from .engine.errors import ModelError
    from .engine.executor import default_trust_file

    try:
        current = file_sha256(path)
        if current != sha256:
            raise OSError(f"{path.name} changed since it was checked (SHA-256 now {current}); run again")
        DetectorTrust(trust_list or default_trust_file()).trust(path)
    except ModelError as exc:
        raise OSError(str(exc)) from exc


def list_models(models_dir: Path) -> ModelChoices:
    """Names of the demo models and of the models installed under ``models_dir`` (nothing is loaded)."""
    from .engine.models import installed_names

    return ModelChoices(**dataclasses.asdict(installed_names(models_dir)))


def workers_job_runner(
    setting: WorkersSetting, models_dir: Path, memory_mode: MemoryMode
) -> JobRunnerFactory:
    """The dispatcher over Ray workers for ``setting`` (on), each worker's engine built for
    ``models_dir`` (or the setting's own workers' folder) and ``memory_mode``. Imports the cluster
    package now and Ray only when the first job starts the pool (on the engine thread)."""
    from .cluster import job_runner_factory
    from .engine.executor import EngineSettings, default_trust_file

    engine = EngineSettings(models_dir=models_dir, memory_mode=memory_mode, trust_file=default_trust_file())
    return job_runner_factory(setting, engine)


def check_families(models_dir: Path, config: RunConfig) -> list[ConfigProblem]:
    """The refiner and hires checkpoints of ``config`` that cannot follow its base model, from the
    checkpoints' headers under ``models_dir`` (nothing loads, no torch): the engine's own run-time
    check, for the window to run off the GUI thread as the user types. Names that do not resolve
    to a file (missing, a hub id, a demo model) are left to the engine."""
    from .engine.errors import ModelError
    from .engine.family import ModelFamily, detect_family, model_family_problems
    from .engine.models import ModelCatalog

    catalog = ModelCatalog(models_dir)

    def family_of(name: str) -> ModelFamily:
        entry = catalog.resolve_checkpoint(name)
        if entry.path is None:
            raise ModelError(f"{name} has no local file to read")
        return detect_family(entry.path)

    return model_family_problems(family_of, config)


def default_services() -> AppServices:
    """The real engine, the default models folder and the default output folder."""
    from .core.outputs import default_output_dir
    from .core.user_settings import models_dir

    return AppServices(
        make_engine,
        list_models,
        models_dir(),
        default_output_dir(),
        trust_detector=trust_detector,
        job_runner_for=workers_job_runner,
        check_families=check_families,
    )


def _models_dir_option(args: list[str]) -> Path | None:
    """The folder given as ``--models-dir DIR`` (or ``--models-dir=DIR``); ConfigError if it does
    not exist; None when not given."""
    from .core.user_settings import checked_models_dir

    for index, arg in enumerate(args):
        if arg == "--models-dir":
            if index + 1 >= len(args):
                raise ConfigError("give a folder after --models-dir", "--models-dir")
            return checked_models_dir(args[index + 1])
        if arg.startswith("--models-dir="):
            return checked_models_dir(arg.split("=", 1)[1])
    return None


def _save_for_the_cli(folder: Path) -> None:
    """Remember ``folder`` in settings.json, as choosing it in the Models menu does (issue 17)."""
    from .core.user_settings import save_models_dir

    try:
        save_models_dir(folder)
    except OSError as exc:  # the window still opens on it; only the CLI does not learn it
        log.warning("cannot save the models folder for the CLI: %s", exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Open the main window and run the event loop; returns the exit code.

    ``--exit-after-show`` closes the window as soon as it has been shown (smoke tests, timing).
    """
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .gui.main_window import MainWindow
    from .gui.preferences import MODELS_DIR_KEY
    from .gui.theme import apply_saved_theme, apply_stylesheet

    args = list(argv or [])
    try:
        chosen = _models_dir_option(args)
    except ConfigError as exc:
        print(f"Config Error: {exc}", file=sys.stderr)
        return int(ExitCode.CONFIG_ERROR)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "stablenew-qt"])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    settings = QSettings(APP_NAME, APP_NAME)
    if chosen is not None:  # --models-dir: this folder from now on, for the window and the CLI
        settings.setValue(MODELS_DIR_KEY, str(chosen))
        _save_for_the_cli(chosen)
    apply_saved_theme(app, settings)  # before the stylesheet, which wraps the native style
    apply_stylesheet(app, STYLE_SHEET)
    if APP_ICON.is_file():
        app.setWindowIcon(QIcon(str(APP_ICON)))
    window = MainWindow(default_services(), settings, queue_path=default_queue_path())
    window.show()
    if window.session.queue_problem is not None:
        window.report_queue_problem(window.session.queue_problem)
    if "--exit-after-show" in args:
        QTimer.singleShot(0, window.close)
    else:
        # Import torch and list models on the engine thread now, while the user reads the
        # window, so the first Generate does not stall the GUI with those imports.
        QTimer.singleShot(0, window.host.warm_up)
    return int(app.exec())
