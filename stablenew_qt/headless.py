"""Headless runs for the CLI: the same AppController the window drives, with a text progress bar,
Ctrl-C to cancel, and exit codes 0 (done), 1 (run error), 2 (config error), 130 (cancelled)."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

from .core.config import RunConfig
from .core.controller import AppController
from .core.events import RunCompleted, RunEvent, RunFailed, StageStarted, StepProgress
from .core.lifecycle import LifecycleState
from .core.outputs import OutputSettings
from .core.paths import log_file
from .core.runner import PipelineRunner
from .engine.executor import DiffusersExecutor, EngineSettings

EXIT_OK, EXIT_RUN_ERROR, EXIT_CONFIG_ERROR, EXIT_CANCELLED = 0, 1, 2, 130


@contextmanager
def app_logging(verbose: bool = False) -> Iterator[Path]:
    """While active, details go to the log file and the terminal gets warnings (info with
    ``verbose``). Yields the log file's path; the handlers are removed on exit."""
    path = log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    previous_level = root.level
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    root.addHandler(console)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.removeHandler(console)
        handler.close()
        root.setLevel(previous_level)


class TextProgress:
    """One progress line per stage on a terminal (``\\r`` redraws), plain lines elsewhere."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = stream or sys.stderr
        self.tty = self.stream.isatty()

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, StageStarted):
            self._write(
                f"stage {event.index + 1}/{event.total_stages} {event.stage.value}", newline=not self.tty
            )
        elif isinstance(event, StepProgress) and self.tty:
            filled = int(20 * event.step / max(event.total_steps, 1))
            bar = "#" * filled + "." * (20 - filled)
            label = f"stage {event.index + 1}/{event.total_stages} {event.stage.value}"
            self._write(f"{label} [{bar}] {event.step}/{event.total_steps} {event.label}", newline=False)
        elif isinstance(event, RunCompleted):
            self._write(f"done in {event.seconds:.1f}s: {event.output_dir}", newline=True)
        elif isinstance(event, RunFailed) and self.tty:
            self._write("", newline=True)

    def _write(self, text: str, newline: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if newline else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def run_headless(
    config: RunConfig,
    output_dir: Path,
    engine: EngineSettings,
    *,
    save_intermediates: bool = False,
    stream: TextIO | None = None,
) -> int:
    """Run ``config`` to the end and return the CLI exit code. Ctrl-C cancels cleanly."""
    stream = stream or sys.stderr
    executor = DiffusersExecutor(engine)
    runner = PipelineRunner(executor, OutputSettings(output_dir, save_intermediates))
    controller = AppController(runner)
    controller.subscribe(TextProgress(stream))
    controller.validate(config)  # ConfigError before anything is loaded

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        if controller.cancel():
            stream.write("\ncancelling (Ctrl-C again to abort)...\n")
            signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = controller.run_pipeline(config)
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.status is LifecycleState.COMPLETED:
        for path in result.image_paths:
            print(path)
        return EXIT_OK
    if result.status is LifecycleState.CANCELLED:
        stream.write("cancelled: nothing was saved\n")
        return EXIT_CANCELLED
    stream.write(f"error: {result.error}\n(details in {log_file()})\n")
    return EXIT_RUN_ERROR
