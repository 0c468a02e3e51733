"""Extra-network tags and ``AND`` parts, against A1111 1.10 (``extra_networks.parse_prompt``,
``prompt_parser.get_multicond_prompt_list``); expected values measured on A1111's functions."""

from __future__ import annotations

import pytest

from stablenew_qt.core.prompt_parser import (
    ExtraNetworkTag,
    PromptPart,
    extract_extra_networks,
    parse_prompt,
    split_and,
)


def test_tags_are_cut_and_typed() -> None:
    text, tags = extract_extra_networks("a, <lora:detail:0.8>, b <hypernet:anime:1> <lyco:x:1:0.5:dyn=16>")
    # Only the tag goes: the commas and spaces around it stay.
    assert text == "a, , b  "
    assert [t.name for t in tags] == ["lora", "hypernet", "lyco"]
    assert tags[0].positional == ("detail", "0.8") and tags[0].named == {}
    assert tags[2].positional == ("x", "1", "0.5") and tags[2].named == {"dyn": "16"}


def test_named_arguments_need_exactly_one_equals_sign() -> None:
    tag = ExtraNetworkTag(name="lora", args=("name", "te=0.5", "unet=1", "a=b=c", "=x"))
    assert tag.named == {"te": "0.5", "unet": "1", "": "x"}
    assert tag.positional == ("name", "a=b=c")
    assert tag.text == "<lora:name:te=0.5:unet=1:a=b=c:=x>"


@pytest.mark.parametrize(
    ("prompt", "text", "names"),
    [
        ("<lora:a>", "", ["lora"]),
        ("<lora>", "<lora>", []),  # no colon: not a tag
        ("<my-net:a>", "<my-net:a>", []),  # the name must be word characters
        ("<a:b<c:d>", "", ["a"]),  # args run to the first ">"
        ("x <ünï:1> y", "x  y", ["ünï"]),
        ("<lora:a:1><lora:b:1>", "", ["lora", "lora"]),
    ],
)
def test_tag_edges(prompt: str, text: str, names: list[str]) -> None:
    got_text, tags = extract_extra_networks(prompt)
    assert got_text == text
    assert [t.name for t in tags] == names


@pytest.mark.parametrize(
    ("prompt", "parts"),
    [
        ("a cat", [("a cat", 1.0)]),
        ("a cat AND a dog", [("a cat", 1.0), (" a dog", 1.0)]),
        ("a cat :1.5 AND a dog: 0.5  ", [("a cat", 1.5), (" a dog", 0.5)]),
        ("cat:2", [("cat", 2.0)]),  # a weight without any AND
        ("(cat:1.2)", [("(cat:1.2)", 1.0)]),
        ("a and b", [("a and b", 1.0)]),
        ("ANDROID AND x", [("ANDROID", 1.0), (" x", 1.0)]),
        ("a AND", [("a", 1.0), ("", 1.0)]),
        ("x :-.5", [("x", -0.5)]),
        ("x:1.", [("x", 1.0)]),
        ("multi\nline:3", [("multi\nline", 3.0)]),
    ],
)
def test_and_parts_match_a1111(prompt: str, parts: list[tuple[str, float]]) -> None:
    assert [(p.text, p.weight) for p in split_and(prompt)] == parts


def test_parse_prompt_cuts_tags_before_splitting_and_keeps_negatives_whole() -> None:
    parsed = parse_prompt("a <lora:x:1> AND b:2")
    assert parsed.parts == (PromptPart("a", 1.0), PromptPart(" b", 2.0))  # trailing spaces go
    assert [t.text for t in parsed.extra_networks] == ["<lora:x:1>"]
    negative = parse_prompt("ugly AND blurry:2", negative=True)
    assert negative.parts == (PromptPart("ugly AND blurry:2", 1.0),)
