"""Benchmark (not a test): encoding a 300-token weighted SDXL prompt, cold and cached.

Loads the demo SDXL model (``engine/demo.py``; built on first use), then encodes a 300-token
prompt with attention weights, prompt editing and a negative prompt through ``PromptEncoder``:

- ``cold_ms``: first encode (tokenizing, chunking, both text encoders, emphasis);
- ``cached_ms``: the same prompts again on the same cache (no text encoder runs);
- ``count_ms``: the window's token counter (pure Python) on the same prompt.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/prompt_encoding.py [--repeats 5] [--device cuda]

The demo tokenizer has few merges (about one token per character), so the prompt is sized in
demo tokens after the attention parse: the same 4-chunk workload as a 300-token real prompt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any


def _prompt(encoder: Any, target: int = 300) -> tuple[str, int]:
    """A weighted prompt whose first schedule text has ``target`` tokens after the attention parse."""
    from stablenew_qt.core.prompt_chunks import chunk_prompt
    from stablenew_qt.core.prompt_schedule import prompt_schedule

    clip_l = encoder.encoders[0]
    parts: list[str] = []
    i = 0
    while True:
        parts.append(f"[a{i}:b{i}:0.5]" if i % 7 == 0 else f"(w{i}:1.{i % 9})" if i % 3 else f"x{i}")
        text = ", ".join(parts)
        first = prompt_schedule(text, 30)[0][1]
        _, count = chunk_prompt(first, clip_l.tokenize, clip_l.spec)
        if count >= target:
            return text, count
        i += 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    from diffusers import StableDiffusionXLPipeline

    from stablenew_qt.core.clip_tokens import count_prompt_tokens
    from stablenew_qt.engine.conditioning import ConditioningCache, PromptEncoder
    from stablenew_qt.engine.demo import ensure_demo_model

    pipe = StableDiffusionXLPipeline.from_pretrained(ensure_demo_model("demo-tiny-sdxl")).to(args.device)
    prompt, tokens = _prompt(PromptEncoder.from_pipeline(pipe))
    negative = "lowres, (bad hands:1.3), [blurry], " * 4
    cold, cached, counted = [], [], []
    for _ in range(args.repeats):
        cache = ConditioningCache()
        encoder = PromptEncoder.from_pipeline(pipe, cache=cache, cache_key="bench")
        start = time.perf_counter()
        batch = encoder.encode_batch([prompt], [negative], steps=30)
        if args.device != "cpu":
            torch.cuda.synchronize()
        cold.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        encoder.encode_batch([prompt], [negative], steps=30)
        cached.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        count_prompt_tokens(prompt, 30)
        counted.append((time.perf_counter() - start) * 1000)
    shape = tuple(batch.cond[0].parts[0][0].at(0).crossattn.shape)
    print(
        json.dumps(
            {
                "device": args.device,
                "demo_tokens": tokens,
                "crossattn_shape": shape,
                "cold_ms": round(statistics.median(cold), 2),
                "cached_ms": round(statistics.median(cached), 3),
                "count_ms": round(statistics.median(counted), 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
