"""Logging for the commands: details (tracebacks) to the log file, one line per problem on stderr.

Every command runs inside :func:`app_logging`. The terminal never sees a traceback: the console
handler prints the first line of each record's message only, and it leaves out

- errors our own code logs (``stablenew_qt.*`` at ERROR and above): a failed run or job is
  reported by the command itself, in one line, so the log record would only repeat it;
- Python warnings and the chatter of third-party libraries (diffusers, transformers, torch,
  ultralytics) below ERROR, unless ``--verbose``: they go to the log file.

The log file is opened on the first record (so ``plan`` or ``queue list`` create nothing unless
there is something to keep). When the user data folder cannot be written (a read-only
``XDG_DATA_HOME``), it falls back to a folder in the temporary directory, saying so in one
warning line; when that fails too, details are not kept and the command still runs.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from ..core.errors import shorten
from ..core.paths import log_file

_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OUR_LOGGERS = "stablenew_qt"


def fallback_log_file() -> Path:
    """Where the log goes when the user data folder cannot be written."""
    user = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return Path(tempfile.gettempdir()) / f"stablenew-qt-{user}" / "stablenew-qt.log"


def first_line(text: object) -> str:
    """The first non-empty line of ``text``, shortened to a terminal-friendly length."""
    for line in str(text).splitlines():
        if line.strip():
            return shorten(line.rstrip(), 400)
    return ""


class OneLineFormatter(logging.Formatter):
    """``warning: message``: the first line of the message, never a traceback or stack."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {first_line(record.getMessage())}"


class ConsoleFilter(logging.Filter):
    """What reaches the terminal (see the module docstring)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == _OUR_LOGGERS or record.name.startswith(_OUR_LOGGERS + ".")
        if ours:
            return record.levelno < logging.ERROR
        return self.verbose or record.levelno >= logging.ERROR


class FallbackFileHandler(logging.Handler):
    """A file handler that opens its file on the first record (or :meth:`open`), creating the
    folder, and falls back to :func:`fallback_log_file` if that fails (one warning on ``warn``)."""

    def __init__(self, candidates: list[Path], warn: TextIO) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter(_FILE_FORMAT))
        self._candidates = candidates
        self._warn = warn
        self._stream: TextIO | None = None
        self._tried = False
        self.path: Path | None = None

    def open(self) -> Path | None:
        """Open the log file now; its path, or None when no file could be opened."""
        if self._tried:
            return self.path
        self._tried = True
        problems = []
        for path in self._candidates:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._stream = path.open("a", encoding="utf-8")
            except OSError as exc:
                problems.append(f"{shorten(path)} ({exc.strerror or type(exc).__name__})")
                continue
            self.path = path
            break
        if problems:
            kept = f"logging to {self.path}" if self.path else "details of errors are not kept"
            self._warn.write(f"warning: cannot write the log file {problems[0]}; {kept}\n")
        return self.path

    def emit(self, record: logging.LogRecord) -> None:
        if self.open() is None or self._stream is None:
            return
        try:
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except OSError:
            self.handleError(record)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


class AppLogs:
    """The active logging of a command: :attr:`path` opens the log file (if it is not yet)."""

    def __init__(self, handler: FallbackFileHandler) -> None:
        self._handler = handler

    @property
    def path(self) -> Path | None:
        return self._handler.open()

    def open(self) -> Path | None:
        """Open the log file now (a fallback is announced at once); its path, or None."""
        return self._handler.open()

    def details(self) -> str:
        """``(details in FILE)``, for the end of an error line."""
        path = self.path
        return f"(details in {path})" if path else "(no log file could be written)"

    def record_unexpected(self, exc: BaseException) -> None:
        """Write ``exc`` with its traceback to the log file only."""
        text = "".join(traceback.format_exception(exc))
        logging.getLogger(__name__).error("unexpected error\n%s", text.rstrip())


@contextmanager
def app_logging(verbose: bool = False, stream: TextIO | None = None) -> Iterator[AppLogs]:
    """While active, details go to the log file and the terminal gets one line per warning (and
    info with ``verbose``); Python warnings are logged. The handlers are removed on exit."""
    stream = stream or sys.stderr
    root = logging.getLogger()
    previous_level = root.level
    handler = FallbackFileHandler([log_file(), fallback_log_file()], stream)
    console = logging.StreamHandler(stream)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(OneLineFormatter())
    console.addFilter(ConsoleFilter(verbose))
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    root.addHandler(console)
    logging.captureWarnings(True)
    try:
        yield AppLogs(handler)
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.removeHandler(console)
        handler.close()
        root.setLevel(previous_level)
