"""A1111's prompt syntax, end to end: extra-network tags, ``AND``, editing schedules, attention.

A1111 1.10 reads a prompt in this order, and so does :func:`parse_prompt`:

1. extra-network tags ``<name:arg:...>`` are cut out of the text (``extra_networks.parse_prompt``);
2. the positive prompt is split at every ``AND`` into composable-diffusion parts, each with an
   optional trailing ``:weight`` (``get_multicond_prompt_list``); the negative prompt is not split;
3. each part becomes a schedule of texts over the steps (:mod:`prompt_schedule`);
4. each scheduled text is parsed for attention and BREAK when it is tokenized (:mod:`prompt_attention`).

Pure Python. The re-exports below are the public API of the prompt syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stablenew_qt.core.prompt_attention import (
    BREAK_WEIGHT,
    BREAK_WORD,
    PromptSyntaxError,
    is_break,
    parse_attention,
)
from stablenew_qt.core.prompt_schedule import prompt_schedule, prompt_schedules

__all__ = [
    "BREAK_WEIGHT",
    "BREAK_WORD",
    "ExtraNetworkTag",
    "ParsedPrompt",
    "PromptPart",
    "PromptSyntaxError",
    "extract_extra_networks",
    "is_break",
    "parse_attention",
    "parse_prompt",
    "prompt_schedule",
    "prompt_schedules",
    "split_and",
]

# ``<name:args>``: a word, a colon, then anything up to the first ">" (A1111's pattern).
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")
_AND = re.compile(r"\bAND\b")
# A part's text (lazy, newlines included), an optional ":<weight>", then trailing whitespace.
_PART_WEIGHT = re.compile(r"(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$", re.S)


@dataclass(frozen=True)
class ExtraNetworkTag:
    """One ``<name:arg1:arg2:...>`` tag, as A1111 hands it to the extra network named ``name``.

    ``args`` are the colon-separated items as written; an item with exactly one ``=`` is named
    (``te=0.8`` gives ``named["te"] == "0.8"``), every other item is positional, in order.
    ``<lora:…>``, ``<lyco:…>``, ``<hypernet:…>`` and any other name parse alike.
    """

    name: str
    args: tuple[str, ...]
    positional: tuple[str, ...] = field(init=False)
    named: dict[str, str] = field(init=False, hash=False, compare=False)

    def __post_init__(self) -> None:
        positional: list[str] = []
        named: dict[str, str] = {}
        for item in self.args:
            parts = item.split("=", 2)
            if len(parts) == 2:
                named[parts[0]] = parts[1]
            else:
                positional.append(item)
        object.__setattr__(self, "positional", tuple(positional))
        object.__setattr__(self, "named", named)

    @property
    def text(self) -> str:
        """The tag as it would be written in a prompt."""
        return f"<{self.name}:{':'.join(self.args)}>"


@dataclass(frozen=True)
class PromptPart:
    """One ``AND`` part: its text (tags removed) and its composable-diffusion weight."""

    text: str
    weight: float = 1.0


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt as A1111 runs it: its ``AND`` parts and the extra-network tags cut out of it."""

    parts: tuple[PromptPart, ...]
    extra_networks: tuple[ExtraNetworkTag, ...]


def extract_extra_networks(prompt: str) -> tuple[str, tuple[ExtraNetworkTag, ...]]:
    """``prompt`` with every ``<name:args>`` tag removed, and the tags in the order written.

    Only the tag itself is removed; the spaces and commas around it stay, as in A1111
    (``"a, <lora:x:1>, b"`` becomes ``"a, , b"``).
    """
    tags: list[ExtraNetworkTag] = []

    def cut(match: re.Match[str]) -> str:
        tags.append(ExtraNetworkTag(name=match.group(1), args=tuple(match.group(2).split(":"))))
        return ""

    return _EXTRA_NETWORK.sub(cut, prompt), tuple(tags)


def split_and(prompt: str) -> list[PromptPart]:
    """The composable-diffusion parts of a positive prompt (A1111's ``AND`` split).

    ``AND`` must be upper case and a whole word. A part ending in ``:<number>`` takes that weight
    (also without any ``AND``: ``"cat:1.5"`` is the part "cat" at weight 1.5); trailing
    whitespace is dropped, leading whitespace kept.
    """
    parts: list[PromptPart] = []
    for piece in _AND.split(prompt):
        match = _PART_WEIGHT.match(piece)
        assert match is not None  # the pattern matches every string
        weight = match.group(2)
        parts.append(PromptPart(text=match.group(1), weight=float(weight) if weight is not None else 1.0))
    return parts


def parse_prompt(prompt: str, *, negative: bool = False) -> ParsedPrompt:
    """Steps 1 and 2 of A1111's reading: tags out, then ``AND`` parts (a negative prompt has one part)."""
    text, tags = extract_extra_networks(prompt)
    parts = (PromptPart(text=text),) if negative else tuple(split_and(text))
    return ParsedPrompt(parts=parts, extra_networks=tags)
