"""Wildcards and variants with dynamicprompts, the library of A1111's dynamic-prompts extension.

Syntax (dynamicprompts' own, which A1111 users know from the extension): ``__name__`` takes a
line of ``<wildcards folder>/name.txt`` (``__sub/name__`` from a subfolder; blank lines and
``#`` comment lines are not values), ``{a|b|c}`` one of the variants, ``{2$$a|b|c}`` two
different ones joined with ``","`` (``{2$$ and $$a|b|c}`` names the joiner). Everything else
(``<lora:x:0.8>``, ``[a:b:10]``, ``[a|b]``, ``(x:1.2)``, ``\\(``) passes through unchanged.

Random mode draws each image's prompt with a generator seeded by that image's own seed, as the
extension does (so the image with seed 1234 always gets the same prompt). Combinatorial mode
makes every combination; image ``k`` gets seed + k, as the extension numbers them. Styles are
applied before this (A1111 applies them in ``setup_prompts``, before the extension runs), so a
style may contain wildcards.

dynamicprompts is imported on first use only.
"""

from __future__ import annotations

import difflib
import random
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import MAX_SEED, RunConfig
from ..errors import ConfigError

if TYPE_CHECKING:
    from dynamicprompts.wildcards import WildcardManager

__all__ = [
    "DEFAULT_COMBINATION_LIMIT",
    "ExpandedConfig",
    "PromptExpander",
    "expand_config",
    "has_dynamic_syntax",
]

#: dynamicprompts' own default cap on combinatorial prompts.
DEFAULT_COMBINATION_LIMIT = 1000
#: A1111's extra-network tags (``<lora:name:0.8>``): kept out of dynamicprompts' parser, which
#: refuses a ``__`` inside them (``<lora:my__style:1>``) as a wildcard that never closes.
_TAG = re.compile(r"<\w+:[^<>]*>")
_HELD = re.compile("\ue000(\\d+)\ue001")  # private-use marks: text no prompt holds
_SEED_DRAW = 4294967294
_IMAGE_COUNT_KEYS = ("batch_size", "batch_count")


def has_dynamic_syntax(text: str) -> bool:
    """Whether ``text`` may hold variants or wildcards (a cheap test: ``{`` or ``__``)."""
    return "{" in text or "__" in text


@dataclass(frozen=True)
class ExpandedConfig:
    """One RunConfig with its prompts expanded, and the templates they came from (for the
    manifest; the PNG records the expanded prompt)."""

    config: RunConfig
    template: str
    negative_template: str


def _recording_manager(folder: Path | None, missing: set[str]) -> WildcardManager:
    from dynamicprompts.wildcards import WildcardManager
    from dynamicprompts.wildcards.values import WildcardValues

    class RecordingManager(WildcardManager):
        """Notes every wildcard that has no values (dynamicprompts would print it back as text)."""

        def get_values(self, wildcard: str) -> WildcardValues:
            values = super().get_values(wildcard)
            if not values:
                missing.add(wildcard)
            return values

    return RecordingManager(folder)


class PromptExpander:
    """Expands prompt templates with the wildcards of one folder (or none)."""

    def __init__(self, wildcards_dir: Path | None = None) -> None:
        if wildcards_dir is not None and not Path(wildcards_dir).is_dir():
            raise ConfigError(f"wildcards folder {str(wildcards_dir)!r} does not exist", "wildcards")
        self._folder = Path(wildcards_dir) if wildcards_dir is not None else None
        self._missing: set[str] = set()
        self._manager: WildcardManager | None = None

    def _wildcards(self) -> WildcardManager:
        if self._manager is None:
            self._manager = _recording_manager(self._folder, self._missing)
        return self._manager

    def names(self) -> tuple[str, ...]:
        """The wildcard names of the folder (``"color"``, ``"sub/animal"``), sorted."""
        return tuple(sorted(self._wildcards().get_collection_names())) if self._folder else ()

    def random(self, template: str, seeds: Sequence[int]) -> list[str]:
        """One expansion of ``template`` per seed, each drawn with a generator seeded by it."""
        from dynamicprompts.generators import RandomPromptGenerator

        if not has_dynamic_syntax(template):  # also "": dynamicprompts cannot sample an empty text
            return [template] * len(seeds)
        generator = RandomPromptGenerator(self._wildcards())
        # A list, even of one: dynamicprompts treats a bare int 0 as "no seed".
        return self._run(lambda text: generator.generate(text, len(seeds), seeds=list(seeds)), template)

    def combinations(self, template: str, limit: int = DEFAULT_COMBINATION_LIMIT) -> list[str]:
        """Every combination of ``template``'s variants and wildcards, at most ``limit``."""
        from dynamicprompts.generators import CombinatorialPromptGenerator

        if not has_dynamic_syntax(template):
            return [template]
        generator = CombinatorialPromptGenerator(self._wildcards())
        return self._run(lambda text: generator.generate(text, max_prompts=limit), template)

    def _run(self, generate: Callable[[str], Any], template: str) -> list[str]:
        from pyparsing import ParseBaseException

        self._missing.clear()
        tags = _TAG.findall(template)
        held = iter(range(len(tags)))
        parsed = _TAG.sub(lambda _m: f"\ue000{next(held)}\ue001", template)
        try:
            with warnings.catch_warnings():
                # pyparsing 3.3 deprecates names dynamicprompts still uses; not our code to fix.
                warnings.simplefilter("ignore", DeprecationWarning)
                prompts = [_HELD.sub(lambda m: tags[int(m.group(1))], p) for p in generate(parsed)]
        except ParseBaseException as exc:
            raise ConfigError(
                f"{template!r} is not a valid dynamic prompt: {exc.msg} at column {exc.col}"
            ) from None
        if self._missing:
            raise ConfigError(self._missing_message(sorted(self._missing)), "wildcards")
        return prompts

    def _missing_message(self, missing: list[str]) -> str:
        if self._folder is None:
            return f"the prompt uses the wildcard __{missing[0]}__ but no wildcards folder is set"
        known = self.names()
        lines = []
        for name in missing:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
            hint = f"; closest: {', '.join(close)}" if close else ""
            lines.append(f"no wildcard file for __{name}__ in {str(self._folder)!r}{hint}")
        return "\n".join(lines)


def _batched(items: list[tuple[str, str, int]], size: int) -> Iterator[list[tuple[str, str, int]]]:
    """Runs of consecutive equal prompts, at most ``size`` long (their seeds step by 1, so each run
    is one batch with the run's first seed)."""
    run: list[tuple[str, str, int]] = []
    for item in items:
        if run and (item[:2] != run[-1][:2] or len(run) == size):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def _with_prompts(config: RunConfig, prompt: str, negative: str, seed: int, count: int) -> RunConfig:
    data = config.model_dump(mode="json")
    # The templates go with the expanded prompts into the job and its manifest.json.
    data.update(prompt_template=config.prompt, negative_prompt_template=config.negative_prompt)
    data.update(prompt=prompt, negative_prompt=negative, seed=seed)
    data["batch_size"] = count
    if "batch_count" in data:
        data["batch_count"] = 1
    return RunConfig.from_dict(data)


def _image_count(config: RunConfig) -> int:
    data = config.model_dump()
    count = 1
    for key in _IMAGE_COUNT_KEYS:
        count *= int(data.get(key, 1))
    return count


def expand_config(
    config: RunConfig,
    expander: PromptExpander,
    *,
    combinatorial: bool = False,
    limit: int = DEFAULT_COMBINATION_LIMIT,
    rng: random.Random | None = None,
) -> list[ExpandedConfig]:
    """``config`` with its prompt and negative prompt expanded: one RunConfig per run of images
    that share a prompt (a batch whose images all got different prompts becomes single images;
    RunConfig has one prompt per run).

    A config with no dynamic syntax comes back unchanged. A -1 seed is fixed first (with ``rng``,
    default the OS's randomness), since the prompts depend on it. Combinatorial mode makes every
    combination of the prompt crossed with every one of the negative prompt (at most ``limit``);
    otherwise the image count is ``batch_size`` (times ``batch_count`` once RunConfig has it).
    """
    template, negative_template = config.prompt, config.negative_prompt
    if not (has_dynamic_syntax(template) or has_dynamic_syntax(negative_template)):
        return [ExpandedConfig(config, template, negative_template)]
    seed = config.seed if config.seed != -1 else (rng or random.SystemRandom()).randrange(_SEED_DRAW)
    if combinatorial:
        prompts = expander.combinations(template, limit)
        negatives = expander.combinations(negative_template, limit)
        pairs = [(p, n) for p in prompts for n in negatives][:limit]
        batch = 1
    else:
        count = _image_count(config)
        seeds = [(seed + i) % (MAX_SEED + 1) for i in range(count)]
        pairs = list(
            zip(expander.random(template, seeds), expander.random(negative_template, seeds), strict=True)
        )
        batch = config.batch_size
    items = [(p, n, (seed + i) % (MAX_SEED + 1)) for i, (p, n) in enumerate(pairs)]
    return [
        ExpandedConfig(
            _with_prompts(config, run[0][0], run[0][1], run[0][2], len(run)), template, negative_template
        )
        for run in _batched(items, batch)
    ]
