"""expand_dynamic: the one expansion the CLI's ``--wildcards`` and the window's Generate share
(stepped copies, random or combinatorial, the group meta), and the window's one-line summary."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.sweep.dynamic import DynamicOptions, describe_dynamic, expand_dynamic


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "wildcards"
    path.mkdir()
    (path / "haircolor.txt").write_text("red\nblond\n# none\nblack\n", encoding="utf-8")
    return path


def test_random_runs_step_their_seeds_and_keep_the_template(folder: Path) -> None:
    config = RunConfig(prompt="__haircolor__ {fox|cat}", seed=10)
    expansion = expand_dynamic([config], DynamicOptions(folder, count=3))
    assert [c.seed for c in expansion.configs] == [10, 11, 12]
    assert all(c.prompt_template == "__haircolor__ {fox|cat}" for c in expansion.configs)
    again = expand_dynamic([config], DynamicOptions(folder, count=3))
    assert [c.prompt for c in again.configs] == [c.prompt for c in expansion.configs]
    assert expansion.meta == {
        "template": "__haircolor__ {fox|cat}",
        "negative_template": "",
        "mode": "random",
        "label": "wildcards (random)",
        "folder": str(folder.resolve()),
    }


def test_combinatorial_gives_every_combination_up_to_the_count(folder: Path) -> None:
    config = RunConfig(prompt="__haircolor__ {fox|cat}", seed=5)
    every = expand_dynamic([config], DynamicOptions(folder, combinatorial=True))
    assert sorted(c.prompt for c in every.configs) == sorted(
        f"{h} {a}" for h in ("red", "blond", "black") for a in ("fox", "cat")
    )
    assert [c.seed for c in every.configs] == list(range(5, 11))
    assert len(expand_dynamic([config], DynamicOptions(folder, combinatorial=True, count=4)).configs) == 4


def test_without_a_folder_variants_expand_and_a_wildcard_is_refused() -> None:
    expansion = expand_dynamic([RunConfig(prompt="{red|blue} fox", seed=1)], DynamicOptions())
    assert expansion.configs[0].prompt in {"red fox", "blue fox"} and "folder" not in expansion.meta
    with pytest.raises(ConfigError, match="no wildcards folder is set"):
        expand_dynamic([RunConfig(prompt="__haircolor__")], DynamicOptions())


def test_a_missing_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        expand_dynamic([RunConfig(prompt="{a|b}")], DynamicOptions(tmp_path / "none", field="--wildcards"))
    assert caught.value.problems[0].field == "--wildcards"
    assert "is not a folder of wildcard .txt files" in str(caught.value)


def test_a_random_seed_is_fixed_once_with_the_given_rng() -> None:
    config = RunConfig(prompt="{a|b|c}", seed=-1, batch_count=3)
    one = expand_dynamic([config], DynamicOptions(), random.Random(7))
    two = expand_dynamic([config], DynamicOptions(), random.Random(7))
    assert [c.seed for c in one.configs] == [c.seed for c in two.configs]
    assert -1 not in [c.seed for c in one.configs] and one.images == 3


def test_describe_says_what_generate_makes() -> None:
    config = RunConfig(prompt="a __haircolor__ {fox|cat}", batch_count=4)
    assert describe_dynamic(config, DynamicOptions()) == (
        "4 prompts from __haircolor__, {fox|cat} (random, drawn from each image's seed)"
    )
    assert "combinatorial" in describe_dynamic(config, DynamicOptions(combinatorial=True))
    assert describe_dynamic(RunConfig(prompt="a fox"), DynamicOptions()) == ""


def test_max_prompts_caps_combinations_even_at_one(folder: Path) -> None:
    config = RunConfig(prompt="__haircolor__ {fox|cat}", seed=5)
    one = expand_dynamic([config], DynamicOptions(folder, combinatorial=True, max_prompts=1))
    assert len(one.configs) == 1


def test_a_prompt_that_expands_to_itself_does_not_vary(folder: Path) -> None:
    lora = RunConfig(prompt="<lora:my__style:0.8> a fox", batch_count=3)
    assert not expand_dynamic([lora], DynamicOptions(folder)).varies
    assert expand_dynamic([RunConfig(prompt="{red|blue} fox")], DynamicOptions()).varies
