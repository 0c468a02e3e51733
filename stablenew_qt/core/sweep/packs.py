"""Prompt packs: many prompts in one file, queued as one group.

**TXT** (UTF-8, a byte-order mark is fine): one prompt per line. Blank lines and lines whose
first non-space character is ``#`` are skipped. `` --neg `` (``--neg`` with a space or the line's
end on both sides) splits a line into the prompt before it and the negative prompt after it::

    a lighthouse at dusk, oil painting --neg blurry, lowres
    a red fox in snow

A line without ``--neg`` keeps the base config's negative prompt; ``--neg`` at the end of a
line sets an empty one.

**JSON**: a list whose items are prompt strings, or objects holding ``prompt`` and any other
RunConfig keys to change for that item (``negative_prompt``, ``seed``, ``{"txt2img": {"steps":
20}}``; nested objects are merged into the base config, lists replace).

Every bad line or item is reported at once, each with its line number, and nothing is queued.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import ConfigError, ConfigProblem

__all__ = [
    "NEG_MARKER",
    "PackEntry",
    "load_prompt_pack",
    "pack_configs",
    "parse_json_pack",
    "parse_text_pack",
]

NEG_MARKER = "--neg"
_NEG = re.compile(r"(?:^|\s)--neg(?:\s|$)")
MAX_PACK_ENTRIES = 10_000


@dataclass(frozen=True)
class PackEntry:
    """One prompt of a pack: where it was, and the RunConfig keys it changes."""

    line: int
    changes: Mapping[str, Any] = field(default_factory=dict)


def _text_entry(number: int, line: str) -> PackEntry | ConfigProblem | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    match = _NEG.search(stripped)
    if match is None:
        return PackEntry(number, {"prompt": stripped})
    prompt, negative = stripped[: match.start()].strip(), stripped[match.end() :].strip()
    if not prompt:
        return ConfigProblem(f"line {number}", f"there is no prompt before {NEG_MARKER}")
    if _NEG.search(negative):
        return ConfigProblem(
            f"line {number}", f"{NEG_MARKER} appears twice; a line has one prompt and one negative"
        )
    return PackEntry(number, {"prompt": prompt, "negative_prompt": negative})


def _decoded(data: str | bytes, what: str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _finished(entries: list[PackEntry], problems: list[ConfigProblem], what: str) -> list[PackEntry]:
    if problems:
        raise ConfigError(problems)
    if not entries:
        raise ConfigError(f"{what} has no prompts")
    if len(entries) > MAX_PACK_ENTRIES:
        raise ConfigError(f"{what} has {len(entries)} prompts; a pack takes at most {MAX_PACK_ENTRIES}")
    return entries


def parse_text_pack(data: str | bytes, what: str = "the prompt pack") -> list[PackEntry]:
    """The entries of a TXT pack. Raises ConfigError listing every bad line."""
    entries: list[PackEntry] = []
    problems: list[ConfigProblem] = []
    for number, line in enumerate(_decoded(data, what).splitlines(), start=1):
        result = _text_entry(number, line)
        if isinstance(result, ConfigProblem):
            problems.append(result)
        elif result is not None:
            entries.append(result)
    return _finished(entries, problems, what)


def _json_items(text: str) -> list[tuple[int, Any]]:
    """The items of a JSON array with the line each starts on (json gives no positions itself)."""
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def line_of(i: int) -> int:
        return text.count("\n", 0, i) + 1

    i = skip(0)
    if not text.startswith("[", i):
        raise ConfigError('a JSON prompt pack must be a list: ["prompt one", {"prompt": "prompt two"}]')
    items: list[tuple[int, Any]] = []
    i = skip(i + 1)
    while not text.startswith("]", i):
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        items.append((line_of(i), value))
        i = skip(end)
        if text.startswith(",", i):
            i = skip(i + 1)
        elif not text.startswith("]", i):
            raise ConfigError(f"not valid JSON at line {line_of(i)}: expected ',' or ']' after an item")
    if skip(i + 1) != len(text):
        raise ConfigError(f"not valid JSON at line {line_of(skip(i + 1))}: text after the closing ']'")
    return items


def _json_entry(number: int, line: int, value: Any) -> PackEntry | ConfigProblem:
    where = f"item {number} (line {line})"
    if isinstance(value, str):
        return PackEntry(line, {"prompt": value})
    if not isinstance(value, dict):
        return ConfigProblem(where, f"must be a prompt in quotes or an object, not {type(value).__name__}")
    if not isinstance(value.get("prompt"), str):
        return ConfigProblem(where, 'needs a "prompt" text')
    return PackEntry(line, value)


def parse_json_pack(data: str | bytes, what: str = "the prompt pack") -> list[PackEntry]:
    """The entries of a JSON pack. Raises ConfigError listing every bad item."""
    entries: list[PackEntry] = []
    problems: list[ConfigProblem] = []
    for number, (line, value) in enumerate(_json_items(_decoded(data, what)), start=1):
        result = _json_entry(number, line, value)
        if isinstance(result, ConfigProblem):
            problems.append(result)
        else:
            entries.append(result)
    return _finished(entries, problems, what)


def _merged(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def pack_configs(base: RunConfig, entries: list[PackEntry]) -> list[RunConfig]:
    """One RunConfig per entry: ``base`` with the entry's changes. Raises ConfigError listing
    every entry RunConfig refuses, each with its line number."""
    data = base.model_dump(mode="json")
    configs: list[RunConfig] = []
    problems: list[ConfigProblem] = []
    for entry in entries:
        try:
            configs.append(RunConfig.from_dict(_merged(data, entry.changes)))
        except ConfigError as exc:
            problems += [
                ConfigProblem(f"line {entry.line}: {p.field}" if p.field else f"line {entry.line}", p.message)
                for p in exc.problems
            ]
    if problems:
        raise ConfigError(problems)
    return configs


def load_prompt_pack(path: Path, base: RunConfig) -> list[RunConfig]:
    """The RunConfigs of the pack at ``path`` (``.json`` is JSON, anything else TXT) over ``base``."""
    path = Path(path)
    what = f"prompt pack {str(path)!r}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}") from None
    parse = parse_json_pack if path.suffix.lower() == ".json" else parse_text_pack
    return pack_configs(base, parse(data, what))
