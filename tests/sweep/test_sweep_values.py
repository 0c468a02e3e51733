"""X/Y/Z axis value syntax: every A1111 form gives A1111's values (compared with a re-implementation
of A1111 1.10's ``process_axis`` on numpy, exact equality of ints and floats), the two documented
differences, and bad values as clear ConfigErrors."""

from __future__ import annotations

import numpy as np
import pytest
from a1111_reference import process_axis
from hypothesis import given
from hypothesis import strategies as st

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.sweep.values import ValueKind, arange, linspace, parse_values, split_values

INT_FORMS = [
    "1-5",
    "1-10 (+2)",
    "1-10 [5]",
    "1-10 [4]",
    "-5--1",
    "-5-5 [4]",
    "10-1 [4]",
    "1, 2, 3",
    " 1 ,2,  3 ",
    "1-3, 7, 10-12",
    "1 - 5",
    "-3-3 (+3)",
    "5-5",
    "1-2 [1]",
    "0-100 [7]",
    "20, , 30",
]
FLOAT_FORMS = [
    "0.5-1.5 (+0.25)",
    "0-1 [5]",
    "0.1-0.5 (+0.1)",
    "1-2 (+0.1)",
    "7, 7.5, 8",
    "4-8 (+2)",
    "5-1 (-1)",
    "-1.5--0.5 (+0.5)",
    "0-1 [3], 2.5",
    "0.2-0.9 (+0.07)",
    "3-9 [7]",
    "2.5",
]


@pytest.mark.parametrize("text", INT_FORMS)
def test_int_forms_match_a1111(text: str) -> None:
    assert parse_values(ValueKind.INT, text) == process_axis(int, text)


@pytest.mark.parametrize("text", FLOAT_FORMS)
def test_float_forms_match_a1111_bit_for_bit(text: str) -> None:
    ours = parse_values(ValueKind.FLOAT, text)
    theirs = process_axis(float, text)
    assert [v.hex() for v in ours] == [float(v).hex() for v in theirs]  # type: ignore[union-attr]


def test_documented_values() -> None:
    assert parse_values(ValueKind.INT, "1-10 (+2)") == [1, 3, 5, 7, 9]
    assert parse_values(ValueKind.INT, "1-10 [5]") == [1, 3, 5, 7, 10]  # 3.25 → 3, 5.5 → 5, 7.75 → 7
    assert parse_values(ValueKind.INT, "-5-5 [4]") == [-5, -1, 1, 5]  # truncation towards zero
    assert parse_values(ValueKind.FLOAT, "0-1 [5]") == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_descending_ranges_are_inclusive_where_a1111_drops_values() -> None:
    # A1111 gives nothing for a bare descending range and drops the last value of a descending
    # int range with a step (it stops before end + 1 whatever the direction); docs/sweeps.md.
    assert process_axis(int, "5-1") == []
    assert parse_values(ValueKind.INT, "5-1") == [5, 4, 3, 2, 1]
    assert process_axis(int, "5-1 (-1)") == [5, 4, 3]
    assert parse_values(ValueKind.INT, "5-1 (-1)") == [5, 4, 3, 2, 1]
    assert parse_values(ValueKind.INT, "10-1 (-3)") == [10, 7, 4, 1]
    assert process_axis(float, "5-1") == []
    assert parse_values(ValueKind.FLOAT, "5-1") == [5.0, 4.0, 3.0, 2.0, 1.0]


@pytest.mark.parametrize(
    ("text", "kept"), [("0.2-0.6 (+0.2)", 3), ("0.1-0.3 (+0.1)", 3), ("0.5-1 (+0.1)", 6), ("1-1.3 (+0.1)", 4)]
)
def test_float_ranges_drop_a1111s_rounding_overshoot(text: str, kept: int) -> None:
    theirs = process_axis(float, text)
    ours = parse_values(ValueKind.FLOAT, text)
    # A1111's np.arange(start, end + step, step) lands one value past the end here; we keep its
    # values bit for bit up to the end and drop that one.
    assert len(theirs) == kept + 1
    assert [v.hex() for v in ours] == [float(v).hex() for v in theirs[:kept]]  # type: ignore[union-attr]


def test_csv_rules_quotes_and_spaces() -> None:
    assert split_values('aaa, "b,b",ccc') == ["aaa", "b,b", "ccc"]  # A1111 PR #15832
    assert split_values('Euler a, "DPM++ 2M, Karras"') == ["Euler a", "DPM++ 2M, Karras"]
    assert split_values('say ""hi"", x') == ['say ""hi""', "x"]
    assert split_values('"say ""hi""", x') == ['say "hi"', "x"]
    assert split_values("a\nb, c") == ["a", "b", "c"]
    assert parse_values(ValueKind.TEXT, "cat, dog, ") == ["cat", "dog", ""]  # text keeps empties
    assert parse_values(ValueKind.TEXT, ["cat", " dog "]) == ["cat", "dog"]


@pytest.mark.parametrize(
    ("kind", "text", "fragment"),
    [
        (ValueKind.INT, "1-10 (2", "not a whole number or a range"),
        (ValueKind.INT, "1.5", "'1.5' is not a whole number"),
        (ValueKind.INT, "1-10 (0)", "step of 0"),
        (ValueKind.INT, "10-1 (+2)", "steps up from 10 but ends at 1"),
        (ValueKind.INT, "1-10 (-2)", "write the step as (+2)"),
        (ValueKind.INT, "1-10 [0]", "must be at least 1"),
        (ValueKind.INT, "1-10 [2.5]", "must be a whole number of values"),
        (ValueKind.INT, "1-100000", "at most 10000"),
        (ValueKind.FLOAT, "abc", "'abc' is not a number"),
        (ValueKind.FLOAT, "nan", "not a finite number"),
        (ValueKind.FLOAT, "0-1 (0.25)x", "is not a number"),
    ],
)
def test_bad_values_name_the_axis_and_the_value(kind: ValueKind, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_values(kind, text, "X axis 'Steps'")
    message = str(caught.value)
    assert message.startswith("X axis 'Steps': ")
    assert fragment in message


def test_unsigned_step_is_accepted_where_a1111_fails() -> None:
    with pytest.raises(ValueError):
        process_axis(int, "1-10 (2)")
    assert parse_values(ValueKind.INT, "1-10 (2)") == [1, 3, 5, 7, 9]


@given(
    st.floats(-100, 100, allow_nan=False),
    st.floats(-100, 100, allow_nan=False),
    st.floats(0.01, 10, allow_nan=False),
)
def test_arange_is_numpys(start: float, stop: float, step: float) -> None:
    assert [v.hex() for v in arange(start, stop, step)] == [
        float(v).hex() for v in np.arange(start, stop, step)
    ]
    assert [v.hex() for v in arange(stop, start, -step)] == [
        float(v).hex() for v in np.arange(stop, start, -step)
    ]


@given(st.floats(-1000, 1000, allow_nan=False), st.floats(-1000, 1000, allow_nan=False), st.integers(0, 40))
def test_linspace_is_numpys(start: float, stop: float, num: int) -> None:
    assert [v.hex() for v in linspace(start, stop, num)] == [
        float(v).hex() for v in np.linspace(start, stop, num)
    ]
