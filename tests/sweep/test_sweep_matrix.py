"""Prompt matrix: A1111's combinations, order, joining, seeds and legend."""

from __future__ import annotations

import random

import pytest

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.sweep import (
    GridLabel,
    PromptMatrixOptions,
    SweepPlan,
    SweepSpec,
    build_sweep,
    sweep_cells,
)
from stablenew_qt.core.sweep.build import build_prompt_matrix


def a1111_prompts(prompt: str, put_at_start: bool, delimiter: str) -> list[str]:
    """A1111 1.10 ``prompt_matrix.py``: bit n of the image number switches part n + 1 on."""
    parts = prompt.split("|")
    out = []
    for number in range(2 ** (len(parts) - 1)):
        selected = [text.strip().strip(",") for n, text in enumerate(parts[1:]) if number & (1 << n)]
        selected = [*selected, parts[0]] if put_at_start else [parts[0], *selected]
        out.append(delimiter.join(selected))
    return out


PROMPT = "a cat |red hat, | blue scarf|sunglasses"


@pytest.mark.parametrize("put_at_start", [False, True])
@pytest.mark.parametrize("joining", ["comma", "space"])
def test_prompts_are_a1111s(put_at_start: bool, joining: str) -> None:
    config = RunConfig.from_dict({"prompt": PROMPT, "seed": 7, "batch_size": 3})
    options = PromptMatrixOptions(put_at_start=put_at_start, joining=joining)  # type: ignore[arg-type]
    plan = build_prompt_matrix(config, options)
    cells = sweep_cells(plan, config)
    assert [c.config.prompt for c in cells] == a1111_prompts(
        PROMPT, put_at_start, ", " if joining == "comma" else " "
    )
    assert [c.index for c in cells] == list(range(8))
    assert {c.config.batch_size for c in cells} == {1}  # one image per combination, as A1111
    assert {c.config.seed for c in cells} == {7}


def test_first_combinations_and_labels() -> None:
    config = RunConfig.from_dict({"prompt": PROMPT, "seed": 7})
    cells = sweep_cells(build_prompt_matrix(config, PromptMatrixOptions()), config)
    assert cells[0].config.prompt == "a cat "  # the first part as typed, A1111 does not strip it
    assert cells[3].config.prompt == "a cat , red hat, blue scarf"
    assert cells[3].label == "red hat, blue scarf"
    assert cells[0].label == "a cat"


def test_negative_prompt_matrix_and_different_seeds() -> None:
    config = RunConfig.from_dict({"prompt": "a fox", "negative_prompt": "blurry|lowres", "seed": 4294967295})
    options = PromptMatrixOptions(prompt_type="negative", different_seeds=True)
    cells = sweep_cells(build_prompt_matrix(config, options), config)
    assert [c.config.negative_prompt for c in cells] == ["blurry", "blurry, lowres"]
    assert {c.config.prompt for c in cells} == {"a fox"}
    assert [c.config.seed for c in cells] == [4294967295, 0]  # seed + i, wrapped like a batch


def test_random_seed_is_fixed_once() -> None:
    config = RunConfig.from_dict({"prompt": "a|b|c", "seed": -1})
    plan = build_prompt_matrix(config, PromptMatrixOptions(), rng=random.Random(3))
    assert plan.base_seed == random.Random(3).randrange(4294967294)
    assert {c.config.seed for c in sweep_cells(plan, config)} == {plan.base_seed}


def test_grid_shape_and_legend() -> None:
    config = RunConfig.from_dict({"prompt": PROMPT})
    plan = build_prompt_matrix(config, PromptMatrixOptions(margin_size=4))
    assert plan.shape == (4, 2, 1)  # 3 parts: 2 label the columns, 1 the rows; rows = 1 << (3 // 2)
    legend = plan.legend()
    assert legend is not None
    assert legend.columns[2] == (GridLabel("red hat, ", False), GridLabel(" blue scarf", True))
    assert legend.rows[1] == (GridLabel("sunglasses", True),)
    cells = sweep_cells(plan, config)
    # Column labels describe the low bits, row labels the high bit, as the images are laid out.
    for cell in cells:
        column, row = legend.columns[cell.x], legend.rows[cell.y]
        parts = [label.text.strip().strip(",") for label in (*column, *row) if label.active]
        assert cell.label == (", ".join(parts) or "a cat")


def test_matrix_plan_round_trips_and_spec_form() -> None:
    config = RunConfig.from_dict({"prompt": "a|b", "seed": 1})
    plan = build_sweep(config, SweepSpec.from_dict({"prompt_matrix": {"different_seeds": True}}))
    assert plan.kind == "prompt_matrix"
    assert SweepPlan.from_json(plan.to_json()) == plan


def test_prompt_without_parts_is_an_error() -> None:
    with pytest.raises(ConfigError, match="prompt: has no \\| to split at"):
        build_prompt_matrix(RunConfig.from_dict({"prompt": "a cat"}), PromptMatrixOptions())
    with pytest.raises(ConfigError, match="at most 12"):
        build_prompt_matrix(RunConfig.from_dict({"prompt": "a" + "|x" * 13}), PromptMatrixOptions())
