"""Errors the engine raises about models, each with a message the user can act on."""

from __future__ import annotations


class ModelError(Exception):
    """A model cannot be used: missing, of the wrong family, or in an unsafe format.

    The message is for the user and says what was found and what to do. The executor wraps it in
    core's ``StageError`` together with the stage name.
    """


class UnreadableModelError(ModelError):
    """A model file is damaged or malformed (a bad safetensors header, a broken config, a FIFO
    where a file should be), as opposed to a readable file of the wrong kind. Listings show such
    a file as "unreadable: <reason>"."""
