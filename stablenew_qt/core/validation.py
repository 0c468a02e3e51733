"""Turn pydantic validation errors into ConfigProblems a user understands."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ConfigProblem, shorten

_TYPE_WORDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text in quotes",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "an object with keys",
    "dict_type": "an object with keys",
}


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc`` (list indexes are skipped)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _model_of(field.annotation)
    return model


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "tagged-union")):
            name = shorten(part)  # an unknown key may be anything, of any length
            out += f".{name}" if out else name
    return out


def _unknown_key(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    owner = _model_at(root, loc[:-1])
    valid = list(owner.model_fields) if owner is not None else []
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    shown = repr(shorten(key))
    if close:
        return f"unknown key {shown}; did you mean {close[0]!r}?"
    return f"unknown key {shown}; valid keys here: {', '.join(valid)}"


def _show(value: Any) -> str:
    """A short, safe rendering of a bad input value for a message."""
    if isinstance(value, dict | list | tuple):
        return type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        digits = int(value.bit_length() * 0.30103) + 1  # log10(2) per bit
        return f"a {'negative ' if value < 0 else ''}number with about {digits} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(err: Any, root: type[BaseModel]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    shown = _show(got)
    if kind == "extra_forbidden":
        return _unknown_key(root, tuple(err["loc"]))
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, got {shown}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "less_than_equal": "at most",
            "greater_than": "more than",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values())) if ctx else "?"
        return f"must be {words} {bound}, got {shown}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}, got {shown}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s)"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length', '?')} items, got {ctx.get('actual_length', '?')}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "missing":
        return "is required"
    return f"{err['msg']} (got {shown})"


def problems_from_validation_error(exc: ValidationError, root: type[BaseModel]) -> list[ConfigProblem]:
    """One ConfigProblem per pydantic error, in the order pydantic reports them."""
    problems: list[ConfigProblem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _field_path(loc)
        problems.append(ConfigProblem(path, _describe(err, root)))
    return problems
