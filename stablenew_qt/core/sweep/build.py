"""Building a sweep plan from a spec, and expanding a plan into its cells' RunConfigs.

:func:`build_sweep` parses and checks everything before anything runs: unknown axis types,
values that are neither numbers nor ranges, names that are not installed, values RunConfig
refuses, axes that would have no effect, and grids larger than A1111's 200-megapixel limit all
raise one ConfigError naming the axis and the value. :func:`sweep_cells` then gives the cells in
the order they should run (the costly axis outermost, so each checkpoint loads once).
"""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config import MAX_SEED, RunConfig
from ..errors import ConfigError, ConfigProblem
from .appliers import AxisApplication, Data, SweepContext
from .axes import NOTHING, AxisType, axis_type, format_label
from .matrix import MAX_MATRIX_PARTS, PromptMatrix, PromptMatrixOptions, split_matrix_prompt
from .plan import AXIS_NAMES, AxisSpec, PlannedAxis, SweepOptions, SweepPlan, SweepSpec, values_text
from .values import AxisValue, parse_values

__all__ = [
    "MAX_GRID_MEGAPIXELS",
    "SweepCell",
    "SweepJobs",
    "build_prompt_matrix",
    "build_sweep",
    "sweep_cells",
    "sweep_jobs",
]

#: A1111's ``img_max_size_mp`` default: a grid of more megapixels is refused.
MAX_GRID_MEGAPIXELS = 200
#: A1111's ``random.randrange(4294967294)`` range for seeds it fixes.
_SEED_DRAW = 4294967294
#: Keys that make several images from one config; a prompt-matrix cell makes exactly one.
_IMAGE_COUNT_KEYS = ("batch_size", "batch_count")


@dataclass(frozen=True)
class SweepCell:
    """One cell: its grid position, its legend labels and the RunConfig that makes it.

    ``index`` is the cell's place in the grid, ``x + y * X count + z * X count * Y count``
    (A1111's), whatever order the cells run in.
    """

    index: int
    x: int
    y: int
    z: int
    labels: tuple[str, str, str]
    config: RunConfig

    @property
    def label(self) -> str:
        """The cell's labels joined, for a queue row or a placeholder (``"CFG Scale: 7.0, Euler"``)."""
        return ", ".join(label for label in self.labels if label)


def _axis_field(name: str, axis: AxisType) -> str:
    return f"{name.upper()} axis {axis.label!r}"


def _plan_axis(
    name: str, spec: AxisSpec, context: SweepContext, rng: random.Random, keep_random_seeds: bool
) -> PlannedAxis:
    axis = axis_type(spec.type, f"{name}.type")
    if axis is NOTHING:
        return PlannedAxis()
    field = _axis_field(name, axis)
    typed: str | list[str] = spec.values if isinstance(spec.values, str) else [str(v) for v in spec.values]
    parsed = parse_values(axis.kind, typed, field)
    if not parsed:
        raise ConfigError("has no values; type them separated by commas, or a range such as 1-5", field)
    if axis.is_seed and not keep_random_seeds:
        parsed = [rng.randrange(_SEED_DRAW) if value == -1 else value for value in parsed]
    resolved: list[AxisValue] = []
    for value in parsed:
        try:
            resolved.append(axis.resolve(value, context) if axis.resolve else value)
        except ValueError as exc:
            raise ConfigError(str(exc), field) from None
    labels = tuple(format_label(axis, value) for value in parsed)
    return PlannedAxis(
        type=axis.label, values=values_text(spec.values), resolved=tuple(resolved), labels=labels
    )


def build_sweep(
    base: RunConfig,
    spec: SweepSpec,
    *,
    context: SweepContext | None = None,
    rng: random.Random | None = None,
) -> SweepPlan:
    """The plan of ``spec`` over ``base``: an X/Y/Z plot, or a prompt matrix when the spec has one.

    ``context`` lists the installed checkpoints, VAEs, upscalers and detectors that names are
    checked against; ``rng`` draws the seeds that "Keep -1 for seeds" off fixes (default: the OS's
    randomness). Raises ConfigError before anything runs; see the module docstring.
    """
    rng = rng or random.SystemRandom()
    if spec.prompt_matrix is not None:
        return build_prompt_matrix(base, spec.prompt_matrix, rng=rng)
    options = SweepOptions.model_validate(spec.model_dump(include=set(SweepOptions.model_fields)))
    keep = options.keep_random_seeds
    # A1111 fixes the base seed first, then the -1 values of the Seed axes, X before Y before Z.
    base_seed = base.seed if keep or base.seed != -1 else rng.randrange(_SEED_DRAW)
    x, y, z = (
        _plan_axis(n, a, context or SweepContext(), rng, keep)
        for n, a in zip(AXIS_NAMES, spec.axes, strict=True)
    )
    plan = SweepPlan(kind="xyz", x=x, y=y, z=z, options=options, base_seed=base_seed)
    _check_each_value(plan, base)
    _check_grid_size(plan, base)
    sweep_cells(plan, base)
    return plan


def build_prompt_matrix(
    base: RunConfig, options: PromptMatrixOptions, *, rng: random.Random | None = None
) -> SweepPlan:
    """The prompt-matrix plan of ``base``'s prompt (or negative prompt). A -1 seed is always
    fixed first, as A1111's prompt matrix does."""
    text = base.prompt if options.prompt_type == "positive" else base.negative_prompt
    field = "prompt" if options.prompt_type == "positive" else "negative_prompt"
    parts = split_matrix_prompt(text)
    if len(parts) < 2:
        raise ConfigError(
            "has no | to split at; write the parts to switch on and off as 'a cat|hat|scarf'", field
        )
    if len(parts) - 1 > MAX_MATRIX_PARTS:
        raise ConfigError(
            f"has {len(parts) - 1} optional | parts ({2 ** (len(parts) - 1)} images); "
            f"a prompt matrix takes at most {MAX_MATRIX_PARTS}",
            field,
        )
    seed = base.seed if base.seed != -1 else (rng or random.SystemRandom()).randrange(_SEED_DRAW)
    plan = SweepPlan(kind="prompt_matrix", matrix=PromptMatrix(options=options, parts=parts), base_seed=seed)
    _check_grid_size(plan, base)
    sweep_cells(plan, base)
    return plan


def _check_grid_size(plan: SweepPlan, base: RunConfig) -> None:
    # A1111's estimate uses the first pass's size (hires fix makes the real grid larger).
    megapixels = round(plan.cell_count * base.txt2img.width * base.txt2img.height / 1_000_000)
    if megapixels >= MAX_GRID_MEGAPIXELS:
        raise ConfigError(
            f"the grid would be {megapixels} megapixels ({plan.cell_count} cells of "
            f"{base.txt2img.width}x{base.txt2img.height}); the limit is {MAX_GRID_MEGAPIXELS}: "
            "use fewer values or a smaller size"
        )


def _base_data(plan: SweepPlan, base: RunConfig) -> Data:
    data = base.model_dump(mode="json")
    data["seed"] = plan.base_seed
    return data


def _validate(data: Data, where: str) -> RunConfig:
    try:
        return RunConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError([ConfigProblem("", f"{where} is not a valid run config:"), *exc.problems]) from None


def _apply(data: Data, name: str, axis: PlannedAxis, index: int) -> None:
    try:
        axis.axis_type.apply(data, axis.resolved[index], AxisApplication(axis.resolved))
    except ValueError as exc:
        raise ConfigError(str(exc), _axis_field(name, axis.axis_type)) from None


def _check_each_value(plan: SweepPlan, base: RunConfig) -> None:
    """Each value alone on the base config, so a bad one is named exactly (not as a cell)."""
    for name, axis in zip(AXIS_NAMES, plan.axes, strict=True):
        for index, label in enumerate(axis.labels):
            data = _base_data(plan, base)
            _apply(data, name, axis, index)
            _validate(data, f"{_axis_field(name, axis.axis_type)} value {label or axis.resolved[index]!r}")


def _positions(plan: SweepPlan) -> Iterator[tuple[int, int, int]]:
    """(x, y, z) indexes in run order: nested loops, ``plan.order()`` outermost first."""
    counts = dict(zip(AXIS_NAMES, plan.shape, strict=True))
    order = plan.order()
    for combo in itertools.product(*(range(counts[name]) for name in order)):
        where = dict(zip(order, combo, strict=True))
        yield where["x"], where["y"], where["z"]


def _vary_seed(
    data: Data, options: SweepOptions, position: tuple[int, int, int], shape: tuple[int, int, int]
) -> None:
    """A1111's "Vary seeds for X/Y/Z". A -1 seed stays -1 (each cell is random anyway)."""
    if data["seed"] == -1:
        return
    ix, iy, iz = position
    xdim = shape[0] if options.vary_seeds_x else 1
    ydim = shape[1] if options.vary_seeds_y else 1
    offset = (ix if options.vary_seeds_x else 0) + (iy * xdim if options.vary_seeds_y else 0)
    offset += iz * xdim * ydim if options.vary_seeds_z else 0
    data["seed"] = (data["seed"] + offset) % (MAX_SEED + 1)


def _xyz_cell(plan: SweepPlan, base_data: Data, position: tuple[int, int, int]) -> SweepCell:
    data = copy.deepcopy(base_data)
    labels = tuple(axis.labels[i] for axis, i in zip(plan.axes, position, strict=True))
    where = f"cell {', '.join(label for label in labels if label) or '(the only one)'}"
    for name, axis, index in zip(AXIS_NAMES, plan.axes, position, strict=True):
        _apply(data, name, axis, index)
    _vary_seed(data, plan.options, position, plan.shape)
    for name, axis in zip(AXIS_NAMES, plan.axes, strict=True):
        problem = axis.axis_type.check(data) if axis.axis_type.check else None
        if problem:
            raise ConfigError(f"{problem} (in {where})", _axis_field(name, axis.axis_type))
    nx, ny, _ = plan.shape
    ix, iy, iz = position
    return SweepCell(
        ix + iy * nx + iz * nx * ny, ix, iy, iz, (labels[0], labels[1], labels[2]), _validate(data, where)
    )


def _matrix_cell(plan: SweepPlan, matrix: PromptMatrix, base_data: Data, index: int) -> SweepCell:
    data: dict[str, Any] = copy.deepcopy(base_data)
    key = "prompt" if matrix.options.prompt_type == "positive" else "negative_prompt"
    data[key] = matrix.prompt(index)
    if matrix.options.different_seeds:
        data["seed"] = (plan.base_seed + index) % (MAX_SEED + 1)
    for count_key in _IMAGE_COUNT_KEYS:
        if count_key in data:
            data[count_key] = 1
    cols, _ = matrix.shape
    label = ", ".join(matrix.selected_parts(index)) or matrix.parts[0].strip()
    return SweepCell(
        index, index % cols, index // cols, 0, (label, "", ""), _validate(data, f"image {index}")
    )


def sweep_cells(plan: SweepPlan, base: RunConfig) -> tuple[SweepCell, ...]:
    """Every cell of ``plan`` over ``base``, in run order (a prompt matrix runs in image order).

    Deterministic: the same plan and base always give the same cells, so a resumed group finds
    its cells again. Raises ConfigError for a cell RunConfig refuses or an axis with no effect.
    """
    base_data = _base_data(plan, base)
    if plan.matrix is not None:
        return tuple(_matrix_cell(plan, plan.matrix, base_data, i) for i in range(plan.matrix.count))
    return tuple(_xyz_cell(plan, base_data, position) for position in _positions(plan))


@dataclass(frozen=True)
class SweepJobs:
    """What a sweep queues as one group: its cells' configs in run order (load-once), each cell's
    grid ``indices``, and the group ``meta`` JSON the grid is drawn from later."""

    plan: SweepPlan
    configs: tuple[RunConfig, ...]
    indices: tuple[int, ...]
    meta: dict[str, Any]


def sweep_jobs(
    base: RunConfig,
    spec: SweepSpec,
    *,
    context: SweepContext | None = None,
    rng: random.Random | None = None,
    source: str | None = None,
) -> SweepJobs:
    """The jobs of ``spec`` over ``base`` (the CLI's ``queue add --sweep`` and the window's Sweep
    panel both queue these with ``JobQueue.add_group(configs, "sweep", meta, indices=indices)``).

    ``source`` (the sweep file, if any) is kept in the meta. Raises ConfigError, as
    :func:`build_sweep` does, before anything is queued.
    """
    plan = build_sweep(base, spec, context=context, rng=rng)
    cells = sweep_cells(plan, base)
    meta: dict[str, Any] = {"plan": plan.to_dict(), "base": base.model_dump(mode="json")}
    if source is not None:
        meta["source"] = source
    return SweepJobs(plan, tuple(c.config for c in cells), tuple(c.index for c in cells), meta)
