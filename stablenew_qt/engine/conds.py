"""Prompt conditioning as the sampling loop consumes it.

This is the seam between the prompt encoder (``engine/conditioning``: A1111 chunks, emphasis,
clip skip, prompt editing) and the sampler (``engine/ksampling``: the CFG denoiser). Tensors only;
the texts and their parsing stay on the encoder's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TextCond:
    """One encoded text for one image.

    ``crossattn`` is ``[tokens, dim]`` with ``tokens`` = 77 x the number of 75-token chunks.
    ``pooled`` is SDXL's pooled text embedding ``[dim]`` (from the second encoder's first chunk);
    None for SD1.x.
    """

    crossattn: torch.Tensor
    pooled: torch.Tensor | None = None


@dataclass(frozen=True)
class ScheduledCond:
    """One prompt over the sampling steps (A1111 prompt editing and alternation).

    ``entries`` are ``(end_at_step, cond)`` pairs with ascending ``end_at_step``; at 0-based step
    ``i`` the first entry whose ``end_at_step >= i`` applies; past every end (a sampler that makes
    more model calls than planned, such as DPM adaptive) the *first* entry applies again, as in
    A1111's ``reconstruct_cond_batch``. A prompt without editing has one entry.
    """

    entries: tuple[tuple[int, TextCond], ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("a ScheduledCond needs at least one entry")
        ends = [end for end, _ in self.entries]
        if ends != sorted(ends):
            raise ValueError(f"end steps must ascend, got {ends}")

    def at(self, step: int) -> TextCond:
        """The conditioning that applies at 0-based sampling step ``step``."""
        for end, cond in self.entries:
            if step <= end:
                return cond
        return self.entries[0][1]


@dataclass(frozen=True)
class PromptCond:
    """The positive side of one image: its ``AND`` parts (composable diffusion) and their weights.
    A prompt without ``AND`` has one part of weight 1."""

    parts: tuple[tuple[ScheduledCond, float], ...]

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("a PromptCond needs at least one part")


@dataclass(frozen=True)
class BatchCond:
    """What the CFG denoiser needs for a batch: one PromptCond and one negative schedule per image."""

    cond: tuple[PromptCond, ...]
    uncond: tuple[ScheduledCond, ...]

    def __post_init__(self) -> None:
        if len(self.cond) != len(self.uncond):
            raise ValueError(f"{len(self.cond)} positive but {len(self.uncond)} negative conditionings")
