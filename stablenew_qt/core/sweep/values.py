"""A1111's X/Y/Z plot value syntax: comma lists read as CSV, and numeric ranges.

One axis's values are typed as one text. It is split like A1111 1.10 splits it (Python's ``csv``
reader with ``skipinitialspace``, every line a row, each item stripped), then each item of a
numeric axis may be a range:

- ``1-5``: every whole number from 1 to 5; ``1-10 (+2)``: 1, 3, 5, 7, 9 (the step needs its sign);
- ``1-10 [4]``: 4 values spread evenly from 1 to 10 (``numpy.linspace``; whole-number axes
  truncate each value towards zero, as A1111 does: ``1-10 [5]`` is 1, 3, 5, 7, 10);
- ``0.5-1.5 (+0.25)`` and ``0-1 [5]`` on decimal axes (``numpy.arange`` / ``numpy.linspace``
  arithmetic, reproduced exactly so the floats are A1111's floats);
- negative bounds (``-5--1``) and descending ranges (``5-1`` or ``5-1 (-1)``).

Where A1111 gives no values or crashes we raise a ConfigError instead. On purpose we differ in
two places (``docs/sweeps.md``): descending ranges include their end, and a decimal range never
gains a value past its end from float rounding (A1111's ``0.1-0.3 (+0.1)`` ends with 0.4).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Sequence
from enum import Enum
from io import StringIO
from itertools import chain

from ..errors import ConfigError

__all__ = [
    "AxisValue",
    "ValueKind",
    "arange",
    "linspace",
    "parse_values",
    "split_values",
]

AxisValue = int | float | str

_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*\d+(?:\.\d*)?"
_INT_STEP = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(([+-]?\s*\d+)\s*\))?\s*")
_INT_COUNT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})\s*\[\s*([^\]]*?)\s*\]\s*")
_FLOAT_STEP = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(([+-]?\s*\d+(?:\.\d*)?)\s*\))?\s*")
_FLOAT_COUNT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})\s*\[\s*([^\]]*?)\s*\]\s*")
#: A range longer than this is a typing mistake (``1-100000``), not a sweep.
MAX_RANGE_VALUES = 10_000
#: How far past its end (as a share of the step) a float range's last value may land.
_END_TOLERANCE = 1e-6


class ValueKind(Enum):
    """What one axis's values are: whole numbers, decimals or text (A1111's ``int``/``float``/``str``)."""

    INT = "int"
    FLOAT = "float"
    TEXT = "text"


def split_values(text: str) -> list[str]:
    """Split typed axis values the way A1111 1.10 does (``csv_string_to_list_strip``).

    Commas separate values, double quotes protect a comma (``a, "b, c"`` is two values), spaces
    after a comma are skipped, every line is a row of its own, and each value is stripped.
    """
    try:
        rows = csv.reader(StringIO(text), skipinitialspace=True)
        return [item.strip() for item in chain.from_iterable(rows)]
    except csv.Error as exc:  # an unterminated quote at the end of the text
        raise ConfigError(f"cannot split {text!r} into values: {exc}") from None


def arange(start: float, stop: float, step: float) -> list[float]:
    """``numpy.arange(start, stop, step).tolist()`` for floats, with numpy's arithmetic.

    numpy sizes the result ``ceil((stop - start) / step)``, stores ``start`` and ``start + step``,
    then fills element ``i`` with ``start + i * delta`` where ``delta`` is the difference of the
    first two stored values (not ``step`` itself: they can differ in the last bit).
    """
    if step == 0:
        raise ZeroDivisionError("arange step is 0")
    length = math.ceil((stop - start) / step)
    if length <= 0:
        return []
    second = start + step
    delta = second - start
    return [start, second, *(start + i * delta for i in range(2, length))][:length]


def linspace(start: float, stop: float, num: int) -> list[float]:
    """``numpy.linspace(start, stop, num).tolist()``: ``i * step + start``, the last value ``stop``."""
    if num <= 0:
        return []
    if num == 1:
        return [float(start)]
    delta = stop - start
    step = delta / (num - 1)
    if step == 0:
        values = [i / (num - 1) * delta + start for i in range(num)]
    else:
        values = [i * step + start for i in range(num)]
    values[-1] = float(stop)
    return values


def _number(text: str) -> str:
    """A bound as A1111's regex captured it, without the spaces it allows after the sign."""
    return re.sub(r"\s+", "", text)


def _checked_length(count: int, item: str) -> None:
    if count > MAX_RANGE_VALUES:
        raise ValueError(f"{item!r} gives {count} values; a sweep axis takes at most {MAX_RANGE_VALUES}")


def _int_step_range(match: re.Match[str], item: str) -> list[int]:
    start, end = int(_number(match.group(1))), int(_number(match.group(2)))
    # A bare descending range counts down (A1111 gives nothing for it).
    step = (1 if end >= start else -1) if match.group(3) is None else int(_number(match.group(3)))
    _check_direction(start, end, step, item)
    _checked_length(abs(end - start) // abs(step) + 1, item)
    # Inclusive at both ends. A1111 stops before end + 1 whatever the direction, so its descending
    # ranges end early: 5-1 (-1) gives 5, 4, 3 there (see docs/sweeps.md).
    return list(range(start, end + (1 if step > 0 else -1), step))


def _float_step_range(match: re.Match[str], item: str) -> list[float]:
    start, end = float(_number(match.group(1))), float(_number(match.group(2)))
    step = (1.0 if end >= start else -1.0) if match.group(3) is None else float(_number(match.group(3)))
    _check_direction(start, end, step, item)
    _checked_length(math.ceil((end - start) / step) + 1, item)
    # A1111 takes np.arange(start, end + step, step), whose rounding often adds a value past the
    # end (0.1-0.3 (+0.1) gives 0.1, 0.2, 0.30000000000000004, 0.4 there). We keep its values
    # bit for bit but drop the ones beyond the end (see docs/sweeps.md).
    tolerance = abs(step) * _END_TOLERANCE
    return [v for v in arange(start, end + step, step) if (v - end) * math.copysign(1, step) <= tolerance]


def _check_direction(start: float, end: float, step: float, item: str) -> None:
    if step == 0:
        raise ValueError(f"{item!r} has a step of 0; write a step such as (+1) or (-1)")
    if (end - start) * step < 0:
        direction = "up" if step > 0 else "down"
        hint = "-" if step > 0 else "+"
        raise ValueError(
            f"{item!r} steps {direction} from {start:g} but ends at {end:g}, so it gives no values; "
            f"write the step as ({hint}{abs(step):g})"
        )


def _count(match: re.Match[str], item: str) -> int:
    text = match.group(3)
    if not text.isdigit():
        raise ValueError(f"{item!r}: the count in [ ] must be a whole number of values, such as [5]")
    count = int(text)
    if count < 1:
        raise ValueError(f"{item!r} asks for {count} values; the count in [ ] must be at least 1")
    _checked_length(count, item)
    return count


def _int_values(item: str) -> list[AxisValue]:
    if (match := _INT_STEP.fullmatch(item)) is not None:
        return list(_int_step_range(match, item))
    if (match := _INT_COUNT.fullmatch(item)) is not None:
        start, end = int(_number(match.group(1))), int(_number(match.group(2)))
        # int() truncates towards zero, as A1111's [int(x) for x in np.linspace(...)].
        return [int(v) for v in linspace(start, end, _count(match, item))]
    try:
        return [int(item)]
    except ValueError:
        raise ValueError(
            f"{item!r} is not a whole number or a range such as 1-5, 1-10 (+2) or 1-10 [5]"
        ) from None


def _float_values(item: str) -> list[AxisValue]:
    if (match := _FLOAT_STEP.fullmatch(item)) is not None:
        return list(_float_step_range(match, item))
    if (match := _FLOAT_COUNT.fullmatch(item)) is not None:
        start, end = float(_number(match.group(1))), float(_number(match.group(2)))
        return list(linspace(start, end, _count(match, item)))
    try:
        value = float(item)
    except ValueError:
        raise ValueError(f"{item!r} is not a number or a range such as 0.5-1.5 (+0.25) or 0-1 [5]") from None
    if not math.isfinite(value):
        raise ValueError(f"{item!r} is not a finite number")
    return [value]


_EXPANDERS: dict[ValueKind, Callable[[str], list[AxisValue]]] = {
    ValueKind.INT: _int_values,
    ValueKind.FLOAT: _float_values,
}


def parse_values(kind: ValueKind, text: str | Sequence[str], axis: str = "") -> list[AxisValue]:
    """The values of one axis: ``text`` split by :func:`split_values` (or a list of items already
    split), numeric items expanded from ranges and converted.

    Empty items of numeric axes are skipped, as in A1111 1.10; text axes keep them (an empty
    Prompt S/R value removes the searched text). Raises ConfigError naming ``axis`` and the bad
    item when an item is neither a number nor a range, or a range gives no values.
    """
    items = split_values(text) if isinstance(text, str) else [str(item).strip() for item in text]
    expand = _EXPANDERS.get(kind)
    if expand is None:
        return list(items)
    values: list[AxisValue] = []
    for item in items:
        if not item:
            continue
        try:
            values += expand(item)
        except ValueError as exc:
            raise ConfigError(str(exc), axis) from None
    return values
