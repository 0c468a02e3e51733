"""Errors the engine raises about models, each with a message the user can act on."""

from __future__ import annotations

from pathlib import Path


class ModelError(Exception):
    """A model cannot be used: missing, of the wrong family, or in an unsafe format.

    The message is for the user and says what was found and what to do. The executor wraps it in
    core's ``StageError`` together with the stage name and the failure's kind.
    """


class DeviceUnavailableError(ModelError, ValueError):
    """The device asked for is not there (``--device cuda`` on a machine without a CUDA GPU)."""


class MissingModelError(ModelError):
    """A model the config names is not there (not installed, not chosen, not downloadable now).
    ``path`` is the file or folder looked for, when the config named one."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        self.path = path
        super().__init__(message)


class UnreadableModelError(ModelError):
    """A model file is damaged or malformed (a bad safetensors header, a broken config, a FIFO
    where a file should be), as opposed to a readable file of the wrong kind. Listings show such
    a file as "unreadable: <reason>"."""
