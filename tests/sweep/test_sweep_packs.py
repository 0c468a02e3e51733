"""Prompt packs: the TXT and JSON forms, one RunConfig per prompt, bad lines reported together
with their line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.sweep import load_prompt_pack, pack_configs, parse_json_pack, parse_text_pack

BASE = RunConfig.from_dict(
    {"prompt": "base", "negative_prompt": "lowres", "seed": 3, "txt2img": {"steps": 25}}
)

TXT = """\ufeff# my pack
a lighthouse at dusk, oil painting --neg blurry, watermark

  a red fox in snow, <lora:fur:0.8>
portrait --neg
a tool--negotiation scene --negative stays in the prompt
"""


def test_text_pack(tmp_path: Path) -> None:
    path = tmp_path / "pack.txt"
    path.write_text(TXT, encoding="utf-8")
    configs = load_prompt_pack(path, BASE)
    assert [(c.prompt, c.negative_prompt) for c in configs] == [
        ("a lighthouse at dusk, oil painting", "blurry, watermark"),
        ("a red fox in snow, <lora:fur:0.8>", "lowres"),  # no --neg: the base negative prompt
        ("portrait", ""),  # --neg at the end: an empty negative prompt
        ("a tool--negotiation scene --negative stays in the prompt", "lowres"),
    ]
    assert {c.seed for c in configs} == {3} and {c.txt2img.steps for c in configs} == {25}


def test_bad_text_lines_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text_pack("ok\n--neg only negative\nfine\na --neg b --neg c\n")
    assert str(caught.value).splitlines() == [
        "line 2: there is no prompt before --neg",
        "line 4: --neg appears twice; a line has one prompt and one negative",
    ]
    with pytest.raises(ConfigError, match="has no prompts"):
        parse_text_pack("# only comments\n\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_text_pack("caf\xe9".encode("latin-1"))


def test_json_pack_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "pack.json"
    path.write_text(
        '[\n  "a castle",\n  {"prompt": "a ship", "negative_prompt": "", "seed": 9,\n'
        '   "txt2img": {"cfg_scale": 5}}\n]\n',
        encoding="utf-8",
    )
    castle, ship = load_prompt_pack(path, BASE)
    assert (castle.prompt, castle.negative_prompt, castle.seed) == ("a castle", "lowres", 3)
    assert (ship.prompt, ship.negative_prompt, ship.seed) == ("a ship", "", 9)
    assert (ship.txt2img.cfg_scale, ship.txt2img.steps) == (5.0, 25)  # nested keys merge into the base


def test_bad_json_items_name_item_and_line() -> None:
    text = '[\n  "fine",\n  42,\n  {"negative_prompt": "x"},\n  {"prompt": "p"}\n]'
    with pytest.raises(ConfigError) as caught:
        pack_configs(BASE, parse_json_pack(text))
    assert str(caught.value).splitlines() == [
        "item 2 (line 3): must be a prompt in quotes or an object, not int",
        'item 3 (line 4): needs a "prompt" text',
    ]
    with pytest.raises(ConfigError) as caught:
        pack_configs(
            BASE,
            parse_json_pack('[{"prompt": "p", "txt2img": {"steps": 999}},\n{"prompt": "q", "stepz": 1}]'),
        )
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("line 1: txt2img.steps: must be at most 150")
    assert lines[1].startswith("line 2: stepz: unknown key 'stepz'")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"prompt": "x"}', "must be a list"),
        ('["a", "b"', "line 1"),
        ('["a" "b"]', "expected ',' or ']'"),
        ('["a"] extra', "text after the closing"),
        ("[]", "has no prompts"),
    ],
)
def test_malformed_json_packs(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_json_pack(text)


def test_missing_pack_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_prompt_pack(tmp_path / "nope.txt", BASE)
