"""A second, literal implementation of A1111's conditioning, compared with ours on 20 prompts.

Written from the facts of A1111 1.10 (``sd_hijack_clip.py``: ``tokenize_line``, ``forward``,
``process_tokens``; ``sd_emphasis.py``; ``sd_models_xl.py``; ``prompt_parser.py``'s
``parse_prompt_attention``) loop by loop, without using our encoder, chunker or attention parser.
Only the schedule (which texts a prompt has at which steps) comes from ``core.prompt_schedule``;
that one is checked against A1111's own parser in ``tests/core/test_prompt_schedule.py``.
Agreement: max |difference| < 1e-6 in float32 (the same torch ops on the same ids).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from stablenew_qt.core.prompt_schedule import prompt_schedule
from stablenew_qt.engine.conditioning import ConditioningOptions, PromptEncoder

PROMPTS = [
    "a photo of a cat",
    "a (cat:1.3) on a ((red)) [chair], (unbalanced",
    "(((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "\\(literal\\) brackets \\[x\\] and a lone \\ slash",
    "first part BREAK second (part:1.2) BREAK third",
    "(weighted BREAK inside) brackets",
    "[cat:dog:0.5] sitting on [a:the:3] mat",
    "[red|green|blue] ball, [small|(big:1.4)]",
    "[[a:b:2]:c:5] nested [x:[y|z]:4]",
    "landscape, " + ", ".join(f"tree{i} (leaf:1.{i % 5})" for i in range(40)),
    ", ".join(["mountain lake"] * 40) + ", [sun:moon:0.3]",
    "word " * 74 + "edge, wrapping phrase goes here",
    "a, " + "b " * 60 + ", c d e f g h i j k l m n o p q r s",
    "x | y literal pipe (and:1.2) brackets",
    "(a:1.2.3x) not a weight, (b:abc) text weight",
    "",
    "   ",
    "BREAK",
    "[:empty from:2] [empty to::3]",
    "café ΑΣ 🙂 123, (ünïcode:0.8) [日本]",
]

_ATTENTION = re.compile(r"\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def reference_attention(text: str) -> list[list[Any]]:
    res: list[list[Any]] = []
    rounds: list[int] = []
    squares: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for p in range(start, len(res)):
            res[p][1] *= factor

    for m in _ATTENTION.finditer(text):
        token, weight = m.group(0), m.group(1)
        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token == "(":
            rounds.append(len(res))
        elif token == "[":
            squares.append(len(res))
        elif weight is not None and rounds:
            multiply(rounds.pop(), float(weight))
        elif token == ")" and rounds:
            multiply(rounds.pop(), 1.1)
        elif token == "]" and squares:
            multiply(squares.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for start in rounds:
        multiply(start, 1.1)
    for start in squares:
        multiply(start, 1 / 1.1)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


def reference_tokenize_line(
    line: str, tokenizer: Any, html_unescape: bool
) -> list[tuple[list[int], list[float]]]:
    import html

    parsed = reference_attention(line)
    texts = [t for t, _ in parsed]
    if html_unescape:
        texts = [html.unescape(html.unescape(t)).strip() for t in texts]
    tokenized = tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]
    comma = tokenizer.get_vocab()[",</w>"]
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    chunks: list[tuple[list[int], list[float]]] = []
    tokens: list[int] = []
    mults: list[float] = []
    last_comma = -1

    def next_chunk() -> None:
        nonlocal tokens, mults, last_comma
        pad = 75 - len(tokens)
        chunks.append(([start, *tokens, *([end] * pad), end], [1.0, *mults, *([1.0] * pad), 1.0]))
        tokens, mults, last_comma = [], [], -1

    for ids, (text, weight) in zip(tokenized, parsed, strict=True):
        if text == "BREAK" and weight == -1:
            next_chunk()
            continue
        for token in ids:
            if token == comma:
                last_comma = len(tokens)
            elif len(tokens) == 75 and last_comma != -1 and len(tokens) - last_comma <= 20:
                moved, moved_mults = tokens[last_comma + 1 :], mults[last_comma + 1 :]
                tokens, mults = tokens[: last_comma + 1], mults[: last_comma + 1]
                next_chunk()
                tokens, mults = moved, moved_mults
            if len(tokens) == 75:
                next_chunk()
            tokens.append(token)
            mults.append(weight)
    if tokens or not chunks:
        next_chunk()
    return chunks


def reference_forward(texts: list[str], model: Any, tokenizer: Any, role: str) -> tuple[torch.Tensor, Any]:
    per_text = [reference_tokenize_line(t, tokenizer, role == "g") for t in texts]
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    empty = ([start] + [end] * 76, [1.0] * 77)
    zs, pooled = [], None
    for i in range(max(len(c) for c in per_text)):
        batch = [c[i] if i < len(c) else empty for c in per_text]
        ids = torch.tensor([b[0] for b in batch])
        if role == "g":  # pads with 0 after the first end token
            for row in range(ids.shape[0]):
                first = batch[row][0].index(end)
                ids[row, first + 1 :] = 0
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
        z = out.last_hidden_state if role == "sd1" else out.hidden_states[-2]
        if role == "g" and i == 0:
            pooled = out.text_embeds
        mults = torch.tensor([b[1] for b in batch])
        original_mean = z.mean()
        z = z * mults.reshape((*mults.shape, 1)).expand(z.shape)
        z = z * (original_mean / z.mean())
        zs.append(z)
    return torch.hstack(zs), pooled


def _compare(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return float((ours - theirs).abs().max()) if ours.numel() else 0.0


@pytest.mark.slow
def test_sd1_matches_the_literal_reference(sd15_pipe: Any) -> None:
    encoder = PromptEncoder.from_pipeline(sd15_pipe, options=ConditioningOptions())
    worst = 0.0
    for prompt in PROMPTS:
        texts = [t for _, t in prompt_schedule(prompt, 10)]
        theirs, _ = reference_forward(texts, sd15_pipe.text_encoder, sd15_pipe.tokenizer, "sd1")
        ours = torch.stack([c.crossattn for c in encoder.encode_texts(texts)])
        worst = max(worst, _compare(ours, theirs))
    print(f"SD1.x max |ours - reference| = {worst:.3g}")
    assert worst < 1e-6


@pytest.mark.slow
def test_sdxl_matches_the_literal_reference(sdxl_pipe: Any) -> None:
    encoder = PromptEncoder.from_pipeline(sdxl_pipe)
    worst = 0.0
    for prompt in PROMPTS:
        for negative in (False, True):
            texts = [t for _, t in prompt_schedule(prompt, 10)]
            l_out, _ = reference_forward(texts, sdxl_pipe.text_encoder, sdxl_pipe.tokenizer, "l")
            g_out, pooled = reference_forward(texts, sdxl_pipe.text_encoder_2, sdxl_pipe.tokenizer_2, "g")
            crossattn = torch.cat([l_out, g_out], dim=2)
            if negative and all(t == "" for t in texts):  # sd_models_xl: force_zero_embeddings
                crossattn, pooled = torch.zeros_like(crossattn), torch.zeros_like(pooled)
            encoded = encoder.encode_texts(texts, negative=negative)
            worst = max(worst, _compare(torch.stack([c.crossattn for c in encoded]), crossattn))
            worst = max(worst, _compare(torch.stack([c.pooled for c in encoded]), pooled))
    print(f"SDXL max |ours - reference| = {worst:.3g}")
    assert worst < 1e-6


@pytest.mark.parametrize("prompt", ["a (cat:1.2.3)", "(x:.)"])
def test_a_weight_that_is_no_number_fails_like_a1111(sd15_pipe: Any, prompt: str) -> None:
    with pytest.raises(ValueError):
        reference_attention(prompt)
    with pytest.raises(ValueError, match="not a number"):
        PromptEncoder.from_pipeline(sd15_pipe).encode_texts([prompt])
