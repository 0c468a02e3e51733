"""Ctrl+Up/Down against A1111's own ``javascript/edit-attention.js``, run by node on the same inputs.

A1111 is AGPL and is not part of this repository: point ``STABLENEW_A1111_WEBUI`` at a checkout of
stable-diffusion-webui (1.10) to run this. Thousands of random prompt boxes (brackets, weights,
LoRA tags, escapes, new lines, non-ASCII and astral characters; cursors and selections) must give
the same text and selection, exactly (no tolerance: strings and positions compare equal).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from stablenew_qt.core.prompt_edit import edit_attention

HARNESS = Path(__file__).with_name("a1111_edit_attention_harness.js")
PIECES = [
    "cat", "dog", " ", " ", ", ", "(", ")", "[", "]", "<", ">", ":", "1.1", "0.9", "1.05", "0.95",
    "1", "2", "-0.3", "1e-7", "Infinity", ".", "lora:", "add_detail", "hypernet:", "\\(", "\\)",
    "\n", "\t", "é", "猫", "🐱", "AND", "BREAK", "|", "0.5", "=", "1.2abc", "  ",
    "(cat:0.9)", "(cat:1.1)", "<lora:x:1>", "((cat))", "[[dog]]", "[cat:dog:0.5]", "(a (b:1.2) c)",
]  # fmt: skip
ROUNDS = 4  # each round presses the key again on A1111's previous result, as when a key is held


def _a1111_script() -> Path:
    root = os.environ.get("STABLENEW_A1111_WEBUI")
    if not root:
        pytest.skip(
            "set STABLENEW_A1111_WEBUI to an A1111 stable-diffusion-webui checkout to compare with it"
        )
    script = Path(root) / "javascript" / "edit-attention.js"
    if not script.is_file():
        pytest.skip(f"{script} does not exist")
    if shutil.which("node") is None:
        pytest.skip("node is not installed (needed to run A1111's JavaScript)")
    return script


def _utf16(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le")) // 2


def _from_utf16(text: str, units: int) -> int:
    index = 0
    while index < len(text) and _utf16(text, index + 1) <= units:
        index += 1
    return index


def _random_box(rng: random.Random) -> tuple[str, int, int, int]:
    text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14)))
    start = rng.randint(0, len(text))
    end = start if rng.random() < 0.6 else rng.randint(0, len(text))
    return text, min(start, end), max(start, end), rng.choice((1, -1))


def _run_a1111(script: Path, boxes: list[tuple[str, int, int, int]]) -> list[tuple[str, int, int]]:
    lines = [
        json.dumps(
            {
                "text": t,
                "start": _utf16(t, s),
                "end": _utf16(t, e),
                "key": "ArrowUp" if d > 0 else "ArrowDown",
            }
        )
        for t, s, e, d in boxes
    ]
    done = subprocess.run(
        ["node", str(HARNESS), str(script)],
        input="\n".join(lines),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(replies) == len(boxes)
    return [
        (r["text"], _from_utf16(r["text"], r["start"]), _from_utf16(r["text"], r["end"])) for r in replies
    ]


def test_edit_attention_equals_a1111_on_random_prompts() -> None:
    script = _a1111_script()
    rng = random.Random(11)
    boxes = [_random_box(rng) for _ in range(3000)]
    compared = edited = 0
    for _ in range(ROUNDS):
        theirs = _run_a1111(script, boxes)
        for box, reply in zip(boxes, theirs, strict=True):
            assert tuple(edit_attention(*box)) == reply, f"A1111 gives {reply} for {box}"
            compared += 1
            edited += reply[0] != box[0]
        boxes = [(t, s, e, rng.choice((1, -1))) for t, s, e in theirs]
    # Most boxes must really be edited, or the comparison says little.
    assert edited > compared // 2, f"only {edited} of {compared} presses changed the text"
