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
