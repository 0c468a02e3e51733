"""What a grid's legend says: the labels above each column and beside each row.

A1111 draws each label as a ``GridAnnotation``: a text and whether it is *active*; inactive
labels (the parts a prompt-matrix cell leaves out) are grey and struck through. The X/Y/Z plot
uses one active label per column and row; the prompt matrix lists every optional part on every
column and row, active where that part is in the cell's prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GridLabel", "GridLegend"]


@dataclass(frozen=True)
class GridLabel:
    """One label of a column, row or sub-grid title."""

    text: str
    active: bool = True


@dataclass(frozen=True)
class GridLegend:
    """The legend of one grid: ``columns[i]`` are the labels of column i, stacked top to bottom,
    ``rows[j]`` those of row j. A grid with no legend at all has ``None`` instead of a GridLegend."""

    columns: tuple[tuple[GridLabel, ...], ...]
    rows: tuple[tuple[GridLabel, ...], ...]

    @classmethod
    def simple(cls, column_texts: tuple[str, ...], row_texts: tuple[str, ...]) -> GridLegend:
        """One active label per column and per row (the X/Y/Z plot's legend)."""
        return cls(
            tuple((GridLabel(text),) for text in column_texts),
            tuple((GridLabel(text),) for text in row_texts),
        )
