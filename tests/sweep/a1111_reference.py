"""Independent re-implementations of A1111 1.10's algorithms, written from its documented
behaviour, to compare our code against (not used by the app).

- :func:`process_axis`: ``scripts/xyz_grid.py``'s value parsing (``csv_string_to_list_strip``
  with ``skipinitialspace``, the four range regexes, ``range``/``np.arange``/``np.linspace``).
- :func:`image_grid` and :func:`draw_grid_annotations`: ``modules/images.py``, two passes (grid,
  then a new annotated image), as A1111 does them.
- :func:`loop_order`: ``xyz_grid.py``'s choice of the outermost axis by cost.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Sequence
from io import StringIO
from itertools import chain
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RE_RANGE = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*")
RE_RANGE_FLOAT = re.compile(
    r"\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*"
)
RE_RANGE_COUNT = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\[(\d+)\s*])?\s*")
RE_RANGE_COUNT_FLOAT = re.compile(
    r"\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)(?:\s*\[(\d+(?:.\d*)?)\s*])?\s*"
)


def split(text: str) -> list[str]:
    return [v.strip() for v in chain.from_iterable(csv.reader(StringIO(text), skipinitialspace=True))]


def process_axis(kind: type, text: str) -> list[Any]:
    """A1111's ``process_axis`` for a text (csv) axis of type ``kind`` (int, float or str)."""
    values = split(text)
    out: list[Any] = []
    if kind is str:
        return values
    for val in values:
        if val.strip() == "":
            continue
        if kind is int:
            m, mc = RE_RANGE.fullmatch(val), RE_RANGE_COUNT.fullmatch(val)
            if m is not None:
                step = int(m.group(3)) if m.group(3) is not None else 1
                out += list(range(int(m.group(1)), int(m.group(2)) + 1, step))
            elif mc is not None:
                num = int(mc.group(3)) if mc.group(3) is not None else 1
                out += [int(x) for x in np.linspace(int(mc.group(1)), int(mc.group(2)), num).tolist()]
            else:
                out.append(int(val))
        else:
            m, mc = RE_RANGE_FLOAT.fullmatch(val), RE_RANGE_COUNT_FLOAT.fullmatch(val)
            if m is not None:
                start, end = float(m.group(1)), float(m.group(2))
                step = float(m.group(3)) if m.group(3) is not None else 1
                out += np.arange(start, end + step, step).tolist()
            elif mc is not None:
                num = int(mc.group(3)) if mc.group(3) is not None else 1
                out += np.linspace(float(mc.group(1)), float(mc.group(2)), num).tolist()
            else:
                out.append(float(val))
    return out


def loop_order(x_cost: float, y_cost: float, z_cost: float) -> tuple[str, str, str]:
    first, second = "z", "y"
    if x_cost > y_cost and x_cost > z_cost:
        first, second = "x", ("y" if y_cost > z_cost else "z")
    elif y_cost > x_cost and y_cost > z_cost:
        first, second = "y", ("x" if x_cost > z_cost else "z")
    elif z_cost > x_cost and z_cost > y_cost:
        first, second = "z", ("x" if x_cost > y_cost else "y")
    third = ({"x", "y", "z"} - {first, second}).pop()
    return first, second, third


def image_grid(imgs: Sequence[Image.Image], rows: int | None = None) -> Image.Image:
    if rows is None:
        rows = round(math.sqrt(len(imgs)))
    rows = min(rows, len(imgs))
    cols = math.ceil(len(imgs) / rows)
    w, h = map(max, zip(*(img.size for img in imgs), strict=False))
    grid = Image.new("RGB", size=(cols * w, rows * h), color=(255, 255, 255))
    for i, img in enumerate(imgs):
        ow = 0 if img.width == w else (w - img.width) // 2
        oh = 0 if img.height == h else (h - img.height) // 2
        grid.paste(img, box=(i % cols * w + ow, i // cols * h + oh))
    return grid


class Annotation:
    def __init__(self, text: str = "", is_active: bool = True) -> None:
        self.text, self.is_active = text, is_active
        self.size: tuple[int, int] = (0, 0)
        self.allowed_width = 0


def draw_grid_annotations(
    im: Image.Image,
    width: int,
    height: int,
    hor_texts: list[list[Annotation]],
    ver_texts: list[list[Annotation]],
    margin: int,
    get_font: Callable[[int], ImageFont.FreeTypeFont],
) -> Image.Image:
    active, inactive, background = (0, 0, 0), (153, 153, 153), (255, 255, 255)

    def wrap(drawing: ImageDraw.ImageDraw, text: str, font: Any, line_length: int) -> list[str]:
        lines = [""]
        for word in text.split():
            line = f"{lines[-1]} {word}".strip()
            if drawing.textlength(line, font=font) <= line_length:
                lines[-1] = line
            else:
                lines.append(word)
        return lines

    def draw_texts(
        drawing: ImageDraw.ImageDraw, x: float, y: float, lines: list[Annotation], fontsize0: int
    ) -> None:
        for line in lines:
            fontsize = fontsize0
            fnt = get_font(fontsize)
            while True:
                bbox = drawing.multiline_textbbox((0, 0), line.text, font=fnt)
                if (bbox[2] - bbox[0]) > line.allowed_width and fontsize > 1:
                    fontsize -= 1
                    fnt = get_font(fontsize)
                else:
                    break
            fill = active if line.is_active else inactive
            drawing.multiline_text(
                (x, y + line.size[1] / 2), line.text, font=fnt, fill=fill, anchor="mm", align="center"
            )
            if not line.is_active:
                drawing.line(
                    (
                        x - line.size[0] // 2,
                        y + line.size[1] // 2,
                        x + line.size[0] // 2,
                        y + line.size[1] // 2,
                    ),
                    fill=inactive,
                    width=4,
                )
            y += line.size[1] + line_spacing

    fontsize = (width + height) // 25
    line_spacing = fontsize // 2
    fnt = get_font(fontsize)
    pad_left = 0 if sum(sum(len(line.text) for line in lines) for lines in ver_texts) == 0 else width * 3 // 4
    cols, rows = im.width // width, im.height // height
    assert cols == len(hor_texts) and rows == len(ver_texts)
    calc_d = ImageDraw.Draw(Image.new("RGB", (1, 1), background))
    for texts, allowed in zip(
        hor_texts + ver_texts, [width] * len(hor_texts) + [pad_left] * len(ver_texts), strict=True
    ):
        items = list(texts)
        texts.clear()
        for line in items:
            texts += [Annotation(x, line.is_active) for x in wrap(calc_d, line.text, fnt, allowed)]
        for line in texts:
            bbox = calc_d.multiline_textbbox((0, 0), line.text, font=fnt)
            line.size = (int(bbox[2] - bbox[0]), int(bbox[3] - bbox[1]))
            line.allowed_width = allowed
    hor_heights = [sum(line.size[1] + line_spacing for line in lines) - line_spacing for lines in hor_texts]
    ver_heights = [
        sum(line.size[1] + line_spacing for line in lines) - line_spacing * len(lines) for lines in ver_texts
    ]
    pad_top = 0 if sum(hor_heights) == 0 else max(hor_heights) + line_spacing * 2
    result = Image.new(
        "RGB",
        (im.width + pad_left + margin * (cols - 1), im.height + pad_top + margin * (rows - 1)),
        background,
    )
    for row in range(rows):
        for col in range(cols):
            cell = im.crop((width * col, height * row, width * (col + 1), height * (row + 1)))
            result.paste(cell, (pad_left + (width + margin) * col, pad_top + (height + margin) * row))
    d = ImageDraw.Draw(result)
    for col in range(cols):
        draw_texts(
            d,
            pad_left + (width + margin) * col + width / 2,
            pad_top / 2 - hor_heights[col] / 2,
            hor_texts[col],
            fontsize,
        )
    for row in range(rows):
        y = pad_top + (height + margin) * row + height / 2 - ver_heights[row] / 2
        draw_texts(d, pad_left / 2, y, ver_texts[row], fontsize)
    return result
