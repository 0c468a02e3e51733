"""FamilyCheck: the refiner/hires checkpoint family check while the user types (issue 17).

The engine checks, when a job starts, that the txt2img refiner is an SDXL refiner after an SDXL
base and that the hires checkpoint has the first pass's family, from the safetensors headers.
This runs the same check (``AppServices.check_families``) whenever one of the fields it reads
changes, on a thread of its own pool (reading headers is disk work; the GUI thread never waits on
it). Each request has a number; a result arriving after a newer request was made is dropped, so
the card shows only what the current fields say.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.config import RunConfig
from ..core.errors import ConfigProblem

log = logging.getLogger(__name__)

Check = Callable[[Path, RunConfig], Sequence[ConfigProblem]]


def _inputs(models_dir: Path, config: RunConfig) -> tuple[object, ...]:
    """What the check reads: a request with the same inputs as the last one is not sent again."""
    t = config.txt2img
    return (
        models_dir,
        t.enabled,
        t.model,
        t.refiner_enabled,
        t.refiner_model_name,
        t.hires_enabled,
        t.hires_checkpoint,
    )


class _Result(QObject):
    ready = Signal(int, object)  # request number, tuple[ConfigProblem, ...]


class _Job(QRunnable):
    def __init__(self, number: int, check: Check, models_dir: Path, config: RunConfig, result: _Result):
        super().__init__()
        self.number, self.check, self.models_dir, self.config, self.result = (
            number,
            check,
            models_dir,
            config,
            result,
        )

    def run(self) -> None:
        try:
            problems = tuple(self.check(self.models_dir, self.config))
        except Exception:  # a check that breaks must not break typing: logged, no problems shown
            log.exception("the checkpoint family check failed")
            problems = ()
        self.result.ready.emit(self.number, problems)


class FamilyCheck(QObject):
    """``problems`` are the current fields' family problems; ``problemsChanged`` says they changed."""

    problemsChanged = Signal()

    def __init__(self, check: Check | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._check = check
        self.problems: tuple[ConfigProblem, ...] = ()
        self._number = self._answered = 0
        self._last: tuple[object, ...] | None = None
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._result = _Result(self)
        self._result.ready.connect(self._on_ready)  # queued: emitted on the pool's thread

    @property
    def pending(self) -> bool:
        """True while a request's answer has not arrived."""
        return self._answered != self._number

    def request(self, models_dir: Path, config: RunConfig) -> None:
        """Check ``config`` against the checkpoints in ``models_dir`` (no-op if nothing it reads changed)."""
        if self._check is None:
            return
        inputs = _inputs(models_dir, config)
        if inputs == self._last:
            return
        self._last = inputs
        self._number += 1
        self._pool.clear()  # a request still waiting is stale already
        self._pool.start(_Job(self._number, self._check, models_dir, config, self._result))

    def _on_ready(self, number: int, problems: tuple[ConfigProblem, ...]) -> None:
        if number != self._number:
            return  # stale: the fields changed since it was asked
        self._answered = number
        if problems != self.problems:
            self.problems = problems
            self.problemsChanged.emit()

    def shutdown(self) -> None:
        """Drop waiting requests and wait for the running one (reading a header: quick)."""
        self._check = None
        self._pool.clear()
        self._pool.waitForDone()
