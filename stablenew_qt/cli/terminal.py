"""What the commands share on a terminal: the log file, progress lines, errors and Ctrl-C."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from ..core.errors import ConfigError
from ..core.events import RunCompleted, RunFailed, SessionEvent, StageStarted, StepProgress


def print_config_error(exc: ConfigError) -> None:
    """``Config Error: <problem>`` on stderr (as the window's status bar says it); several
    problems: ``Config Error:`` and one indented line per problem."""
    if len(exc.problems) == 1:
        print(f"Config Error: {exc.problems[0]}", file=sys.stderr)
        return
    print("Config Error:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


class TextProgress:
    """One progress line per stage on a terminal (``\\r`` redraws), plain lines elsewhere.
    Subscribe it to a session: it prints run events and ignores the rest."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = stream or sys.stderr
        self.tty = self.stream.isatty()

    def __call__(self, event: SessionEvent) -> None:
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


@contextmanager
def ctrl_c_cancels(
    cancel: Callable[[], bool], message: str, stopped: Callable[[], None] | None = None
) -> Iterator[None]:
    """While active, the first Ctrl-C calls ``stopped`` and ``cancel`` (printing ``message`` if it
    cancelled something); a second one raises KeyboardInterrupt as usual. The handler touches no
    lock and no file (it may interrupt a queue transaction)."""

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        if stopped is not None:
            stopped()
        if cancel():
            sys.stderr.write(f"\n{message} (Ctrl-C again to abort)...\n")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
