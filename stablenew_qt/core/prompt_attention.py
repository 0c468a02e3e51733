"""A1111's attention syntax: ``(x)``, ``[x]``, ``(x:w)``, escapes and ``BREAK``, as per-piece weights.

This is the parse A1111 1.10 runs on each scheduled prompt text right before tokenizing it
(``prompt_parser.parse_prompt_attention``), re-implemented from its documented behaviour:

- ``(`` multiplies what follows its position by 1.1 when it closes, ``[`` by 1/1.1, ``(x:w)`` by
  ``w``; nesting multiplies (inner brackets first, so the floats are A1111's bit for bit);
- ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are the literal characters; a backslash before anything else is
  dropped; a closer with no open bracket is literal text, and a ``:`` that is not ``:<number>)``;
- a bracket never closed still applies its factor to everything after it (round brackets first,
  then square, in the order they were opened);
- ``BREAK`` (upper case, a whole word) inside plain text becomes the marker ``("BREAK", -1.0)``.
  A BREAK inside brackets has its -1 multiplied like any piece; A1111 then no longer sees a marker
  and tokenizes the word "BREAK" with that (negative) weight. We keep that, since it is what A1111
  draws;
- runs of equal weight are merged; an empty prompt is ``[("", 1.0)]``.

Pure Python; weights are floats exactly as A1111 computes them.
"""

from __future__ import annotations

import re

BREAK_WORD = "BREAK"
BREAK_WEIGHT = -1.0
ROUND_FACTOR = 1.1
SQUARE_FACTOR = 1 / 1.1

# ``:<number>)`` closes a round bracket with that weight; the number is as loose as A1111's
# (digits and dots in any order), so "1.2.3" is caught when converted, not here.
_WEIGHT_CLOSE = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
_PLAIN_RUN = re.compile(r"[^\\()\[\]:]+")
_BREAK_SPLIT = re.compile(r"\s*\bBREAK\b\s*", re.S)
_ESCAPABLE = "()[]\\"


class PromptSyntaxError(ValueError):
    """A prompt A1111 cannot run either (it raises on the same text); the message says what to fix."""


def is_break(piece: tuple[str, float]) -> bool:
    """True for the marker that starts a new 75-token chunk."""
    return piece[0] == BREAK_WORD and piece[1] == BREAK_WEIGHT


def parse_attention(text: str) -> list[tuple[str, float]]:
    """``text`` as ``(piece, weight)`` pairs, BREAK markers included (A1111's ``parse_prompt_attention``).

    >>> parse_attention("an (important) word")
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]

    Raises :class:`PromptSyntaxError` for a weight such as ``(x:1.2.3)`` that is not a number.
    """
    pieces: list[list[str | float]] = []
    round_open: list[int] = []
    square_open: list[int] = []
    position = 0
    while position < len(text):
        position = _consume(text, position, pieces, round_open, square_open)
    for start in round_open:
        _multiply_from(pieces, start, ROUND_FACTOR)
    for start in square_open:
        _multiply_from(pieces, start, SQUARE_FACTOR)
    if not pieces:
        return [("", 1.0)]
    return _merge_equal_weights(pieces)


def _consume(
    text: str,
    position: int,
    pieces: list[list[str | float]],
    round_open: list[int],
    square_open: list[int],
) -> int:
    """Read one token at ``position``, update the state, return where the next token starts."""
    char = text[position]
    if char == "\\":
        escaped = text[position + 1 : position + 2]
        if escaped and escaped in _ESCAPABLE:
            pieces.append([escaped, 1.0])
            return position + 2
        pieces.append(["", 1.0])  # a lone backslash is dropped; the next character stays
        return position + 1
    if char == "(":
        round_open.append(len(pieces))
        return position + 1
    if char == "[":
        square_open.append(len(pieces))
        return position + 1
    if char == ":":
        weighted = _WEIGHT_CLOSE.match(text, position)
        if weighted is not None and round_open:
            _multiply_from(pieces, round_open.pop(), _weight_value(weighted.group(1), text))
            return weighted.end()
        literal = weighted.group(0) if weighted is not None else ":"
        _append_plain(pieces, literal)
        return position + len(literal)
    if char == ")" and round_open:
        _multiply_from(pieces, round_open.pop(), ROUND_FACTOR)
        return position + 1
    if char == "]" and square_open:
        _multiply_from(pieces, square_open.pop(), SQUARE_FACTOR)
        return position + 1
    if char in ")]":
        _append_plain(pieces, char)
        return position + 1
    run = _PLAIN_RUN.match(text, position)
    assert run is not None  # every other character starts a plain run
    _append_plain(pieces, run.group(0))
    return run.end()


def _weight_value(number: str, text: str) -> float:
    try:
        return float(number)
    except ValueError:
        raise PromptSyntaxError(
            f"the attention weight {number!r} in the prompt {text[:60]!r} is not a number; "
            "write it like (word:1.2)"
        ) from None


def _append_plain(pieces: list[list[str | float]], text: str) -> None:
    for index, part in enumerate(_BREAK_SPLIT.split(text)):
        if index > 0:
            pieces.append([BREAK_WORD, BREAK_WEIGHT])
        pieces.append([part, 1.0])


def _multiply_from(pieces: list[list[str | float]], start: int, factor: float) -> None:
    for piece in pieces[start:]:
        piece[1] = float(piece[1]) * factor


def _merge_equal_weights(pieces: list[list[str | float]]) -> list[tuple[str, float]]:
    merged: list[tuple[str, float]] = []
    for text, weight in pieces:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + str(text), merged[-1][1])
        else:
            merged.append((str(text), float(weight)))
    return merged
