"""A1111's emphasis modes (``sd_emphasis.py``): how per-token weights act on one chunk's output."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stablenew_qt.core.prompt_chunks import Emphasis

if TYPE_CHECKING:
    import torch


def apply_emphasis(z: torch.Tensor, multipliers: torch.Tensor, mode: Emphasis) -> torch.Tensor:
    """``z`` ``[B, 77, C]`` weighted by ``multipliers`` ``[B, 77]`` as A1111's ``mode`` does it.

    Original: multiply, then scale the whole batch so its mean equals the unweighted mean (one
    mean over every text, token and feature of the batch, as A1111 computes it). Where the weighted
    mean is exactly 0 (degenerate encoders), A1111 divides 0 by 0 and draws NaN; we keep the
    weighted values instead. No norm: multiply only. Ignore and None: unchanged.
    """
    if mode in (Emphasis.IGNORE, Emphasis.NONE):
        return z
    weighted = z * multipliers.reshape(*multipliers.shape, 1).expand(z.shape)
    if mode == Emphasis.NO_NORM:
        return weighted
    import torch

    original_mean = z.mean()
    new_mean = weighted.mean()
    safe = torch.where(new_mean == 0, torch.ones_like(new_mean), new_mean)
    ratio = torch.where(new_mean == 0, torch.ones_like(new_mean), original_mean / safe)
    return weighted * ratio
