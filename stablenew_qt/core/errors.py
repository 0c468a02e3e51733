"""Errors the core raises, and the typed cause a failure carries to the window and the queue.

Each error carries a message a user can act on. A failed run or job also carries a
:class:`FailureCause`: what kind of failure it was (an untrusted detector with its path and
SHA-256, a missing model, out of memory, a config error, ...) so the window can branch on it
(offer the trust dialog, say what to lower) without reading the message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration: where it is and what to do about it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class FailureKind(StrEnum):
    """Why a run or job did not complete (stored in the queue as these values)."""

    #: An ADetailer detector (a pickle) is not trusted yet: ``path`` and ``sha256`` name it.
    UNTRUSTED_DETECTOR = "untrusted_detector"
    #: A model, VAE, upscaler or detector the config names is not installed (``path``/``name``).
    MISSING_MODEL = "missing_model"
    #: The device ran out of memory; the message says what to lower.
    OUT_OF_MEMORY = "out_of_memory"
    #: The config cannot run as written (for example its input image is gone).
    CONFIG = "config"
    #: A stage failed for a reason its message explains (models that do not fit, a broken file).
    STAGE = "stage"
    #: The run's files could not be written or published (disk full, folder gone, permission).
    OUTPUT = "output"
    #: The user cancelled the run or job.
    CANCELLED = "cancelled"
    #: The app stopped (closed, crashed or was killed) while the job ran.
    INTERRUPTED = "interrupted"
    #: A bug or an error nobody foresaw; the traceback is in the log.
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class FailureCause:
    """What went wrong, as a value: ``kind`` to branch on, ``message`` for the user, and what the
    kind needs (``stage`` it happened in; ``path``/``sha256`` of the file concerned)."""

    kind: FailureKind
    message: str
    stage: str | None = None
    path: Path | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the queue stores it beside the job)."""
        data: dict[str, Any] = {"kind": self.kind.value, "message": self.message}
        if self.stage is not None:
            data["stage"] = self.stage
        if self.path is not None:
            data["path"] = str(self.path)
        if self.sha256 is not None:
            data["sha256"] = self.sha256
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FailureCause:
        """The cause :meth:`to_dict` wrote; an unknown kind reads as UNEXPECTED (a newer writer)."""
        try:
            kind = FailureKind(str(data.get("kind")))
        except ValueError:
            kind = FailureKind.UNEXPECTED
        path = data.get("path")
        return cls(
            kind,
            str(data.get("message", "")),
            stage=data.get("stage"),
            path=Path(path) if path else None,
            sha256=data.get("sha256"),
        )


class ConfigError(ValueError):
    """The configuration cannot run as written. Raised before anything runs or is written.

    ``problems`` lists every problem found; ``str(error)`` joins them, one per line.
    """

    def __init__(self, problems: Sequence[ConfigProblem] | str, field: str = "") -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(field, problems)]
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def cause(self) -> FailureCause:
        return FailureCause(FailureKind.CONFIG, str(self))


class StageError(RuntimeError):
    """A stage failed while running (missing model, incompatible models, engine failure).

    ``kind`` says why (STAGE unless the engine knows better: MISSING_MODEL, UNTRUSTED_DETECTOR);
    ``path`` and ``sha256`` name the file concerned when there is one.
    """

    default_kind = FailureKind.STAGE

    def __init__(
        self,
        stage: str,
        message: str,
        *,
        kind: FailureKind | None = None,
        path: Path | None = None,
        sha256: str | None = None,
    ) -> None:
        self.stage = stage
        self.kind = kind or self.default_kind
        self.path = path
        self.sha256 = sha256
        super().__init__(f"{stage}: {message}")

    @property
    def cause(self) -> FailureCause:
        return FailureCause(self.kind, str(self), self.stage, self.path, self.sha256)


class OutOfMemoryError(StageError):
    """The device ran out of memory during a stage. The message says what to lower."""

    default_kind = FailureKind.OUT_OF_MEMORY


class CancelRequested(Exception):
    """Raised inside a stage when the run's cancel token has been set."""


class OutputError(RuntimeError):
    """A run's files could not be written or published (disk full, folder gone, permission lost).

    Raised by :mod:`~stablenew_qt.core.outputs`; the runner ends the run in FAILED with this
    message and keeps nothing of it visible.
    """

    @property
    def cause(self) -> FailureCause:
        return FailureCause(FailureKind.OUTPUT, str(self))


#: How many characters of a user-supplied text an error message repeats.
SHOWN_CHARS = 80


def shorten(text: object, limit: int = SHOWN_CHARS) -> str:
    """``text`` as it may appear in a message: at most ``limit`` characters of it, then how long
    it really is (``"aaaa… (200000 characters)"``), so a huge name never floods a message."""
    value = str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value)} characters)"
