"""Grid images laid out as A1111 lays them out (``modules/images.py``, A1111 1.10).

- :func:`image_grid` is A1111's ``image_grid``: ``rows`` rows (default ``round(sqrt(n))``),
  ``ceil(n / rows)`` columns, every slot as large as the largest image, smaller images centred,
  a white background.
- :func:`compose_grid` is ``image_grid`` followed by ``draw_grid_annotations`` in one pass (so a
  large grid is allocated once, not twice). Its geometry is A1111's: font size
  ``(cell width + cell height) // 25``, line spacing half of that, labels word-wrapped to the cell
  width (column labels) or to a left band three quarters of a cell wide (row labels, only when
  some row has text), a top band as tall as the tallest column label plus two line spacings,
  ``margin`` pixels between cells, a label too wide for its space drawn in a smaller font, and
  inactive labels grey (#999999) and struck through with a 4 px line.

What differs: the font (DejaVu Sans or Pillow's, see :mod:`.grid_font`; A1111 uses Roboto, so
labels are a few pixels wider or narrower) and :func:`placeholder`, a grey cell that names what
is missing where A1111 pastes a black one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .grid_font import FreeTypeFont, GridFont
from .legend import GridLabel, GridLegend

__all__ = ["compose_grid", "image_grid", "placeholder"]

BACKGROUND = (255, 255, 255)
ACTIVE_TEXT = (0, 0, 0)
INACTIVE_TEXT = (153, 153, 153)
PLACEHOLDER_FILL = (200, 200, 200)
PLACEHOLDER_TEXT = (90, 90, 90)
STRIKE_WIDTH = 4


def _slot_size(images: Sequence[Image.Image]) -> tuple[int, int]:
    return max(im.width for im in images), max(im.height for im in images)


def _paste_centred(
    canvas: Image.Image, image: Image.Image, left: int, top: int, slot: tuple[int, int]
) -> None:
    dx = 0 if image.width == slot[0] else (slot[0] - image.width) // 2
    dy = 0 if image.height == slot[1] else (slot[1] - image.height) // 2
    canvas.paste(image if image.mode == "RGB" else image.convert("RGB"), (left + dx, top + dy))


def image_grid(images: Sequence[Image.Image], rows: int | None = None) -> Image.Image:
    """A1111's ``image_grid`` with its default settings (rows ``round(sqrt(n))``, no empty-spot
    prevention). A single image comes back as it is, as A1111 makes no grid of one image."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    if rows is None and len(images) == 1:
        return images[0]
    rows = round(math.sqrt(len(images))) if rows is None else rows
    rows = max(1, min(rows, len(images)))
    cols = math.ceil(len(images) / rows)
    slot = _slot_size(images)
    grid = Image.new("RGB", (cols * slot[0], rows * slot[1]), BACKGROUND)
    for i, image in enumerate(images):
        _paste_centred(grid, image, i % cols * slot[0], i // cols * slot[1], slot)
    return grid


@dataclass
class _Line:
    """One wrapped legend line and what A1111 measures of it."""

    text: str
    active: bool
    size: tuple[int, int]
    allowed_width: int


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: FreeTypeFont, width: int) -> list[str]:
    """A1111's word wrap. Like A1111 it starts with an empty line, so a first word wider than
    ``width`` leaves that empty line above it."""
    lines = [""]
    for word in text.split():
        line = f"{lines[-1]} {word}".strip()
        if draw.textlength(line, font=font) <= width:
            lines[-1] = line
        else:
            lines.append(word)
    return lines


def _measure(
    draw: ImageDraw.ImageDraw, labels: Sequence[GridLabel], font: FreeTypeFont, width: int
) -> list[_Line]:
    lines: list[_Line] = []
    for label in labels:
        for text in _wrap(draw, label.text, font, width):
            box = draw.multiline_textbbox((0, 0), text, font=font)
            lines.append(_Line(text, label.active, (int(box[2] - box[0]), int(box[3] - box[1])), width))
    return lines


@dataclass(frozen=True)
class _Layout:
    columns: list[list[_Line]]
    rows: list[list[_Line]]
    column_heights: list[int]
    row_heights: list[int]
    pad_left: int
    pad_top: int
    font_size: int
    spacing: int


def _layout(legend: GridLegend, cell: tuple[int, int], font: GridFont) -> _Layout:
    size = (cell[0] + cell[1]) // 25
    spacing = size // 2
    face = font.at(size)
    has_row_text = sum(len(label.text) for labels in legend.rows for label in labels) > 0
    pad_left = cell[0] * 3 // 4 if has_row_text else 0
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1), BACKGROUND))
    columns = [_measure(draw, labels, face, cell[0]) for labels in legend.columns]
    rows = [_measure(draw, labels, face, pad_left) for labels in legend.rows]
    column_heights = [sum(line.size[1] + spacing for line in lines) - spacing for lines in columns]
    # A1111 subtracts one spacing per line here, so a row label block is just its line heights.
    row_heights = [sum(line.size[1] + spacing for line in lines) - spacing * len(lines) for lines in rows]
    pad_top = 0 if sum(column_heights) == 0 else max(column_heights) + spacing * 2
    return _Layout(columns, rows, column_heights, row_heights, pad_left, pad_top, size, spacing)


def _text_width(draw: ImageDraw.ImageDraw, text: str, face: FreeTypeFont) -> float:
    box = draw.multiline_textbbox((0, 0), text, font=face)
    return box[2] - box[0]


def _draw_lines(
    draw: ImageDraw.ImageDraw, x: float, y: float, lines: list[_Line], font: GridFont, layout: _Layout
) -> None:
    for line in lines:
        size = layout.font_size
        face = font.at(size)
        while _text_width(draw, line.text, face) > line.allowed_width and size > 1:
            size -= 1
            face = font.at(size)
        colour = ACTIVE_TEXT if line.active else INACTIVE_TEXT
        draw.multiline_text(
            (x, y + line.size[1] / 2), line.text, font=face, fill=colour, anchor="mm", align="center"
        )
        if not line.active:
            half_w, mid = line.size[0] // 2, y + line.size[1] // 2
            draw.line((x - half_w, mid, x + half_w, mid), fill=INACTIVE_TEXT, width=STRIKE_WIDTH)
        y += line.size[1] + layout.spacing


def compose_grid(
    cells: Sequence[Image.Image],
    cols: int,
    legend: GridLegend | None,
    *,
    margin: int = 0,
    font: GridFont | None = None,
) -> Image.Image:
    """``cells`` (row by row, ``cols`` per row) as one grid image, with ``legend`` drawn the A1111
    way, or as a plain :func:`image_grid` when ``legend`` is None (A1111 then draws no margins).

    The legend must have ``cols`` column entries and one row entry per row.
    """
    if not cells:
        raise ValueError("compose_grid needs at least one cell")
    rows = math.ceil(len(cells) / cols)
    if legend is None:
        return image_grid(cells, rows=rows)
    if len(legend.columns) != cols or len(legend.rows) != rows:
        raise ValueError(
            f"legend has {len(legend.columns)} column and {len(legend.rows)} row labels; "
            f"the grid has {cols}x{rows}"
        )
    font = font or GridFont()
    slot = _slot_size(cells)
    layout = _layout(legend, slot, font)
    width = cols * slot[0] + layout.pad_left + margin * (cols - 1)
    height = rows * slot[1] + layout.pad_top + margin * (rows - 1)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    for i, cell in enumerate(cells):
        col, row = i % cols, i // cols
        left = layout.pad_left + (slot[0] + margin) * col
        _paste_centred(canvas, cell, left, layout.pad_top + (slot[1] + margin) * row, slot)
    draw = ImageDraw.Draw(canvas)
    for col, lines in enumerate(layout.columns):
        x = layout.pad_left + (slot[0] + margin) * col + slot[0] / 2
        _draw_lines(draw, x, layout.pad_top / 2 - layout.column_heights[col] / 2, lines, font, layout)
    for row, lines in enumerate(layout.rows):
        y = layout.pad_top + (slot[1] + margin) * row + slot[1] / 2 - layout.row_heights[row] / 2
        _draw_lines(draw, layout.pad_left / 2, y, lines, font, layout)
    return canvas


def placeholder(size: tuple[int, int], text: str, font: GridFont | None = None) -> Image.Image:
    """A grey cell of ``size`` for a cell that has no image (its job failed or was cancelled),
    with ``text`` (what it would have shown) word-wrapped in its middle."""
    image = Image.new("RGB", size, PLACEHOLDER_FILL)
    draw = ImageDraw.Draw(image)
    face = (font or GridFont()).at(max(8, (size[0] + size[1]) // 40))
    lines = [
        line for part in text.splitlines() for line in _wrap(draw, part, face, int(size[0] * 0.9)) if line
    ]
    draw.multiline_text(
        (size[0] / 2, size[1] / 2),
        "\n".join(lines),
        font=face,
        fill=PLACEHOLDER_TEXT,
        anchor="mm",
        align="center",
    )
    return image
