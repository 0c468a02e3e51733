"""What a sweep is, as values: the spec a user writes and the plan that is stored and run.

A :class:`SweepSpec` is what a user types (A1111's terms), for example::

    {"x": {"type": "CFG Scale", "values": "4-8 (+2)"},
     "y": {"type": "Sampler", "values": "Euler, DPM++ 2M"},
     "keep_random_seeds": false}

or ``{"prompt_matrix": {"different_seeds": true}}``. Building it against a RunConfig
(:func:`~.build.build_sweep`) gives a :class:`SweepPlan`: every axis with its typed text, its
resolved values (seeds fixed, names canonical) and its legend labels, plus the fixed base seed.
The plan is plain JSON (:meth:`SweepPlan.to_json`) and expands to the same cells every time, so a
queue group that stores it can resume after a crash and still draw its grid.
"""

from __future__ import annotations

import csv
import json
from io import StringIO
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from ..validation import problems_from_validation_error
from .axes import NOTHING, AxisType, axis_type
from .legend import GridLegend
from .matrix import PromptMatrix, PromptMatrixOptions
from .values import AxisValue

__all__ = [
    "AXIS_NAMES",
    "PLAN_VERSION",
    "AxisSpec",
    "PlannedAxis",
    "SweepOptions",
    "SweepPlan",
    "SweepSpec",
    "values_text",
]

AxisName = Literal["x", "y", "z"]
AXIS_NAMES: tuple[AxisName, AxisName, AxisName] = ("x", "y", "z")
PLAN_VERSION = 1
#: A1111's candidates for the outermost loop: (axis, the other two in its tie-break order).
_OUTERMOST_CANDIDATES: tuple[tuple[AxisName, AxisName, AxisName], ...] = (
    ("x", "y", "z"),
    ("y", "x", "z"),
    ("z", "x", "y"),
)
_FROZEN = ConfigDict(frozen=True, extra="forbid")
_Model = TypeVar("_Model", bound=BaseModel)


def values_text(values: str | tuple[str | int | float, ...]) -> str:
    """Typed axis values as one text: a text stays as it is, a list is written as one CSV row
    (A1111's ``list_to_csv_string`` for values picked from a dropdown)."""
    if isinstance(values, str):
        return values
    with StringIO() as out:
        csv.writer(out).writerow(values)
        return out.getvalue().strip()


class AxisSpec(BaseModel):
    """One axis as typed: an A1111 axis type and its values (text, or a list of values)."""

    model_config = _FROZEN

    type: str = "Nothing"
    values: str | tuple[str | int | float, ...] = ""


class SweepOptions(BaseModel):
    """A1111's X/Y/Z plot options (their UI labels in the comments)."""

    model_config = _FROZEN

    #: "Keep -1 for seeds": off fixes a -1 seed (and -1 Seed-axis values) once before the grid,
    #: so every cell shares it; on leaves them -1, so every cell draws its own random seed.
    keep_random_seeds: bool = False
    #: "Vary seeds for X/Y/Z": cell seed += x index (+ y index × X count, + z index × X × Y count).
    vary_seeds_x: bool = False
    vary_seeds_y: bool = False
    vary_seeds_z: bool = False
    #: "Draw legend"
    draw_legend: bool = True
    #: "Grid margins (px)"
    margin_size: int = Field(0, ge=0, le=500)
    #: "Include Sub Grids": also write each Z value's X/Y grid.
    include_sub_grids: bool = False


class SweepSpec(SweepOptions):
    """A sweep as a user writes it: up to three axes, or a prompt matrix, plus the options."""

    x: AxisSpec = AxisSpec()
    y: AxisSpec = AxisSpec()
    z: AxisSpec = AxisSpec()
    prompt_matrix: PromptMatrixOptions | None = None

    @model_validator(mode="after")
    def _axes_or_matrix(self) -> SweepSpec:
        if self.prompt_matrix is not None and any(a.type.strip().lower() != "nothing" for a in self.axes):
            raise ValueError("a sweep is either X/Y/Z axes or a prompt matrix, not both")
        return self

    @property
    def axes(self) -> tuple[AxisSpec, AxisSpec, AxisSpec]:
        return self.x, self.y, self.z

    @classmethod
    def from_dict(cls, data: Any) -> SweepSpec:
        """Validate a mapping (e.g. a sweep.json). Raises ConfigError listing every problem."""
        return _validated(cls, data, "a sweep")

    @classmethod
    def from_json(cls, text: str | bytes) -> SweepSpec:
        """Parse and validate sweep JSON text. Raises ConfigError for malformed JSON too."""
        return cls.from_dict(_json(text))


class PlannedAxis(BaseModel):
    """One axis of a plan: its type, the values as typed, as resolved and as labelled."""

    model_config = _FROZEN

    type: str = "Nothing"
    #: The values as the user typed them (what infotext's ``X Values`` records).
    values: str = ""
    #: The values the cells use: ranges expanded, names canonical, -1 seeds fixed.
    resolved: tuple[AxisValue, ...] = (0,)
    #: The legend text of each resolved value.
    labels: tuple[str, ...] = ("",)

    @model_validator(mode="after")
    def _consistent(self) -> PlannedAxis:
        axis_type(self.type)
        if not self.resolved or len(self.resolved) != len(self.labels):
            raise ValueError(
                f"{self.type}: needs one label per value, got {len(self.resolved)} and {len(self.labels)}"
            )
        return self

    @property
    def axis_type(self) -> AxisType:
        return axis_type(self.type)

    @property
    def is_nothing(self) -> bool:
        return self.axis_type is NOTHING


class SweepPlan(BaseModel):
    """A built sweep: what the queue stores with a group, and everything the grid needs.

    ``kind`` is ``"xyz"`` (``x``/``y``/``z`` are used) or ``"prompt_matrix"`` (``matrix`` is).
    ``base_seed`` is the seed every cell starts from: fixed when the plan was built, or -1 when
    "Keep -1 for seeds" left it random.
    """

    model_config = _FROZEN

    version: int = PLAN_VERSION
    kind: Literal["xyz", "prompt_matrix"] = "xyz"
    x: PlannedAxis = PlannedAxis()
    y: PlannedAxis = PlannedAxis()
    z: PlannedAxis = PlannedAxis()
    options: SweepOptions = SweepOptions()
    matrix: PromptMatrix | None = None
    base_seed: int = Field(-1, ge=-1, le=2**32 - 1)

    @model_validator(mode="after")
    def _kind_matches(self) -> SweepPlan:
        if self.version != PLAN_VERSION:
            raise ValueError(f"sweep plan version {self.version} is not {PLAN_VERSION}: update StableNew Qt")
        if (self.kind == "prompt_matrix") != (self.matrix is not None):
            raise ValueError("a prompt_matrix plan needs 'matrix', and only it may have one")
        return self

    @property
    def axes(self) -> tuple[PlannedAxis, PlannedAxis, PlannedAxis]:
        return self.x, self.y, self.z

    @property
    def shape(self) -> tuple[int, int, int]:
        """(X count, Y count, Z count): columns, rows and sub-grids."""
        if self.matrix is not None:
            cols, rows = self.matrix.shape
            return cols, rows, 1
        return len(self.x.resolved), len(self.y.resolved), len(self.z.resolved)

    @property
    def cell_count(self) -> int:
        nx, ny, nz = self.shape
        return nx * ny * nz

    def order(self) -> tuple[AxisName, AxisName, AxisName]:
        """The loop order, outermost first: A1111's rule puts the axis with the strictly highest
        cost outside (then the higher of the other two), else Z, Y, X."""
        if self.matrix is not None:
            return ("z", "y", "x")
        cost = {name: axis.axis_type.cost for name, axis in zip(AXIS_NAMES, self.axes, strict=True)}
        for first, a, b in _OUTERMOST_CANDIDATES:
            if cost[first] > cost[a] and cost[first] > cost[b]:
                # Of the other two, the costlier goes second; on a tie, the one A1111 names second.
                return (first, a, b) if cost[a] > cost[b] else (first, b, a)
        return ("z", "y", "x")

    def legend(self) -> GridLegend | None:
        """The X/Y legend of each sub-grid (None when "Draw legend" is off)."""
        if self.matrix is not None:
            return self.matrix.legend()
        if not self.options.draw_legend:
            return None
        return GridLegend.simple(self.x.labels, self.y.labels)

    def title_legend(self) -> GridLegend | None:
        """The legend of the Z level: one title per sub-grid above it (None when off)."""
        if self.matrix is not None or not self.options.draw_legend:
            return None
        return GridLegend.simple(self.z.labels, ("",))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text that :meth:`from_json` reads back to an equal plan."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> SweepPlan:
        """Validate a stored plan. Raises ConfigError listing every problem."""
        return _validated(cls, data, "a sweep plan")

    @classmethod
    def from_json(cls, text: str | bytes) -> SweepPlan:
        return cls.from_dict(_json(text))


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ConfigError(f"not valid JSON: {exc}") from None


def _validated(cls: type[_Model], data: Any, what: str) -> _Model:
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object, not {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation_error(exc, cls)) from None
