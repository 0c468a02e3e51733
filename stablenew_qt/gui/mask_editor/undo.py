"""Undo and redo for the mask, in bounded memory: each step keeps only the tiles it changed.

The mask is cut into :data:`TILE` x :data:`TILE` tiles (4 KiB each). A brush stroke saves a tile the
first time the stroke is about to touch it (its "before" bytes) and, when it ends, keeps the saved
tiles whose bytes really changed. Undo swaps a step's saved tiles with the mask's, so the same step
redoes by swapping back: a step costs one copy of its tiles, never a copy of the whole image.
Invert is its own inverse and keeps no pixels at all.

The bound: the steps held (undo and redo together) take at most ``budget_bytes`` of tile copies,
oldest dropped first, except that the latest step is always kept however large (at most one full
copy of the mask: 4 MiB at 2048 x 2048).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .strokes import Bounds, Mask

#: Tile side in pixels (64 x 64 x 1 byte = 4 KiB).
TILE = 64
#: Default memory budget for the steps held: 64 MiB (16 full-image steps at 2048 x 2048).
DEFAULT_BUDGET_BYTES = 64 * 1024 * 1024

_TileKey = tuple[int, int]  # (tile row, tile column)


def _tile_slices(key: _TileKey) -> tuple[slice, slice]:
    row, column = key
    return slice(row * TILE, (row + 1) * TILE), slice(column * TILE, (column + 1) * TILE)


def _tile_bounds(keys: list[_TileKey], shape: tuple[int, ...]) -> Bounds | None:
    if not keys:
        return None
    rows = [k[0] for k in keys]
    columns = [k[1] for k in keys]
    return Bounds(
        min(columns) * TILE,
        min(rows) * TILE,
        min(shape[1], (max(columns) + 1) * TILE),
        min(shape[0], (max(rows) + 1) * TILE),
    )


@dataclass
class _TileStep:
    label: str
    tiles: dict[_TileKey, Mask]

    @property
    def nbytes(self) -> int:
        return sum(tile.nbytes for tile in self.tiles.values())

    def swap(self, mask: Mask) -> Bounds | None:
        for key, saved in self.tiles.items():
            rows, columns = _tile_slices(key)
            current = mask[rows, columns].copy()
            mask[rows, columns] = saved
            self.tiles[key] = current
        return _tile_bounds(list(self.tiles), mask.shape)


@dataclass
class _InvertStep:
    label: str = "invert"
    nbytes: int = 0

    def swap(self, mask: Mask) -> Bounds | None:
        np.subtract(255, mask, out=mask)
        return Bounds(0, 0, mask.shape[1], mask.shape[0])


_Step = _TileStep | _InvertStep


@dataclass
class TileUndoStack:
    """Steps over one mask array (the caller passes the same array to every call)."""

    budget_bytes: int = DEFAULT_BUDGET_BYTES
    _done: list[_Step] = field(default_factory=list)
    _undone: list[_Step] = field(default_factory=list)
    _stroke: dict[_TileKey, Mask] | None = None
    _bytes: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes of tile copies held by all steps (undo and redo)."""
        return self._bytes

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def undo_label(self) -> str:
        return self._done[-1].label if self._done else ""

    @property
    def redo_label(self) -> str:
        return self._undone[-1].label if self._undone else ""

    def __len__(self) -> int:
        return len(self._done)

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
        self._stroke = None
        self._bytes = 0

    # -- recording a stroke -------------------------------------------------------------------

    def begin_stroke(self) -> None:
        self._stroke = {}

    def before_change(self, mask: Mask, bounds: Bounds) -> None:
        """Save the tiles under ``bounds`` that this stroke has not touched yet (call before painting)."""
        if self._stroke is None:
            raise RuntimeError("before_change() outside a stroke: call begin_stroke() first")
        for row in range(bounds.y0 // TILE, (bounds.y1 - 1) // TILE + 1):
            for column in range(bounds.x0 // TILE, (bounds.x1 - 1) // TILE + 1):
                if (row, column) not in self._stroke:
                    rows, columns = _tile_slices((row, column))
                    self._stroke[row, column] = mask[rows, columns].copy()

    def end_stroke(self, mask: Mask, label: str) -> bool:
        """Keep the stroke's changed tiles as one step; False when it changed nothing."""
        saved, self._stroke = self._stroke or {}, None
        changed = {
            key: tile for key, tile in saved.items() if not np.array_equal(tile, mask[_tile_slices(key)])
        }
        if not changed:
            return False
        self._push(_TileStep(label, changed))
        return True

    # -- whole-mask operations ----------------------------------------------------------------

    def push_change(self, before: Mask, after: Mask, label: str) -> bool:
        """One step from two full copies (clear, load, from alpha): keeps only the changed tiles."""
        if before.shape != after.shape:
            raise ValueError(f"mask shapes differ: {before.shape} and {after.shape}")
        height, width = before.shape
        rows, columns = -(-height // TILE), -(-width // TILE)
        differs = before != after
        if differs.shape != (rows * TILE, columns * TILE):  # pad partial edge tiles
            padded = np.zeros((rows * TILE, columns * TILE), dtype=bool)
            padded[:height, :width] = differs
            differs = padded
        touched = differs.reshape(rows, TILE, columns, TILE).any(axis=(1, 3))
        changed = {
            (int(r), int(c)): before[_tile_slices((int(r), int(c)))].copy() for r, c in np.argwhere(touched)
        }
        if not changed:
            return False
        self._push(_TileStep(label, changed))
        return True

    def push_invert(self) -> None:
        self._push(_InvertStep())

    # -- undo and redo ------------------------------------------------------------------------

    def undo(self, mask: Mask) -> Bounds | None:
        """Undo the latest step on ``mask``; the bounds it changed (None when there was none)."""
        if not self._done:
            return None
        step = self._done.pop()
        bounds = step.swap(mask)
        self._undone.append(step)
        return bounds

    def redo(self, mask: Mask) -> Bounds | None:
        if not self._undone:
            return None
        step = self._undone.pop()
        bounds = step.swap(mask)
        self._done.append(step)
        return bounds

    def _push(self, step: _Step) -> None:
        self._bytes -= sum(s.nbytes for s in self._undone)
        self._undone.clear()
        self._done.append(step)
        self._bytes += step.nbytes
        while self._bytes > self.budget_bytes and len(self._done) > 1:
            self._bytes -= self._done.pop(0).nbytes
