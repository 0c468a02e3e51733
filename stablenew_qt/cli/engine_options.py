"""The options every engine command shares (``--device``, ``--memory-mode``, ...) and what they build."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, shorten
from ..core.files import FileRefused, regular_file_size, user_path
from ..core.hooks import default_learning_log_path
from ..core.options import DevicePreference, MemoryMode
from ..core.outputs import OutputSettings, default_output_dir

if TYPE_CHECKING:
    from ..engine.executor import DiffusersExecutor, EngineSettings

_DEFAULT_LOG = "default"


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir",
        metavar="DIR",
        help="A1111-style models folder (default: the one chosen in the window, else ./models)",
    )
    parser.add_argument(
        "--device",
        choices=[p.value for p in DevicePreference],
        default=DevicePreference.AUTO.value,
        help="where to run (default: auto)",
    )
    modes = "; ".join(f"{mode.value}: {mode.help}" for mode in MemoryMode)
    parser.add_argument(
        "--memory-mode", choices=[m.value for m in MemoryMode], default=MemoryMode.GPU.value, help=modes
    )
    parser.add_argument(
        "--trust-model",
        metavar="FILE",
        action="append",
        help="trust this ADetailer .pt detector (a pickle) from now on; repeat for several files",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--output``, ``--save-intermediates``, ``--learning-log`` and ``-v`` (run, queue run)."""
    parser.add_argument(
        "--output", metavar="DIR", help="output folder (default: runs/ in the user data folder)"
    )
    parser.add_argument("--save-intermediates", action="store_true", help="also keep each stage's images")
    parser.add_argument(
        "--learning-log",
        metavar="FILE",
        nargs="?",
        const=_DEFAULT_LOG,
        help=f"append one JSON line per run to FILE (default: {default_learning_log_path()})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print progress details and log lines")


def output_settings(args: argparse.Namespace) -> OutputSettings:
    return OutputSettings(Path(args.output) if args.output else default_output_dir(), args.save_intermediates)


def learning_log(args: argparse.Namespace) -> Path | None:
    """The learning log's file (None: off, the default)."""
    if not args.learning_log:
        return None
    return default_learning_log_path() if args.learning_log == _DEFAULT_LOG else Path(args.learning_log)


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """The engine's settings; the models folder as :func:`~stablenew_qt.core.user_settings.models_dir`
    decides (``--models-dir``, else the folder chosen in the window, else the default). Raises
    ConfigError (exit 2) for a ``--models-dir`` that does not exist."""
    from ..core.user_settings import models_dir
    from ..engine.executor import EngineSettings

    return EngineSettings(
        models_dir=models_dir(args.models_dir),
        device=DevicePreference(args.device),
        memory_mode=MemoryMode(args.memory_mode),
        trusted_detectors=trusted_detector_files(args.trust_model or ()),
        library_progress_bars=bool(getattr(args, "verbose", False)),  # diffusers' loading bars with -v
    )


def trusted_detector_files(names: Sequence[str]) -> tuple[Path, ...]:
    """The ``--trust-model`` files, each a regular file of detector size: a ConfigError (exit 2)
    before anything loads for a FIFO (it would block), a device (``/dev/zero``), a folder, or a
    path no file can have."""
    from ..engine.adetailer.torch_archive import MAX_DETECTOR_BYTES

    files = []
    for name in names:
        try:
            path = user_path(name)
            regular_file_size(path, MAX_DETECTOR_BYTES)
        except FileRefused as exc:
            raise ConfigError(
                f"{shorten(name)!r}: {exc}; give the YOLO .pt detector file to trust", field="--trust-model"
            ) from None
        files.append(path)
    return tuple(files)


def make_engine(args: argparse.Namespace) -> DiffusersExecutor:
    """The engine the options describe (cheap: it loads on its first job)."""
    from ..engine.executor import DiffusersExecutor

    return DiffusersExecutor(engine_settings(args))
