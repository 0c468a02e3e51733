"""Ctrl+Up / Ctrl+Down in a prompt box: raise or lower the weight of the words at the cursor, as A1111.

Re-implemented from the behaviour of A1111 1.10's ``javascript/edit-attention.js`` (facts read
there, no code taken); :func:`edit_attention` is that key handler as a pure function of the text
and the selection.

1. **What is edited.** A selection is used as it is. With none, the first of these that encloses
   the cursor: an ``<…>`` tag, a ``(…)`` group, a ``[…]`` group, only when no closing bracket
   lies between the opening one and the cursor and no opening one between the cursor and the
   closing one (so only the innermost group, and nested groups are not looked through). Inside a
   group whose text has a ``:`` followed by a number, the part before its *last* ``:`` is
   selected (``(cat:1.2)`` selects ``cat``, ``<lora:x:0.8>`` selects ``lora:x``), otherwise the
   whole content. Else the word at the cursor, between delimiters (:attr:`WeightKeys.delimiters`,
   A1111's ``keyedit_delimiters`` plus its ``keyedit_delimiters_whitespace``), spaces at its ends
   left out. Backslash escapes are not special here (A1111 does not read them either).
2. **How.** After an ``<``: the number after the selection's ``:`` changes by 0.05
   (``keyedit_precision_extra``), ``1`` stays ``1.0``. Inside ``(x)``/``((x))``/``[x]``…
   (old-style emphasis, the same bracket n times on both sides): first rewritten as
   ``(x:w)``, ``w`` = 1.1**n (or 1.1**-n) rounded to a multiple of 0.1, then stepped. After
   a ``(``: the number after the ``:`` is stepped. Anything else is wrapped as ``(x:1.0)``
   first (trailing spaces of the selection left outside), then stepped. The step is 0.1
   (``keyedit_precision_attention``); the new weight is rounded to 12 significant digits and
   written as JavaScript writes numbers, with ``.0`` after a whole number.
3. **Back to 1.** When a ``(…:w)`` weight becomes exactly 1, the parentheses and the weight go
   (``(cat:1.1)`` Ctrl+Down gives ``cat``); an extra-network tag keeps ``:1.0``.
4. **Selection.** After an edit the selection is the edited text (without brackets and weight),
   so repeated presses keep stepping it. When nothing can be edited (no ``:number`` after the
   selection, an empty word) the text is unchanged and the selection is what step 1 chose.

Positions are Python string indices (code points); A1111's are UTF-16 units, but every boundary
it finds is next to an ASCII character, so the edits are the same. Pure Python.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import NamedTuple

#: A1111's ``keyedit_delimiters`` default (the space is part of it).
DEFAULT_DELIMITERS = ".,\\/!?%^*;:{}=`~() "
#: A1111's ``keyedit_delimiters_whitespace`` default: Tab, Carriage Return, Line Feed.
DEFAULT_WHITESPACE_DELIMITERS = "\t\r\n"

# A group "has a weight" when a ":" is followed by an optional "-" and a digit or a dot.
_HAS_WEIGHT = re.compile(r":-?[0-9.]")
# JavaScript's parseFloat: leading JS white space, then the longest decimal literal (ASCII only).
_JS_SPACE = "\t\n\x0b\x0c\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_FLOAT = re.compile(
    rf"[{_JS_SPACE}]*([+-]?(?:Infinity|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?))"
)
_DECIMALS = Context(prec=60)
_OLD_STYLE_BASE = {"(": 1.1, "[": 1 / 1.1}


@dataclass(frozen=True)
class WeightKeys:
    """A1111's Ctrl+Up/Down settings (Settings → User interface → Prompt editing), at their defaults."""

    precision_attention: float = 0.1  # keyedit_precision_attention: the (text:weight) step
    precision_extra: float = 0.05  # keyedit_precision_extra: the <extra:network:weight> step
    delimiters: str = DEFAULT_DELIMITERS + DEFAULT_WHITESPACE_DELIMITERS

    def __post_init__(self) -> None:
        for name in ("precision_attention", "precision_extra"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, not {value!r}")


class EditResult(NamedTuple):
    """The prompt after one key press and the selection to show (``start <= end``)."""

    text: str
    start: int
    end: int


def edit_attention(
    text: str, start: int, end: int, direction: int, keys: WeightKeys | None = None
) -> EditResult:
    """One Ctrl+Up (``direction`` +1) or Ctrl+Down (-1) on ``text`` with ``text[start:end]`` selected.

    ``start == end`` is a cursor. Returns the new text and selection (see the module docstring);
    raises ValueError for a direction other than ±1 or positions outside the text.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 (Ctrl+Up) or -1 (Ctrl+Down), not {direction!r}")
    start, end = min(start, end), max(start, end)
    if start < 0 or end > len(text):
        raise ValueError(f"selection {start}..{end} is outside a text of {len(text)} characters")
    keys = keys or WeightKeys()
    if start == end:
        start, end = _select_at_cursor(text, start, keys.delimiters)
    unchanged = EditResult(text, start, end)
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    close, delta = ")", keys.precision_attention
    if before == "<":
        close, delta = ">", keys.precision_extra
    elif (before, after) in (("(", ")"), ("[", "]")):
        text, start, end = _old_style_to_weight(text, start, end, keys.precision_attention)
    elif before != "(":
        while end > start and text[end - 1] == " ":
            end -= 1
        if start == end:
            return unchanged
        text = f"{text[:start]}({text[start:end]}:1.0){text[end:]}"
        start, end = start + 1, end + 1
    return _step_weight(text, start, end, close, delta * direction) or unchanged


def _select_at_cursor(text: str, cursor: int, delimiters: str) -> tuple[int, int]:
    for opening, closing in (("<", ">"), ("(", ")"), ("[", "]")):
        block = _enclosing_block(text, cursor, opening, closing)
        if block is not None:
            return block
    return _word_at(text, cursor, delimiters)


def _enclosing_block(text: str, cursor: int, opening: str, closing: str) -> tuple[int, int] | None:
    """The content of the innermost ``opening…closing`` around ``cursor``, up to its last ``:w``."""
    open_at = text.rfind(opening, 0, cursor)
    if open_at == -1 or text.rfind(closing, 0, cursor) > open_at:
        return None
    close_at = text.find(closing, cursor)
    if close_at == -1:
        return None
    reopen_at = text.find(opening, cursor)
    if reopen_at != -1 and reopen_at < close_at:
        return None
    content = text[open_at + 1 : close_at]
    if _HAS_WEIGHT.search(content):
        return open_at + 1, open_at + 1 + content.rfind(":")
    return open_at + 1, close_at


def _word_at(text: str, cursor: int, delimiters: str) -> tuple[int, int]:
    start = end = cursor
    while start > 0 and text[start - 1] not in delimiters:
        start -= 1
    while end < len(text) and text[end] not in delimiters:
        end += 1
    while start < end and text[start] == " ":
        start += 1
    while end > start and text[end - 1] == " ":
        end -= 1
    return start, end


def _old_style_to_weight(text: str, start: int, end: int, precision: float) -> EditResult:
    """``((x))`` (n brackets a side) as ``(x:w)``: w = 1.1**±n to the nearest multiple of ``precision``."""
    opening, closing = text[start - 1], text[end]
    depth = 0
    while (
        start - depth - 1 >= 0
        and end + depth < len(text)
        and text[start - depth - 1] == opening
        and text[end + depth] == closing
    ):
        depth += 1
    try:
        power = _OLD_STYLE_BASE[opening] ** depth
    except OverflowError:  # thousands of brackets: JavaScript gets Infinity
        power = math.inf
    weight = _js_round(power / precision) * precision
    text = f"{text[: start - depth]}({text[start:end]}:{js_number_to_string(weight)}){text[end + depth :]}"
    return EditResult(text, start - depth + 1, end - depth + 1)


def _step_weight(text: str, start: int, end: int, close: str, delta: float) -> EditResult | None:
    """Add ``delta`` to the weight between ``text[end] == ":"`` and ``close``; None if there is none."""
    if end >= len(text) or text[end] != ":":
        return None
    close_at = text.find(close, end + 1)
    if close_at == -1:
        return None
    weight = js_parse_float(text[end + 1 : close_at])
    if weight is None:
        return None
    weight = to_precision(weight + delta, 12)
    if close == ")" and weight == 1:
        return EditResult(text[: start - 1] + text[start:end] + text[close_at + 1 :], start - 1, end - 1)
    written = js_number_to_string(weight)
    if math.isfinite(weight) and weight == int(weight):
        written += ".0"
    return EditResult(text[: end + 1] + written + text[close_at:], start, end)


# -- JavaScript's number conversions, as edit-attention.js relies on them ----------------------


def js_parse_float(text: str) -> float | None:
    """JavaScript's ``parseFloat``: the longest number at the start (after white space); None for NaN."""
    match = _JS_FLOAT.match(text)
    return float(match.group(1)) if match else None


def to_precision(value: float, digits: int) -> float:
    """``parseFloat(value.toPrecision(digits))``: ``digits`` significant digits, ties away from 0."""
    if not math.isfinite(value) or value == 0:
        return value + 0.0  # -0 prints as "0" in JavaScript and parses back as +0
    exact = Decimal(value)
    quantum = Decimal(1).scaleb(exact.adjusted() - digits + 1)
    return float(exact.quantize(quantum, rounding=ROUND_HALF_UP, context=_DECIMALS))


def js_number_to_string(value: float) -> str:
    """JavaScript's ``String(number)``: the shortest round-trip digits, in its fixed/exponent layout."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    if value < 0:
        return "-" + js_number_to_string(-value)
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize(_DECIMALS).as_tuple()
    assert isinstance(exponent, int) and sign == 0
    digits = "".join(map(str, digit_tuple))
    point = exponent + len(digits)  # value = 0.<digits> x 10**point
    if len(digits) <= point <= 21:
        return digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return f"{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return f"0.{'0' * -point}{digits}"
    mantissa = digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if point - 1 >= 0 else '-'}{abs(point - 1)}"


def _js_round(value: float) -> float:
    """``Math.round``: the nearest integer, halves rounded up (towards +infinity)."""
    if not math.isfinite(value):
        return value
    floor = math.floor(value)
    return float(floor + 1 if value - floor >= 0.5 else floor)
