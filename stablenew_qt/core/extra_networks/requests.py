"""From a prompt's extra-network tags to checked LoRA requests, before anything loads.

A1111 (``extensions-builtin/Lora/extra_networks_lora.py``) reads ``<lora:name:te:unet:dyn>``:
``te`` defaults to 1.0, ``unet`` to ``te``, and the named forms ``te=``, ``unet=``, ``dyn=`` win
over the positional ones; ``<lyco:...>`` is an alias of ``<lora:...>``. ``dyn`` (truncate the
rank) is accepted and ignored with a warning. ``<hypernet:...>`` is not supported: the tag is
dropped with a warning. The same name written twice is one network applied twice with the last
tag's multipliers, as A1111 does (its loaded-network list holds that object twice).

:func:`check_loras` turns requests into :class:`~stablenew_qt.core.errors.ConfigProblem` s the
validation step can raise: a missing LoRA (with the closest names), a pickle or damaged file,
LyCORIS types the engine cannot apply (named), and a LoRA made for another model family.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import ConfigProblem
from .catalog import ExtraNetworkError, ExtraNetworksCatalog
from .entries import LoraEntry
from .lora_info import NetworkFamily

__all__ = [
    "LORA_TAG_NAMES",
    "ExtraNetworkTagLike",
    "LoraRequest",
    "check_loras",
    "family_problem",
    "hypernetwork_warnings",
    "lora_requests",
]

LORA_TAG_NAMES = ("lora", "lyco")
HYPERNETWORK_TAG_NAMES = ("hypernet",)
_FIELD = "prompt"


class ExtraNetworkTagLike(Protocol):
    """What this module needs of a parsed ``<kind:args>`` tag (``core.prompt_parser.ExtraNetworkTag``):
    ``name`` is the kind (``"lora"``), ``positional`` and ``named`` its arguments."""

    @property
    def name(self) -> str: ...

    @property
    def positional(self) -> Sequence[str]: ...

    @property
    def named(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class LoraRequest:
    """One LoRA to apply: its name as written, text-encoder and UNet multipliers, and how many
    times it was written (A1111 applies a repeated name once per mention)."""

    name: str
    te: float = 1.0
    unet: float = 1.0
    count: int = 1


def lora_requests(tags: Iterable[ExtraNetworkTagLike]) -> tuple[list[LoraRequest], list[ConfigProblem]]:
    """The LoRA requests of ``tags`` (``lora`` and ``lyco`` kinds; others are ignored), in the
    order first written, and a problem for each tag whose numbers do not parse."""
    order: list[str] = []
    latest: dict[str, LoraRequest] = {}
    counts: dict[str, int] = {}
    problems: list[ConfigProblem] = []
    for tag in tags:
        if tag.name not in LORA_TAG_NAMES:
            continue
        try:
            request = _parse(tag)
        except ValueError as exc:
            problems.append(ConfigProblem(_FIELD, str(exc)))
            continue
        if request.name not in latest:
            order.append(request.name)
        latest[request.name] = request
        counts[request.name] = counts.get(request.name, 0) + 1
    requests = [LoraRequest(n, latest[n].te, latest[n].unet, counts[n]) for n in order]
    return requests, problems


def ignored_dyn_warnings(tags: Iterable[ExtraNetworkTagLike]) -> list[str]:
    """One warning per LoRA tag that sets ``dyn`` (A1111's rank truncation), which we ignore."""
    return [
        f"{_text(tag)}: dyn (rank truncation) is not supported and was ignored"
        for tag in tags
        if tag.name in LORA_TAG_NAMES and ("dyn" in tag.named or len(tag.positional) > 3)
    ]


def hypernetwork_warnings(tags: Iterable[ExtraNetworkTagLike]) -> list[str]:
    """The warning for each ``<hypernet:...>`` tag: hypernetworks are not supported and the tag was
    removed (the parser has already cut it out of the prompt text)."""
    return [
        f"hypernetworks are not supported; {_text(tag)} was removed"
        for tag in tags
        if tag.name in HYPERNETWORK_TAG_NAMES
    ]


def family_problem(entry: LoraEntry, model_family: NetworkFamily, model_name: str = "") -> str | None:
    """Why ``entry`` does not fit a model of ``model_family``, or None when it fits or its family is
    unknown (A1111 applies such files and reports layer errors; we cannot tell either)."""
    family = entry.family
    if family in (NetworkFamily.UNKNOWN, model_family):
        return None
    model = f"'{model_name}' " if model_name else ""
    made_for = "another architecture" if family is NetworkFamily.OTHER else family.label
    return (
        f"LoRA '{entry.prompt_name}' was made for {made_for} but the model {model}is {model_family.label} "
        f"(family from {entry.family_source or 'its keys'}); choose a {model_family.label} LoRA or a "
        f"{made_for} model"
    )


def check_loras(
    requests: Sequence[LoraRequest],
    catalog: ExtraNetworksCatalog,
    model_family: NetworkFamily | None,
    model_name: str = "",
) -> tuple[dict[str, LoraEntry], list[ConfigProblem]]:
    """Resolve every request against ``catalog`` and check it fits ``model_family`` (None: the
    model's family is unknown, so only names, files and types are checked).

    Returns the entries by requested name and the problems (empty when the run can go ahead).
    Reads headers only (the catalog's scan), never weights.
    """
    from .lora_info import SUPPORTED_TYPES

    resolved: dict[str, LoraEntry] = {}
    problems: list[ConfigProblem] = []
    for request in requests:
        try:
            entry = catalog.resolve_lora(request.name)
        except ExtraNetworkError as exc:
            problems.append(ConfigProblem(_FIELD, str(exc)))
            continue
        unsupported = sorted(t.value for t in entry.module_types - SUPPORTED_TYPES)
        if unsupported:
            problems.append(
                ConfigProblem(
                    _FIELD,
                    f"LoRA '{request.name}' uses {', '.join(unsupported)} modules, which this app cannot "
                    "apply yet; remove the tag or use a LoRA/LoCon/LoHa/LoKr version",
                )
            )
            continue
        mismatch = family_problem(entry, model_family, model_name) if model_family is not None else None
        if mismatch:
            problems.append(ConfigProblem(_FIELD, mismatch))
            continue
        resolved[request.name] = entry
    return resolved, problems


def _parse(tag: ExtraNetworkTagLike) -> LoraRequest:
    positional, named = list(tag.positional), tag.named
    if not positional or not positional[0].strip():
        raise ValueError(
            f"{_text(tag)}: a LoRA tag must start with the LoRA's name, e.g. <lora:add_detail:0.8>"
        )
    te = _number(tag, "te", named.get("te", positional[1] if len(positional) > 1 else "1"))
    unet = _number(tag, "unet", named.get("unet", positional[2] if len(positional) > 2 else str(te)))
    return LoraRequest(positional[0].strip(), te, unet)


def _number(tag: ExtraNetworkTagLike, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{_text(tag)}: the {what} weight '{text}' is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{_text(tag)}: the {what} weight '{text}' is not a finite number")
    return value


def _text(tag: ExtraNetworkTagLike) -> str:
    args = [*tag.positional, *(f"{k}={v}" for k, v in tag.named.items())]
    return f"<{tag.name}:{':'.join(args)}>"
