"""Composition root: wires the diffusers engine and the Qt window to the core's AppController.

This is the one module that may import both ``gui`` and ``engine``. Nothing here imports torch:
the DiffusersExecutor is only constructed, and loads torch on its first run, on the engine thread.
The model combos list names only (demo model names without building them).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .core.executor import Executor
from .core.queue import JobQueue, QueueError, default_queue_path
from .gui.services import AppServices, ModelChoices, UntrustedDetector

APP_NAME = "StableNewQt"
#: The stylesheet and icon of a source checkout (a wheel does not carry them; the app then runs
#: without).
RESOURCES = Path(__file__).resolve().parent.parent / "resources"
STYLE_SHEET = RESOURCES / "style.qss"
APP_ICON = RESOURCES / "icons" / "stablenew.svg"

#: The engine's UntrustedModelError text (engine/adetailer/detector.py), possibly after a
#: "stage: " prefix: the file name, its SHA-256 and, in the CLI hint, the full path.
_UNTRUSTED = re.compile(
    r"detector (?P<name>.+?) is not trusted yet \(SHA-256 (?P<sha256>[0-9a-f]{64})\)\."
    r".*?--trust-model (?P<path>.+) \(CLI\)\.",
    re.DOTALL,
)


def trust_file() -> Path:
    """Where the GUI's engine keeps the detector trust list (the app data folder)."""
    from .core.outputs import app_data_dir

    return app_data_dir() / "trusted-detectors.json"


def make_executor(models_dir: Path, memory_mode: str) -> Executor:
    """A DiffusersExecutor for ``models_dir`` (cheap: no torch import until its first run)."""
    from .engine.executor import DiffusersExecutor, EngineSettings

    mode = memory_mode if memory_mode in ("gpu", "model_offload", "sequential_offload") else "gpu"
    settings = EngineSettings(models_dir=models_dir, memory_mode=mode, trust_file=trust_file())  # type: ignore[arg-type]
    return DiffusersExecutor(settings)


def untrusted_detector(message: str) -> UntrustedDetector | None:
    """The detector file and SHA-256 named by a run error about an untrusted detector, else None.

    The runner keeps only the error's text, so this parses the engine's UntrustedModelError message.
    """
    match = _UNTRUSTED.search(message)
    if match is None:
        return None
    path = Path(match["path"])
    return UntrustedDetector(path, match["sha256"]) if path.name == match["name"] else None


def trust_detector(path: Path, sha256: str, trust_list: Path | None = None) -> None:
    """Trust ``path`` in the engine's trust list (default :func:`trust_file`), but only if its bytes
    still have the SHA-256 the user was shown. Raises OSError when they do not, when the file cannot
    be read or when the list cannot be written.
    """
    from .engine.adetailer.detector import DetectorTrust, file_sha256
    from .engine.errors import ModelError

    try:
        current = file_sha256(path)
        if current != sha256:
            raise OSError(f"{path.name} changed since it was checked (SHA-256 now {current}); run again")
        DetectorTrust(trust_list or trust_file()).trust(path)
    except ModelError as exc:
        raise OSError(str(exc)) from exc


def describe_device(executor: Executor) -> str:
    """The device readout, e.g. "NVIDIA H100 (float16), 12.3 GiB in use" or "CPU (float32)".

    "" while the engine is not loaded.

    Call it on the engine thread: it never builds the engine context (no torch import of its own).
    """
    from .engine.executor import DiffusersExecutor

    return executor.device_summary() if isinstance(executor, DiffusersExecutor) else ""


def warm_up(executor: Executor) -> None:
    """Prepare a DiffusersExecutor on the engine thread (torch import, catalog); others need none."""
    from .engine.executor import DiffusersExecutor

    if isinstance(executor, DiffusersExecutor):
        executor.warm_up()


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

    return AppServices(
        make_executor,
        list_models,
        default_models_dir(),
        default_output_dir(),
        untrusted_detector=untrusted_detector,
        trust_detector=trust_detector,
        describe_device=describe_device,
        warm_up=warm_up,
    )


def open_default_queue() -> tuple[JobQueue | None, str | None]:
    """The JobQueue in its default file, or None and the reason (logged) when that file cannot be
    used (damaged, newer, locked...: the QueueError says what to do; a backup was made)."""
    try:
        return JobQueue(default_queue_path()), None
    except QueueError as exc:
        logging.getLogger(__name__).error("the job queue is unavailable; running without it: %s", exc)
        return None, str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Open the main window and run the event loop; returns the exit code.

    ``--exit-after-show`` closes the window as soon as it has been shown (smoke tests, timing).
    """
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .gui.main_window import MainWindow
    from .gui.theme import apply_saved_theme, apply_stylesheet

    args = list(argv or [])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "stablenew-qt"])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    settings = QSettings(APP_NAME, APP_NAME)
    apply_saved_theme(app, settings)  # before the stylesheet, which wraps the native style
    apply_stylesheet(app, STYLE_SHEET)
    if APP_ICON.is_file():
        app.setWindowIcon(QIcon(str(APP_ICON)))
    queue, queue_problem = open_default_queue()
    window = MainWindow(default_services(), settings, queue=queue)
    window.show()
    if queue_problem is not None:
        window.report_queue_problem(queue_problem)
    if "--exit-after-show" not in args:
        # Import torch and list models on the engine thread now, while the user reads the
        # window, so the first Generate does not stall the GUI with those imports.
        QTimer.singleShot(0, window.engine.warm_up)
    if "--exit-after-show" in args:
        QTimer.singleShot(0, window.close)
    try:
        return int(app.exec())
    finally:
        if queue is not None:
            queue.close()
