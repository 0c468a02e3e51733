"""A1111's prompt editing ``[from:to:when]`` and alternation ``[a|b]`` as a schedule of texts.

Re-implemented from A1111 1.10's documented behaviour (``prompt_parser.py``: its grammar and
``get_learned_conditioning_prompt_schedules``); this module is a hand-written parser, not a grammar
engine. What it reproduces:

- ``[x]``, ``(x)``, ``(x:y)`` are kept as written (the attention parse runs later, per text);
  ``[from:to:when]``, ``[to:when]``, ``[from::when]`` and ``[a|b|c]`` (empty options allowed) may
  nest in each other and in brackets. ``when`` is a number, optionally with spaces around it.
- A bracket that does not form one of those (unclosed, mixed, ``[a:b]``...) stays literal text,
  and the rest of the prompt is still parsed. A ``|`` outside an alternation, or a backslash at the
  end of the text or before a line break, makes A1111's parser fail: the whole prompt is then used
  as it is, at every step.
- ``when`` (new timelines, A1111's default): with a decimal point it is a fraction of the steps,
  otherwise a step number; in the hires pass fractions count from 1 (``1.5`` = half the hires
  steps) and step numbers continue the first pass's (``25`` after 20 first-pass steps = hires step
  5). Old timelines (option ``use_old_scheduling``): below 1 a fraction, else a step number, and
  the hires pass is scheduled over the first pass's step count. The result is truncated toward
  zero and capped at the steps; a result below 1 never switches (``[a:b:0]`` is ``b`` throughout).
- The schedule is one ``(end_at_step, text)`` per distinct switch step (from 1 to the steps);
  alternation switches at every step, choosing option ``(step - 1) % n`` at end step ``step``.
  At 0-based sampling step ``i`` the first entry with ``end_at_step >= i`` applies
  (``conds.ScheduledCond.at``), so ``[a:b:2]`` draws ``a`` at steps 0, 1 and 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from stablenew_qt.core.prompt_attention import PromptSyntaxError

# A1111's grammar imports lark's SIGNED_NUMBER: ASCII digits, optional sign, decimal point, exponent.
_WHEN = re.compile(r"\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?))\s*")
_CLOSER = {"(": ")", "[": "]"}
_SPECIAL = frozenset("\\[]():|")


class _ParseFailed(Exception):
    """The text is outside A1111's grammar; the whole prompt is used literally."""


@dataclass
class _Scheduled:
    before: list[_Node] | None
    after: list[_Node]
    when_text: str
    when: int = 0


@dataclass
class _Alternate:
    options: list[list[_Node]]


_Node = str | _Scheduled | _Alternate


@dataclass(frozen=True)
class _Timeline:
    steps: int
    int_offset: int
    float_offset: float
    old: bool


def prompt_schedule(
    prompt: str, steps: int, hires_steps: int | None = None, *, use_old_scheduling: bool = False
) -> list[tuple[int, str]]:
    """``(end_at_step, text)`` pairs for ``prompt`` over ``steps`` sampling steps.

    For the hires pass give the first pass's step count as ``steps`` and the hires pass's as
    ``hires_steps`` (both as A1111 counts them: doubled for second-order samplers); the end steps
    then count hires steps. A1111's ``get_learned_conditioning_prompt_schedules`` for one prompt.

    >>> prompt_schedule("a [cat:dog:0.5]", 10)
    [(5, 'a cat'), (10, 'a dog')]
    """
    timeline = _timeline(steps, hires_steps, use_old_scheduling)
    return list(_cached_schedule(prompt, timeline))


def prompt_schedules(
    prompts: list[str], steps: int, hires_steps: int | None = None, *, use_old_scheduling: bool = False
) -> list[list[tuple[int, str]]]:
    """:func:`prompt_schedule` for each prompt of a batch."""
    return [prompt_schedule(p, steps, hires_steps, use_old_scheduling=use_old_scheduling) for p in prompts]


def _timeline(steps: int, hires_steps: int | None, old: bool) -> _Timeline:
    if hires_steps is None or old:
        return _Timeline(steps=steps, int_offset=0, float_offset=0.0, old=old)
    return _Timeline(steps=hires_steps, int_offset=steps, float_offset=1.0, old=old)


@lru_cache(maxsize=512)
def _cached_schedule(prompt: str, timeline: _Timeline) -> tuple[tuple[int, str], ...]:
    try:
        nodes = _parse(prompt)
    except _ParseFailed:
        return ((timeline.steps, prompt),)
    switch_steps = {timeline.steps}
    _collect_switch_steps(nodes, timeline, switch_steps)
    return tuple((step, _text_at(nodes, step)) for step in sorted(switch_steps))


# -- parsing ------------------------------------------------------------------------------------------


def _parse(prompt: str) -> list[_Node]:
    """The top level: constructs where they form, every other bracket or colon literal."""
    nodes: list[_Node] = []
    position = 0
    while position < len(prompt):
        char = prompt[position]
        if char in _CLOSER:
            group = _parse_group(prompt, position)
            if group is not None:
                nodes.extend(group[0])
                position = group[1]
                continue
            nodes.append(char)
            position += 1
        elif char in ")]:":
            nodes.append(char)
            position += 1
        else:
            position = _read_plain(prompt, position, nodes)
    return nodes


def _read_plain(text: str, position: int, nodes: list[_Node]) -> int:
    """Plain text (with backslash escapes) from ``position``; raises on a ``|`` or a bad backslash."""
    start = position
    while position < len(text) and text[position] not in _SPECIAL:
        position += 1
    while position < len(text) and text[position] == "\\":
        if position + 1 >= len(text) or text[position + 1] == "\n":
            raise _ParseFailed
        position += 2
        while position < len(text) and text[position] not in _SPECIAL:
            position += 1
    if position == start:
        raise _ParseFailed  # a "|" outside an alternation
    nodes.append(text[start:position])
    return position


def _parse_group(text: str, start: int) -> tuple[list[_Node], int] | None:
    """The construct opened at ``start`` and where it ends, or None when it does not form one."""
    closer = _CLOSER[text[start]]
    segments: list[list[_Node]] = [[]]
    separators: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == closer:
            built = _build_group(text[start], segments, separators)
            return None if built is None else (built, position + 1)
        if char in ")]":
            return None
        if char in ":|":
            separators.append(char)
            segments.append([])
            position += 1
        elif char in _CLOSER:
            inner = _parse_group(text, position)
            if inner is None:
                return None
            segments[-1].extend(inner[0])
            position = inner[1]
        else:
            try:
                position = _read_plain(text, position, segments[-1])
            except _ParseFailed:
                return None
    return None


def _build_group(opener: str, segments: list[list[_Node]], separators: list[str]) -> list[_Node] | None:
    if opener == "(":
        if len(separators) > 1 or "|" in separators:
            return None
        return ["(", *_join(segments, ":"), ")"]
    if not separators:
        return ["[", *segments[0], "]"]
    if all(s == "|" for s in separators):
        return [_Alternate(options=segments)]
    if "|" in separators or len(separators) > 2:
        return None
    when = _when_text(segments[-1])
    if when is None:
        return None
    before = segments[0] if len(separators) == 2 else None
    return [_Scheduled(before=before, after=segments[-2], when_text=when)]


def _join(segments: list[list[_Node]], separator: str) -> list[_Node]:
    joined: list[_Node] = list(segments[0])
    for segment in segments[1:]:
        joined.append(separator)
        joined.extend(segment)
    return joined


def _when_text(segment: list[_Node]) -> str | None:
    if not all(isinstance(node, str) for node in segment):
        return None
    match = _WHEN.fullmatch("".join(str(node) for node in segment))
    return match.group(1) if match is not None else None


# -- evaluating -----------------------------------------------------------------------------------------


def _collect_switch_steps(nodes: list[_Node], timeline: _Timeline, steps: set[int]) -> None:
    for node in nodes:
        if isinstance(node, _Scheduled):
            node.when = _when_step(node.when_text, timeline)
            if node.when >= 1:
                steps.add(node.when)
            for branch in (node.before or [], node.after):
                _collect_switch_steps(branch, timeline, steps)
        elif isinstance(node, _Alternate):
            steps.update(range(1, timeline.steps + 1))
            for option in node.options:
                _collect_switch_steps(option, timeline, steps)


def _when_step(text: str, timeline: _Timeline) -> int:
    value = float(text)
    if timeline.old:
        value = value * timeline.steps if value < 1 else value
    elif "." in text:
        value = (value - timeline.float_offset) * timeline.steps
    else:
        value = value - timeline.int_offset
    if value != value or value in (float("inf"), float("-inf")):
        raise PromptSyntaxError(f"the prompt-editing step {text!r} is not a usable number")
    return min(timeline.steps, int(value))


def _text_at(nodes: list[_Node], step: int) -> str:
    parts: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, _Scheduled):
            branch = (node.before or []) if step <= node.when else node.after
            parts.append(_text_at(branch, step))
        else:
            parts.append(_text_at(node.options[(step - 1) % len(node.options)], step))
    return "".join(parts)
