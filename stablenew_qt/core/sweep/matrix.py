"""A1111's prompt matrix (``scripts/prompt_matrix.py``): ``a|b|c`` parts switched on and off.

The prompt (or the negative prompt) is split at every ``|``. The first part is in every image;
each of the ``n`` other parts is on or off, which makes ``2**n`` images. Image ``i`` contains
part ``k`` (1-based) when bit ``k - 1`` of ``i`` is set; the parts are stripped of spaces and
commas and joined with ``", "`` (or ``" "``), after the first part or, with "put at start",
before it. Every image has the same seed, or with "different seeds" image ``i`` has seed + i.

The grid has ``2**(n // 2)`` rows: the first ``ceil(n / 2)`` parts label the columns, the rest
the rows, and every label lists all of its parts, the ones the cell leaves out grey and struck
through.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .legend import GridLabel, GridLegend

__all__ = ["MAX_MATRIX_PARTS", "PromptMatrix", "PromptMatrixOptions"]

#: At most this many optional parts (2**12 = 4096 images).
MAX_MATRIX_PARTS = 12


class PromptMatrixOptions(BaseModel):
    """A1111's prompt matrix settings (its UI labels in the comments)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: "Put variable parts at start of prompt"
    put_at_start: bool = False
    #: "Use different seed for each picture"
    different_seeds: bool = False
    #: "Select prompt": which prompt holds the ``|`` parts.
    prompt_type: Literal["positive", "negative"] = "positive"
    #: "Select joining char"
    joining: Literal["comma", "space"] = "comma"
    #: "Grid margins (px)"
    margin_size: int = Field(0, ge=0, le=500)


class PromptMatrix(BaseModel):
    """A prompt matrix as planned: its options and the prompt's parts (the first always used)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    options: PromptMatrixOptions = PromptMatrixOptions()
    parts: tuple[str, ...] = Field(min_length=2, max_length=MAX_MATRIX_PARTS + 1)

    @property
    def optional_parts(self) -> tuple[str, ...]:
        return self.parts[1:]

    @property
    def count(self) -> int:
        """How many images: 2 to the number of optional parts."""
        return 1 << len(self.optional_parts)

    @property
    def shape(self) -> tuple[int, int]:
        """(columns, rows) of the grid, as A1111 sizes it."""
        rows = 1 << (len(self.optional_parts) // 2)
        return math.ceil(self.count / rows), rows

    def prompt(self, combination: int) -> str:
        """The prompt text of image ``combination`` (0 ≤ combination < count)."""
        selected = [
            part.strip().strip(",")
            for bit, part in enumerate(self.optional_parts)
            if combination & (1 << bit)
        ]
        ordered = [*selected, self.parts[0]] if self.options.put_at_start else [self.parts[0], *selected]
        return (", " if self.options.joining == "comma" else " ").join(ordered)

    def selected_parts(self, combination: int) -> tuple[str, ...]:
        """The optional parts image ``combination`` uses, stripped (for its queue label)."""
        return tuple(
            p.strip().strip(",") for bit, p in enumerate(self.optional_parts) if combination & (1 << bit)
        )

    def legend(self) -> GridLegend:
        """Every column and row lists its parts, active where that column's or row's bit is set.
        Labels keep the parts' own text, as A1111's do."""
        boundary = math.ceil(len(self.optional_parts) / 2)
        horizontal, vertical = self.optional_parts[:boundary], self.optional_parts[boundary:]

        def labels(parts: tuple[str, ...]) -> tuple[tuple[GridLabel, ...], ...]:
            return tuple(
                tuple(GridLabel(part, bool(pos & (1 << i))) for i, part in enumerate(parts))
                for pos in range(1 << len(parts))
            )

        return GridLegend(labels(horizontal), labels(vertical))


def split_matrix_prompt(text: str) -> tuple[str, ...]:
    """The ``|``-separated parts of ``text`` (A1111 splits on every ``|``, first part unstripped)."""
    return tuple(text.split("|"))
