"""The pure-Python CLIP tokenizer against transformers' ``CLIPTokenizer``, and A1111's token counter."""

from __future__ import annotations

import random
import unicodedata

import pytest

from stablenew_qt.core.clip_tokens import count_prompt_tokens, default_tokenizer_dir, shared_tokenizer
from stablenew_qt.core.prompt_chunks import Emphasis

SAMPLES = [
    "a photo of a cat",
    "masterpiece, best quality, (1girl:1.2), solo, long hair, [smile], \\(text\\)",
    "café naïve ΑΣ Σίσυφος İstanbul straße ǅungla Ω ﬁ",
    "🙂🙃👍🏽 emoji 😀 ❤️ 🇯🇵",
    "123 4.5 1e10 ½ ² ٣ Ⅻ",
    "don't it's we're I'll you've I'm he'd 'sun 's's a'sb !'s",
    "!!!??? ... ,,, ;; -- __ ~~ <> {} @#$%^&*",
    "日本語のテキスト 中文 한국어 ไทย हिन्दी",
    "\t\n  spaced   out \u3000 ideographic \u00a0 nbsp \u200b zero width \x1c sep",
    "<|endoftext|> a <|startoftext|>b x<|endoftext|>y!<|endoftext|>",
    "e\u0301 combining ñ ÀÉÎÕÜ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ـ tatweel",
    "https://example.com/a_b-c?d=1&e=2 &amp; html",
    "",
]


@pytest.fixture(scope="module")
def reference():  # transformers' tokenizer on the same vocabulary files
    transformers = pytest.importorskip("transformers")
    return transformers.CLIPTokenizer.from_pretrained(str(default_tokenizer_dir()))


def test_ids_equal_transformers_on_chosen_prompts(reference) -> None:
    tokenizer = shared_tokenizer()
    for text in SAMPLES:
        assert tokenizer.encode(text) == reference(text, add_special_tokens=False)["input_ids"], text


def test_ids_equal_transformers_on_random_text(reference) -> None:
    # Random assigned code points (Python's Unicode database is version 14 here; characters the
    # reference's newer tables know and ours does not are left out) and a prompt-like alphabet.
    rng = random.Random(0)
    tokenizer = shared_tokenizer()
    alphabet = "abcdefghij ABC,.!?'()[]:|<>0123456789éßΣσ日本🙂\u0301\t\n"
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert tokenizer.encode(text) == reference(text, add_special_tokens=False)["input_ids"], text
    for _ in range(400):
        chars = (chr(rng.randint(32, 0x2FFFF)) for _ in range(rng.randint(1, 8)))
        text = "".join(c for c in chars if unicodedata.category(c) not in ("Cn", "Co", "Cs"))
        assert tokenizer.encode(text) == reference(text, add_special_tokens=False)["input_ids"], text


def test_special_and_comma_ids_are_clips() -> None:
    tokenizer = shared_tokenizer()
    assert (tokenizer.start_id, tokenizer.end_id, tokenizer.comma_id) == (49406, 49407, 267)


def test_a_long_weighted_prompt_counts_its_words_tokens(reference) -> None:
    # How fast this is (the window counts as the user types) is measured, not asserted here:
    # tests/benchmarks/prompt_encoding.py, ``count_ms`` (docs/benchmarks.md, "Prompt encoding").
    prompt = ", ".join(f"(word{i}:1.{i % 9}) [scenery{i * 7}] thing" for i in range(45))
    plain = ", ".join(f"word{i} scenery{i * 7} thing" for i in range(45))  # the weights' syntax gone
    expected = len(reference(plain, add_special_tokens=False)["input_ids"])
    assert expected > 300
    assert count_prompt_tokens(prompt, comma_padding_backtrack=0) == (expected, -(-expected // 75) * 75)
    used, limit = count_prompt_tokens(prompt)  # commas pad chunks (A1111's default backtrack 20)
    assert used > expected and limit == -(-used // 75) * 75


WORD = "cat"  # one token


def words(n: int) -> str:
    return " ".join([WORD] * n)


@pytest.mark.parametrize(
    ("prompt", "kwargs", "expected"),
    [
        ("", {}, (0, 75)),
        ("a cat", {}, (2, 75)),
        (words(75), {}, (75, 75)),
        (words(76), {}, (76, 150)),
        (words(150), {}, (150, 150)),
        (words(151), {}, (151, 225)),
        # BREAK closes a chunk: 75 for it, then the last chunk's tokens.
        ("a BREAK b", {}, (76, 150)),
        ("a BREAK", {}, (75, 75)),
        # Brackets and weights are no tokens, unless emphasis is None (then BREAK is a word too).
        ("(cat:1.2) [dog]", {}, (2, 75)),
        ("(cat:1.2) [dog]", {"emphasis": Emphasis.NONE}, (10, 75)),  # ( cat : 1 . 2 ) [ dog ]
        ("a BREAK b", {"emphasis": Emphasis.NONE}, (3, 75)),
        # Extra-network tags are not counted.
        ("a <lora:some_name:0.8> cat", {}, (2, 75)),
        # The longest text of the schedule, and the longest AND part, are shown.
        (f"[cat:{words(80)}:5]", {}, (80, 150)),
        (f"cat AND {words(90)}", {}, (90, 150)),
        # A negative prompt is not split at AND: "AND" is one more token.
        (f"cat AND {words(90)}", {"negative": True}, (92, 150)),
    ],
)
def test_counter_matches_a1111_rules(
    prompt: str, kwargs: dict[str, object], expected: tuple[int, int]
) -> None:
    assert count_prompt_tokens(prompt, **kwargs) == expected  # type: ignore[arg-type]


def test_comma_back_track_moves_the_last_phrase_and_counts_a_full_chunk() -> None:
    # 70 tokens, a comma (71), then a 10-token phrase: the boundary falls inside the phrase, the
    # comma is 5 tokens back (<= 20), so the phrase moves: 75 for the first chunk + 10.
    prompt = words(70) + ", " + words(10)
    assert count_prompt_tokens(prompt) == (85, 150)
    assert count_prompt_tokens(prompt, comma_padding_backtrack=0) == (81, 150)
    # A comma 30 tokens back is too far for the default 20.
    far = words(45) + ", " + words(40)
    assert count_prompt_tokens(far) == (86, 150)
