"""NovelAI prompt emphasis, rewritten in A1111's syntax.

NovelAI multiplies a part's weight by 1.05 for each ``{}`` around it and divides it by 1.05 for
each ``[]``; its newer models also take ``1.5::text::``. Parentheses are plain text there. A1111
reads ``{}`` as text, ``[]`` as ÷1.1 and ``()`` as ×1.1, so passing NovelAI's prompt through
unchanged would weigh it wrongly: each part is written as ``(text:weight)`` instead, with the
weight NovelAI gave it, and literal parentheses are escaped.
"""

from __future__ import annotations

import math
import re

from .names import format_weight

_BRACE = 1.05
_NUMERIC = re.compile(r"(-?\d+(?:\.\d+)?)::")
_BOUNDARY = " ,\t\n{}[]"


def novelai_to_a1111(prompt: str) -> tuple[str, bool]:
    """The prompt in A1111's emphasis syntax, and whether it had any NovelAI emphasis."""
    segments: list[tuple[str, float]] = []
    stack: list[tuple[str, float]] = []  # (kind, factor) for "{", "[" and numeric "::" groups
    text: list[str] = []
    emphasised = False
    index = 0

    def flush() -> None:
        if text:
            segments.append(("".join(text), math.prod(f for _, f in stack)))
            text.clear()

    while index < len(prompt):
        char = prompt[index]
        numeric = _NUMERIC.match(prompt, index) if (index == 0 or prompt[index - 1] in _BOUNDARY) else None
        if numeric:
            flush()
            stack.append(("::", float(numeric[1])))
            index, emphasised = numeric.end(), True
            continue
        if prompt.startswith("::", index) and any(kind == "::" for kind, _ in stack):
            flush()
            _pop(stack, "::")
            index += 2
            continue
        if char in "{[":
            flush()
            stack.append((char, _BRACE if char == "{" else 1 / _BRACE))
            emphasised = True
        elif char in "}]":
            flush()
            _pop(stack, "{" if char == "}" else "[")
        elif char in "()\\":
            text.append("\\" + char)
        else:
            text.append(char)
        index += 1
    flush()
    return _render(segments), emphasised


def _pop(stack: list[tuple[str, float]], kind: str) -> None:
    """Close the innermost open group of ``kind``; a stray closer is ignored, as NovelAI does."""
    for position in range(len(stack) - 1, -1, -1):
        if stack[position][0] == kind:
            del stack[position]
            return


def _render(segments: list[tuple[str, float]]) -> str:
    merged: list[tuple[str, float]] = []
    for part, weight in segments:
        if merged and math.isclose(merged[-1][1], weight):
            merged[-1] = (merged[-1][0] + part, weight)
        else:
            merged.append((part, weight))
    out: list[str] = []
    for part, weight in merged:
        core = part.strip()
        if not core or math.isclose(weight, 1.0):
            out.append(part)
            continue
        lead, tail = part[: len(part) - len(part.lstrip())], part[len(part.rstrip()) :]
        out.append(f"{lead}({core}:{format_weight(weight)}){tail}")
    return "".join(out)
