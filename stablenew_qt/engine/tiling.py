"""Tiled inference for image-to-image models: split, run tile by tile, blend the seams away.

``run_tiled`` cuts an NCHW tensor into ``tile``-pixel squares that overlap their neighbours by at
least ``overlap`` pixels (spread evenly, so edge tiles never hang over the image), runs a model on
each and blends the outputs with feathered weights: inside an overlap each tile fades out over the
pixels with the least context, and neighbouring weights sum to 1, so the result has no seams. It
knows nothing about the model except its integer ``scale`` and ``out_channels``; the pixel
upscalers use it with A1111's ``ESRGAN_tile`` 192 px and ``ESRGAN_tile_overlap`` 8 px. torch is
imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_FEATHER_FLOOR = 1e-4  # keeps every tile weight positive so the blend never divides by zero


def run_tiled(
    x: torch.Tensor,
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    tile: int,
    overlap: int,
    scale: int,
    out_channels: int,
    check_cancel: Callable[[], None],
) -> torch.Tensor:
    """Run ``model_fn`` over ``x`` (shape ``(1, C, H, W)``) tile by tile; returns ``(1, out_channels,
    H * scale, W * scale)`` float32 on the CPU.

    ``tile`` and ``overlap`` are input pixels with ``tile > 2 * overlap``; an image side no longer
    than ``tile`` is one tile. ``model_fn`` maps a ``(1, C, th, tw)`` slice of ``x`` to a
    ``(1, out_channels, th * scale, tw * scale)`` tensor on any device. ``check_cancel`` is called
    before each tile and raises to stop. Results accumulate on the CPU so the device only ever
    holds one tile and its output. Call it under ``torch.inference_mode()`` for inference.
    """
    import torch

    if tile <= 0 or overlap < 0 or 2 * overlap >= tile:
        raise ValueError(f"tiling needs tile > 2 * overlap >= 0, got tile {tile} and overlap {overlap}")
    s = scale
    _, _, height, width = x.shape
    out = torch.zeros((1, out_channels, height * s, width * s), dtype=torch.float32)
    total = torch.zeros((1, 1, height * s, width * s), dtype=torch.float32)
    for top, weight_y in _axis_tiles(height, tile, overlap, s):
        for left, weight_x in _axis_tiles(width, tile, overlap, s):
            check_cancel()
            th, tw = len(weight_y) // s, len(weight_x) // s
            patch = model_fn(x[..., top : top + th, left : left + tw]).float().cpu()
            weight = weight_y[:, None] * weight_x[None, :]
            region = (..., slice(top * s, (top + th) * s), slice(left * s, (left + tw) * s))
            out[region] += patch * weight
            total[region] += weight
    return out / total


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis, spread evenly so each neighbour overlap is at least ``overlap``."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    span = size - tile
    return [i * span // (count - 1) for i in range(count)]


def _axis_tiles(size: int, tile: int, overlap: int, scale: int) -> list[tuple[int, torch.Tensor]]:
    """(start in input px, blend weight per output px) for each tile along one axis.

    Inside each overlap with a neighbour the weight is ~0 over the outer quarter (the pixels with the
    least context), rises linearly over the middle half and is 1 beyond; a tile's and its
    neighbour's weights sum to 1 across the overlap, so the blend is continuous.
    """
    import torch

    starts = _tile_starts(size, tile, overlap)
    length = min(tile, size)
    centres = torch.arange(length * scale, dtype=torch.float32) + 0.5
    tiles = []
    for i, start in enumerate(starts):
        weight = torch.ones(length * scale)
        if i > 0:
            weight = torch.minimum(weight, _feather(centres, (starts[i - 1] + length - start) * scale))
        if i < len(starts) - 1:
            right_overlap = (start + length - starts[i + 1]) * scale
            weight = torch.minimum(weight, _feather(length * scale - centres, right_overlap))
        tiles.append((start, weight))
    return tiles


def _feather(distance: torch.Tensor, overlap: int) -> torch.Tensor:
    return ((distance - overlap / 4) / (overlap / 2)).clamp(_FEATHER_FLOOR, 1.0)
