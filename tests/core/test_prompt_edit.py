"""Ctrl+Up / Ctrl+Down weight editing (``core/prompt_edit.py``), case by case.

Every expected row below is what A1111 1.10's ``javascript/edit-attention.js`` gives on the same
prompt box (run with node through ``a1111_edit_attention_harness.js``; the random comparison is
``test_prompt_edit_vs_a1111.py``). Equality is exact: text and selection positions.
"""

from __future__ import annotations

import math

import pytest

from stablenew_qt.core.prompt_edit import (
    EditResult,
    WeightKeys,
    edit_attention,
    js_number_to_string,
    js_parse_float,
    to_precision,
)

UP, DOWN = 1, -1

# (case, text, selection start, selection end, direction, expected text, expected start, end)
CASES = [
    # a selection
    ("selection wrapped", "a cat, dog", 2, 5, UP, "a (cat:1.1), dog", 3, 6),
    ("selection wrapped down", "a cat, dog", 2, 5, DOWN, "a (cat:0.9), dog", 3, 6),
    ("selection trailing space left out", "a cat dog", 2, 6, UP, "a (cat:1.1) dog", 3, 6),
    ("selection of spaces only", "a   b", 1, 3, UP, "a   b", 1, 3),
    ("selection reversed", "a cat, dog", 5, 2, UP, "a (cat:1.1), dog", 3, 6),
    ("selection of several words", "red cat, dog", 0, 7, UP, "(red cat:1.1), dog", 1, 8),
    ("selection inside weight back to 1", "(cat:1.1)", 1, 4, DOWN, "cat", 0, 3),
    ("selection of a whole group", "(cat:1.1)", 0, 9, UP, "((cat:1.1):1.1)", 1, 10),
    # the word under the cursor
    ("cursor in word", "a cat, dog", 3, 3, UP, "a (cat:1.1), dog", 3, 6),
    ("cursor at word end", "a cat", 5, 5, UP, "a (cat:1.1)", 3, 6),
    ("cursor at word start", "a cat", 2, 2, DOWN, "a (cat:0.9)", 3, 6),
    ("cursor between delimiters", "a, , b", 3, 3, UP, "a, , b", 3, 3),
    ("underscore is part of a word", "top,best_quality", 7, 7, UP, "top,(best_quality:1.1)", 5, 17),
    ("hyphen is part of a word", "close-up shot", 2, 2, UP, "(close-up:1.1) shot", 1, 9),
    ("new line delimits", "cat\ndog", 5, 5, UP, "cat\n(dog:1.1)", 5, 8),
    ("tab delimits", "cat\tdog", 1, 1, UP, "(cat:1.1)\tdog", 1, 4),
    ("empty text", "", 0, 0, UP, "", 0, 0),
    ("BREAK is a word", "cat BREAK dog", 6, 6, UP, "cat (BREAK:1.1) dog", 5, 10),
    ("cursor after a group", "(cat:1.2) dog", 9, 9, UP, "(cat:1.2) dog", 9, 9),
    # inside brackets
    ("weighted group up", "(cat:1.1)", 2, 2, UP, "(cat:1.2)", 1, 4),
    ("weighted group down to 1", "(cat:1.1)", 2, 2, DOWN, "cat", 0, 3),
    ("weighted group up to 1", "(cat:0.9)", 2, 2, UP, "cat", 0, 3),
    ("weighted phrase", "(red cat:1.5), dog", 2, 2, UP, "(red cat:1.6), dog", 1, 8),
    ("old style (x) up", "(cat)", 2, 2, UP, "(cat:1.2)", 1, 4),
    ("old style (x) down", "(cat)", 2, 2, DOWN, "cat", 0, 3),
    ("old style ((x)) up", "a ((cat)) b", 5, 5, UP, "a (cat:1.3) b", 3, 6),
    ("old style [x] up", "[cat]", 2, 2, UP, "cat", 0, 3),
    ("old style [x] down", "[cat]", 2, 2, DOWN, "(cat:0.8)", 1, 4),
    ("old style [[x]] down", "[[cat]]", 3, 3, DOWN, "(cat:0.7)", 1, 4),
    ("old style five deep", "(((((cat)))))", 7, 7, UP, "(cat:1.7)", 1, 4),
    ("old style unbalanced", "((cat)", 3, 3, UP, "((cat:1.2)", 2, 5),
    ("group without weight", "(cat:x)", 2, 2, UP, "(cat:x:1.2)", 1, 6),
    ("prompt editing", "[cat:dog:0.5]", 2, 2, UP, "[(cat:dog:1.1):0.5]", 2, 9),
    # nesting and escapes
    ("nested: inner group", "((cat:1.2), dog:1.1)", 3, 3, UP, "((cat:1.3), dog:1.1)", 2, 5),
    ("nested: word in outer group", "((cat:1.2), dog:1.1)", 13, 13, UP, "((cat:1.2), (dog:1.1):1.1)", 13, 16),
    ("tag inside group", "(a <lora:x:1> b:1.2)", 1, 1, UP, "(a <lora:x:1> b:1.3)", 1, 15),
    ("escaped brackets", "\\(cat\\)", 3, 3, UP, "\\(cat\\:1.2)", 2, 6),
    ("escaped next to a group", "a \\(b\\) (c:1.1)", 10, 10, UP, "a \\(b\\) (c:1.2)", 9, 10),
    # extra networks
    ("lora up", "<lora:add_detail:1>", 8, 8, UP, "<lora:add_detail:1.05>", 1, 16),
    ("lora down", "<lora:add_detail:1>", 8, 8, DOWN, "<lora:add_detail:0.95>", 1, 16),
    ("lora back to 1 keeps the weight", "<lora:x:1.05>", 3, 3, DOWN, "<lora:x:1.0>", 1, 7),
    ("lora without weight", "<lora:x>", 3, 3, UP, "<lora:x>", 1, 7),
    ("lora with a named arg last", "<lora:x:0.8:te=1>", 3, 3, UP, "<lora:x:0.8:te=1>", 1, 11),
    ("lora with two numbers", "<lora:x:0.8:0.5>", 3, 3, UP, "<lora:x:0.8:0.55>", 1, 11),
    ("hypernet", "a, <hypernet:h:0.5>", 6, 6, UP, "a, <hypernet:h:0.55>", 4, 14),
    ("lora selected by hand", "<lora:x:1>", 1, 7, UP, "<lora:x:1.05>", 1, 7),
    # weights and A1111's rounding
    ("weight 0.1 down to 0", "(cat:0.1)", 2, 2, DOWN, "(cat:0.0)", 1, 4),
    ("weight 0 down", "(cat:0.0)", 2, 2, DOWN, "(cat:-0.1)", 1, 4),
    ("weight 1.9 up", "(cat:1.9)", 2, 2, UP, "(cat:2.0)", 1, 4),
    ("weight 0.7 up rounds", "(cat:0.7)", 2, 2, UP, "(cat:0.8)", 1, 4),
    ("weight 1.15 down rounds", "(cat:1.15)", 2, 2, DOWN, "(cat:1.05)", 1, 4),
    ("weight with trailing junk", "(cat:1.2abc)", 2, 2, UP, "(cat:1.3)", 1, 4),
    ("weight after a space", "(cat: 1.1)", 2, 2, UP, "(cat: 1.1:1.2)", 1, 9),
    ("tiny weight", "(cat:1e-7)", 2, 2, DOWN, "(cat:-0.0999999)", 1, 4),
    ("huge weight", "(cat:100000000000000000000)", 2, 2, UP, "(cat:100000000000000000000.0)", 1, 4),
    ("infinite weight", "(cat:Infinity)", 2, 2, UP, "(cat:Infinity:1.2)", 1, 13),
    ("negative weight", "(cat:-0.3)", 2, 2, UP, "(cat:-0.2)", 1, 4),
    # unicode
    ("cjk word", "猫, 犬", 0, 0, UP, "(猫:1.1), 犬", 1, 2),
    ("after an astral character", "🐱 cat", 3, 3, UP, "🐱 (cat:1.1)", 3, 6),
    ("accented word", "a café", 3, 3, UP, "a (café:1.1)", 3, 7),
    ("ideographic comma is not a delimiter", "猫、犬", 1, 1, UP, "(猫、犬:1.1)", 1, 4),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "start", "end", "direction", "new_text", "new_start", "new_end"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_edit_attention_as_a1111(
    text: str, start: int, end: int, direction: int, new_text: str, new_start: int, new_end: int
) -> None:
    assert edit_attention(text, start, end, direction) == EditResult(new_text, new_start, new_end)


def test_held_key_steps_through_weights_and_back() -> None:
    text, start, end = "a cat", 3, 3
    seen = []
    for direction in (UP, UP, UP, DOWN, DOWN, DOWN, DOWN):
        text, start, end = edit_attention(text, start, end, direction)
        seen.append(text)
    assert seen == [
        "a (cat:1.1)",
        "a (cat:1.2)",
        "a (cat:1.3)",
        "a (cat:1.2)",
        "a (cat:1.1)",
        "a cat",
        "a (cat:0.9)",
    ]
    assert text[start:end] == "cat"


def test_settings_change_the_step_and_the_delimiters() -> None:
    fine = WeightKeys(precision_attention=0.05, precision_extra=0.01)
    assert edit_attention("(cat:1.1)", 2, 2, UP, fine).text == "(cat:1.15)"
    assert edit_attention("<lora:x:1>", 3, 3, DOWN, fine).text == "<lora:x:0.99>"
    no_space = WeightKeys(delimiters=",")
    # Without the space as a delimiter the word runs to the commas; its outer spaces stay outside.
    assert edit_attention("a, red cat ,b", 5, 5, UP, no_space) == EditResult("a, (red cat:1.1) ,b", 4, 11)


@pytest.mark.parametrize("value", [0, -0.1, math.nan, math.inf])
def test_weight_keys_refuse_a_step_that_is_not_positive(value: float) -> None:
    with pytest.raises(ValueError, match="precision_attention must be a positive number"):
        WeightKeys(precision_attention=value)


def test_bad_direction_or_selection_is_refused() -> None:
    with pytest.raises(ValueError, match="direction must be 1"):
        edit_attention("cat", 0, 0, 2)
    with pytest.raises(ValueError, match="outside a text of 3 characters"):
        edit_attention("cat", 1, 4, UP)


# What node prints for String(x), x.toPrecision(n) and parseFloat(s).
@pytest.mark.parametrize(
    ("value", "written"),
    [
        (1.2000000000000002, "1.2000000000000002"), (0.1, "0.1"), (1e21, "1e+21"), (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"), (0.000001, "0.000001"), (123456789012345680000, "123456789012345680000"),
        (1e16, "10000000000000000"), (-0.5, "-0.5"), (2.0, "2"), (0.30000000000000004, "0.30000000000000004"),
        (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"), (0.00001234, "0.00001234"),
        (-0.0, "0"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (math.nan, "NaN"),
    ],
)  # fmt: skip
def test_numbers_are_written_as_javascript_writes_them(value: float, written: str) -> None:
    assert js_number_to_string(value) == written


@pytest.mark.parametrize(
    ("value", "digits", "rounded"),
    [(100000000000.5, 12, 100000000001.0), (2.5, 1, 3.0), (0.125, 2, 0.13), (-2.5, 1, -3.0),
     (0.7999999999999999, 12, 0.8), (1.0499999999999998, 12, 1.05), (math.inf, 12, math.inf)],
)  # fmt: skip
def test_to_precision_rounds_ties_away_from_zero_as_javascript(
    value: float, digits: int, rounded: float
) -> None:
    assert to_precision(value, digits) == rounded


@pytest.mark.parametrize(
    ("text", "number"),
    [(" 1.5x", 1.5), ("\u00a01.5", 1.5), ("\u00851.5", None), ("1.e5", 100000.0), (".5.5", 0.5),
     ("-.5e-3z", -0.0005), ("+Infinityx", math.inf), ("e5", None), ("1e", 1.0), ("1_0", 1.0),
     ("\u0661", None), ("0x10", 0.0)],
)  # fmt: skip
def test_parse_float_reads_the_leading_number_as_javascript(text: str, number: float | None) -> None:
    assert js_parse_float(text) == number
