"""Wildcards and variants through dynamicprompts: reproducible per image seed (the extension's
rule), folders and comments, combinatorial order, A1111 syntax passing through, clear errors."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.sweep import PromptExpander, expand_config, has_dynamic_syntax


@pytest.fixture
def wildcards(tmp_path: Path) -> Path:
    folder = tmp_path / "wildcards"
    (folder / "people").mkdir(parents=True)
    (folder / "haircolor.txt").write_text(
        "# hair colours\nred\n\nblond\n  black  \nsilver\n", encoding="utf-8"
    )
    (folder / "people" / "job.txt").write_text("knight\nbaker\n# not a job\n", encoding="utf-8")
    (folder / "nested.txt").write_text("__haircolor__ braid\n", encoding="utf-8")
    return folder


def test_values_come_from_files_without_comments_or_blanks(wildcards: Path) -> None:
    expander = PromptExpander(wildcards)
    assert expander.names() == ("haircolor", "nested", "people/job")
    assert set(expander.combinations("__haircolor__")) == {"red", "blond", "black", "silver"}
    assert set(expander.combinations("a __people/job__")) == {"a knight", "a baker"}
    assert set(expander.combinations("__nested__")) == {
        f"{c} braid" for c in ("red", "blond", "black", "silver")
    }


def test_random_prompts_are_reproducible_per_seed(wildcards: Path) -> None:
    template = "portrait, __haircolor__ hair, {smiling|serious|laughing}, {2$$hat|scarf|gloves}"
    seeds = list(range(100, 140))
    first = PromptExpander(wildcards).random(template, seeds)
    again = PromptExpander(wildcards).random(template, list(reversed(seeds)))
    assert first == list(reversed(again))  # a prompt depends on its own seed only, not on its position
    assert len(set(first)) > 5
    for prompt in first:
        head, hair, mood, pair = prompt.split(", ", 3)
        assert head == "portrait" and hair.split()[0] in {"red", "blond", "black", "silver"}
        assert mood in {"smiling", "serious", "laughing"}
        picked = pair.split(",")  # dynamicprompts joins with "," unless told otherwise ({2$$, $$...})
        assert len(picked) == 2 and len(set(picked)) == 2 and set(picked) <= {"hat", "scarf", "gloves"}


def test_seed_zero_is_a_seed(wildcards: Path) -> None:
    expander = PromptExpander(wildcards)
    assert expander.random("{a|b|c|d|e|f|g|h}", [0] * 5) == expander.random("{a|b|c|d|e|f|g|h}", [0])[:1] * 5


def test_a1111_syntax_passes_through_untouched(wildcards: Path) -> None:
    a1111 = (
        r"<lora:fur:0.8>, [cat:dog:10], [red|blue], (fluffy:1.2), \(literal\), embedding:foo, BREAK, AND x"
    )
    expander = PromptExpander(wildcards)
    assert expander.random(a1111, [1, 2]) == [a1111, a1111]
    mixed = expander.random("{sunny|rainy} " + a1111, [3])[0]
    assert mixed.endswith(" " + a1111)


def test_combinatorial_order_and_limit(wildcards: Path) -> None:
    expander = PromptExpander(wildcards)
    # Wildcard values are sorted (dynamicprompts' default, as in the extension), variants in order.
    assert expander.combinations("__people/job__ {x|y}") == ["baker x", "baker y", "knight x", "knight y"]
    assert len(expander.combinations("{a|b|c} {d|e|f}", limit=4)) == 4


def test_missing_wildcard_lists_the_closest_names(wildcards: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        PromptExpander(wildcards).random("__hair_color__ and __people/jobs__", [1])
    message = str(caught.value)
    assert "no wildcard file for __hair_color__" in message and "closest: haircolor" in message
    assert "no wildcard file for __people/jobs__" in message and "people/job" in message
    with pytest.raises(ConfigError, match="no wildcards folder is set"):
        PromptExpander(None).random("__haircolor__", [1])
    with pytest.raises(ConfigError, match="does not exist"):
        PromptExpander(wildcards / "nope")


def test_bad_variant_syntax_is_a_clear_error(wildcards: Path) -> None:
    with pytest.raises(ConfigError, match="is not a valid dynamic prompt"):
        PromptExpander(wildcards).random("{a|b", [1])


def test_expand_config_gives_each_image_its_own_prompt_and_seed(wildcards: Path) -> None:
    config = RunConfig.from_dict(
        {"prompt": "a __haircolor__ knight", "negative_prompt": "blurry", "seed": 50, "batch_size": 4}
    )
    expanded = expand_config(config, PromptExpander(wildcards))
    per_image = [(e.config.seed + i, e.config.prompt) for e in expanded for i in range(e.config.batch_size)]
    assert [seed for seed, _ in per_image] == [50, 51, 52, 53]  # seeds step across the batch as before
    assert [p for _, p in per_image] == PromptExpander(wildcards).random(
        "a __haircolor__ knight", [50, 51, 52, 53]
    )
    assert {e.template for e in expanded} == {"a __haircolor__ knight"}
    assert {e.config.negative_prompt for e in expanded} == {"blurry"}
    # Consecutive images with the same prompt stay one batch, so neighbours always differ.
    assert all(a.config.prompt != b.config.prompt for a, b in itertools.pairwise(expanded))


def test_expand_config_keeps_a_batch_whose_prompts_agree(wildcards: Path) -> None:
    config = RunConfig.from_dict({"prompt": "{only one}", "seed": 9, "batch_size": 3})
    expanded = expand_config(config, PromptExpander(wildcards))
    assert [(e.config.prompt, e.config.seed, e.config.batch_size) for e in expanded] == [("only one", 9, 3)]


def test_expand_config_without_syntax_is_unchanged_and_random_seed_is_fixed(wildcards: Path) -> None:
    plain = RunConfig.from_dict({"prompt": "a fox", "seed": -1})
    assert [e.config for e in expand_config(plain, PromptExpander(wildcards))] == [plain]
    assert not has_dynamic_syntax("a fox, (x:1.2)") and has_dynamic_syntax("{a|b}")
    templated = plain.model_copy(update={"prompt": "a {red|grey} fox"})
    expanded = expand_config(templated, PromptExpander(wildcards), rng=random.Random(5))
    assert expanded[0].config.seed == random.Random(5).randrange(4294967294)


def test_combinatorial_config_expansion_numbers_seeds(wildcards: Path) -> None:
    config = RunConfig.from_dict({"prompt": "__people/job__", "negative_prompt": "{dark|bright}", "seed": 7})
    expanded = expand_config(config, PromptExpander(wildcards), combinatorial=True)
    assert [(e.config.prompt, e.config.negative_prompt, e.config.seed) for e in expanded] == [
        ("baker", "dark", 7),
        ("baker", "bright", 8),
        ("knight", "dark", 9),
        ("knight", "bright", 10),
    ]


def test_a_double_underscore_inside_a_lora_tag_is_not_a_wildcard(wildcards: Path) -> None:
    expander = PromptExpander(wildcards)
    prompts = expander.random("{red|blue} fox <lora:my__style:0.8>, <lora:b:1> __haircolor__", [1, 2])
    for prompt in prompts:
        colour, rest = prompt.split(" fox ", 1)
        assert colour in {"red", "blue"} and rest.startswith("<lora:my__style:0.8>, <lora:b:1> ")
        assert rest.split()[-1] in {"red", "blond", "black", "silver"}
    assert expander.combinations("<lora:a__b:1> {x|y}") == ["<lora:a__b:1> x", "<lora:a__b:1> y"]
