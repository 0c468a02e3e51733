"""Background: small pieces of file and CPU work off the GUI thread, answers back on it.

Reading a sweep.json or a styles.csv, writing one, building a sweep to estimate it: each runs on
the owner's own one-thread pool (never the global one), in the order asked; ``on_done(result)``
or ``on_error(message)`` then runs on the GUI thread. A ConfigError or OSError is the user's
message; anything else is logged and reported as one line. After :meth:`shutdown` no callback runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import ConfigError

log = logging.getLogger(__name__)


class _Answer(QObject):
    ready = Signal(object, object, object)  # on_done, on_error, (result, error message or None)


class _Task(QRunnable):
    def __init__(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[str], None],
        answer: _Answer,
    ) -> None:
        super().__init__()
        self.work, self.on_done, self.on_error, self.answer = work, on_done, on_error, answer

    def run(self) -> None:
        try:
            outcome: tuple[Any, str | None] = (self.work(), None)
        except ConfigError as exc:
            outcome = (None, str(exc))
        except OSError as exc:
            outcome = (None, f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
        except Exception as exc:
            log.exception("background work failed")
            outcome = (None, f"failed: {type(exc).__name__}: {exc} (details in the log)")
        self.answer.ready.emit(self.on_done, self.on_error, outcome)


class Background(QObject):
    """One worker thread for its owner's off-GUI work."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._answer = _Answer(self)
        self._answer.ready.connect(self._on_ready)  # queued: emitted on the pool's thread
        self._closed = False

    def run(
        self, work: Callable[[], Any], on_done: Callable[[Any], None], on_error: Callable[[str], None]
    ) -> None:
        """Run ``work()`` on the worker thread; returns at once."""
        if not self._closed:
            self._pool.start(_Task(work, on_done, on_error, self._answer))

    def wait(self, msecs: int = 10_000) -> bool:
        """Wait for the work asked so far (tests; closing)."""
        return self._pool.waitForDone(msecs)

    def _on_ready(
        self, on_done: Callable[[Any], None], on_error: Callable[[str], None], outcome: Any
    ) -> None:
        if self._closed:
            return
        result, error = outcome
        if error is None:
            on_done(result)
        else:
            on_error(error)

    def shutdown(self) -> None:
        """Drop waiting work, wait for the running piece; no callback runs after this."""
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone()
