"""Errors the core raises. Each one carries a message a user can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration: where it is and what to do about it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ConfigError(ValueError):
    """The configuration cannot run as written. Raised before anything runs or is written.

    ``problems`` lists every problem found; ``str(error)`` joins them, one per line.
    """

    def __init__(self, problems: Sequence[ConfigProblem] | str, field: str = "") -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(field, problems)]
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StageError(RuntimeError):
    """A stage failed while running (missing model, incompatible models, engine failure)."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"{stage}: {message}")


class OutOfMemoryError(StageError):
    """The device ran out of memory during a stage. The message says what to lower."""


class CancelRequested(Exception):
    """Raised inside a stage when the run's cancel token has been set."""


class OutputError(RuntimeError):
    """A run's files could not be written or published (disk full, folder gone, permission lost).

    Raised by :mod:`~stablenew_qt.core.outputs`; the runner ends the run in ERROR with this
    message and keeps nothing of it visible.
    """


#: How many characters of a user-supplied text an error message repeats.
SHOWN_CHARS = 80


def shorten(text: object, limit: int = SHOWN_CHARS) -> str:
    """``text`` as it may appear in a message: at most ``limit`` characters of it, then how long
    it really is (``"aaaa… (200000 characters)"``), so a huge name never floods a message."""
    value = str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value)} characters)"
