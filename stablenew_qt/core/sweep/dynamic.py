"""Dynamic prompts over many configs, as one WILDCARDS group: what ``queue add --wildcards`` and
the window's Generate (with "Expand dynamic prompts" on) both queue.

:func:`expand_dynamic` takes the configs to expand (one, or a prompt pack's), makes the stepped
copies the CLI's ``--count`` asks for (random mode only), expands each with
:func:`~.wildcards.expand_config` and returns the configs with the group's meta (the first
config's templates, the mode, the wildcards folder, a label). :func:`describe_dynamic` says in one
line what Generate will make ("4 prompts from __haircolor__ (random)").

Pure Python; dynamicprompts is imported on first use (by :mod:`.wildcards`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import ConfigError
from ..job import stepped_copies
from .estimate import image_count
from .wildcards import DEFAULT_COMBINATION_LIMIT, PromptExpander, expand_config, has_dynamic_syntax

__all__ = ["DynamicExpansion", "DynamicOptions", "describe_dynamic", "expand_dynamic", "wants_expansion"]

_WILDCARD = re.compile(r"__([^_\s][^\s]*?)__")
_VARIANT = re.compile(r"\{[^{}]*\|[^{}]*\}")


@dataclass(frozen=True)
class DynamicOptions:
    """How to expand: the wildcards ``folder`` (None: variants only, a ``__name__`` is refused),
    random or ``combinatorial``, and ``count``: in random mode the runs of each config (the CLI's
    ``--count``; the window uses 1, its batch count already sets the images), in combinatorial mode
    the most prompts when above 1 (else :data:`DEFAULT_COMBINATION_LIMIT`); ``max_prompts`` sets
    that most itself (the window's "at most" field). ``field`` names the setting in errors
    (``--wildcards`` for the CLI)."""

    folder: Path | None = None
    combinatorial: bool = False
    count: int = 1
    field: str = "wildcards"
    max_prompts: int | None = None

    @property
    def mode(self) -> str:
        return "combinatorial" if self.combinatorial else "random"

    @property
    def limit(self) -> int:
        if self.max_prompts is not None:
            return self.max_prompts
        return self.count if self.combinatorial and self.count > 1 else DEFAULT_COMBINATION_LIMIT


@dataclass(frozen=True)
class DynamicExpansion:
    """The expanded configs (one job each) and the WILDCARDS group's meta."""

    configs: list[RunConfig]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return sum(image_count(c) for c in self.configs)

    @property
    def varies(self) -> bool:
        """Whether any prompt differs from its template (False: a ``{x}`` or ``a__b`` that
        expands to itself, e.g. inside a LoRA name, so one plain job would do)."""
        return any(
            c.prompt_template is not None
            and (c.prompt, c.negative_prompt) != (c.prompt_template, c.negative_prompt_template)
            for c in self.configs
        )


def wants_expansion(config: RunConfig) -> bool:
    """Whether the prompt or the negative prompt may hold variants or wildcards."""
    return has_dynamic_syntax(config.prompt) or has_dynamic_syntax(config.negative_prompt)


def expand_dynamic(
    configs: Sequence[RunConfig], options: DynamicOptions, rng: random.Random | None = None
) -> DynamicExpansion:
    """Every config of ``configs`` with its dynamic prompts expanded (see the module's docstring).
    Raises ConfigError naming ``options.field`` for a missing folder or wildcard, or a bad prompt;
    ``rng`` fixes -1 seeds (default: the OS's randomness)."""
    if not configs:
        raise ConfigError("there is no prompt to expand", options.field)
    folder = options.folder.expanduser() if options.folder is not None else None
    if folder is not None and not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is not a folder of wildcard .txt files", options.field)
    expander = PromptExpander(folder)
    repeat = 1 if options.combinatorial else options.count
    runs = [copy for config in configs for copy in stepped_copies(config, repeat)]
    expanded = [
        e
        for config in runs
        for e in expand_config(
            config, expander, combinatorial=options.combinatorial, limit=options.limit, rng=rng
        )
    ]
    first = expanded[0]
    meta: dict[str, Any] = {
        "template": first.template,
        "negative_template": first.negative_template,
        "mode": options.mode,
        "label": f"wildcards ({options.mode})",
    }
    if folder is not None:
        meta["folder"] = str(folder.resolve())
    return DynamicExpansion([e.config for e in expanded], meta)


def describe_dynamic(config: RunConfig, options: DynamicOptions) -> str:
    """One line saying what expanding ``config`` makes, without reading a file: "4 prompts from
    __haircolor__, {red|blue} (random)"; "" when it has no dynamic syntax."""
    if not wants_expansion(config):
        return ""
    text = f"{config.prompt}\n{config.negative_prompt}"
    sources = list(dict.fromkeys([f"__{m}__" for m in _WILDCARD.findall(text)] + _VARIANT.findall(text)))
    shown = ", ".join(_short(s) for s in sources[:3]) + (", …" if len(sources) > 3 else "")
    origin = f" from {shown}" if shown else ""
    if options.combinatorial:
        return f"every combination{origin}, at most {options.limit} prompts (combinatorial)"
    count = image_count(config) * options.count
    return f"{count} prompt{'s' if count != 1 else ''}{origin} (random, drawn from each image's seed)"


def _short(text: str, width: int = 30) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
