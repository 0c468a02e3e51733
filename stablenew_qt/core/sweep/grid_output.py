"""A finished sweep's grid: assembled from its cells' images, labelled, and written with infotext.

Assembly follows A1111's ``draw_xyz_grid`` (``scripts/xyz_grid.py``): one X/Y grid per Z value
(``len(Y)`` rows, legend per :meth:`SweepPlan.legend`), then those side by side in one row with
each Z label above its grid. A cell that made several images (batch size or count above 1)
shows them as A1111's own batch grid. A cell with no image (its job failed or was cancelled) is
a grey placeholder that says which cell it is; A1111 pastes a black square.

Infotext (:func:`grid_parameters`): A1111 writes the first cell's parameters plus ``Script:
X/Y/Z plot``, ``X Type``, ``X Values`` (as typed), ``Fixed X Values`` (Seed axes whose -1s it
fixed), the same for Y, and on the main grid only the Z keys. The prompt matrix writes the first
image's parameters and nothing more. The cells' own images carry none of these keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..config import RunConfig
from ..errors import ConfigError
from ..infotext import png_metadata
from ..outputs import atomic_write_bytes, encode_png, safe_join
from .build import SweepCell
from .grid import compose_grid, image_grid, placeholder
from .grid_font import GridFont
from .plan import AXIS_NAMES, SweepPlan

__all__ = [
    "SWEEP_PLAN_KEY",
    "SweepGrids",
    "assemble_grids",
    "grid_parameters",
    "grid_png",
    "grid_stem",
    "write_grid",
]

#: PNG text chunk holding the plan's JSON, so a grid can restore its whole sweep.
SWEEP_PLAN_KEY = "stablenew_sweep_plan"
XYZ_SCRIPT = "X/Y/Z plot"
_MAX_NUMBER_ATTEMPTS = 100_000

CellImages = Mapping[int, Sequence[Image.Image]]


@dataclass(frozen=True)
class SweepGrids:
    """The main grid and, for a plan with several Z values, each Z value's own X/Y grid."""

    main: Image.Image
    sub_grids: tuple[Image.Image, ...]


def _cell_image(images: Sequence[Image.Image] | None) -> Image.Image | None:
    if not images:
        return None
    return image_grid(images)  # one image stays itself; several become A1111's batch grid


def _cell_size(
    plan: SweepPlan, cell_images: list[Image.Image | None], cell_size: tuple[int, int] | None
) -> tuple[int, int]:
    present = [image for image in cell_images if image is not None]
    if present:
        return max(i.width for i in present), max(i.height for i in present)
    if cell_size is None:
        raise ConfigError(
            f"none of the {plan.cell_count} cells has an image, so there is no grid to assemble"
        )
    return cell_size


def assemble_grids(
    plan: SweepPlan,
    images: CellImages,
    cells: Sequence[SweepCell] = (),
    *,
    font: GridFont | None = None,
    cell_size: tuple[int, int] | None = None,
) -> SweepGrids:
    """The grids of ``plan`` from ``images`` (cell index → that cell's images, in order).

    Cells missing from ``images`` become placeholders naming the cell (its labels from ``cells``,
    the plan's cells, when given). ``cell_size`` is the placeholder size when no cell has an image.
    """
    font = font or GridFont()
    by_index = {cell.index: cell for cell in cells}
    per_cell = [_cell_image(images.get(i)) for i in range(plan.cell_count)]
    size = _cell_size(plan, per_cell, cell_size)
    filled = [
        image if image is not None else placeholder(size, _missing_text(by_index.get(i)), font)
        for i, image in enumerate(per_cell)
    ]
    nx, ny, nz = plan.shape
    margin = plan.matrix.options.margin_size if plan.matrix is not None else plan.options.margin_size
    legend = plan.legend()
    subs = tuple(
        compose_grid(filled[z * nx * ny : (z + 1) * nx * ny], nx, legend, margin=margin, font=font)
        for z in range(nz)
    )
    titles = plan.title_legend()
    if nz == 1 and (titles is None or not any(label.text for (label,) in titles.columns)):
        return SweepGrids(subs[0], ())
    main = compose_grid(list(subs), nz, titles, font=font)
    return SweepGrids(main, subs)


def _missing_text(cell: SweepCell | None) -> str:
    labels = [label for label in cell.labels if label] if cell is not None else []
    return "\n".join(["no image", *labels])


def grid_parameters(plan: SweepPlan, *, sub_grid: bool = False) -> dict[str, str]:
    """The keys A1111 adds to a grid's infotext, in its order (empty for a prompt matrix).

    ``sub_grid`` True gives a Z value's own X/Y grid's keys, which have no Z keys.
    """
    if plan.matrix is not None:
        return {}
    pairs = {"Script": XYZ_SCRIPT}
    names = AXIS_NAMES[:2] if sub_grid else AXIS_NAMES
    for name, axis in zip(names, plan.axes, strict=False):
        if axis.is_nothing:
            continue
        letter = name.upper()
        pairs[f"{letter} Type"] = axis.type
        pairs[f"{letter} Values"] = axis.values
        if axis.axis_type.is_seed and not plan.options.keep_random_seeds:
            pairs[f"Fixed {letter} Values"] = ", ".join(str(v) for v in axis.resolved)
    return pairs


def grid_stem(plan: SweepPlan) -> str:
    """A1111's grid file name stem: ``xyz_grid`` or ``prompt_matrix``."""
    return "prompt_matrix" if plan.matrix is not None else "xyz_grid"


def grid_png(image: Image.Image, *, parameters: str, config: RunConfig, plan: SweepPlan) -> bytes:
    """The grid's PNG bytes with its three text chunks (see :func:`write_grid`)."""
    info = png_metadata(parameters, config)
    info.add_text(SWEEP_PLAN_KEY, plan.to_json(indent=None))
    return encode_png(image, info)


def write_grid(
    image: Image.Image,
    folder: Path,
    *,
    parameters: str,
    config: RunConfig,
    plan: SweepPlan,
    stem: str | None = None,
) -> Path:
    """Write ``image`` as ``<stem>-NNNNN.png`` in ``folder`` (the first free number from 00000),
    atomically and never over an existing file, and return its path.

    The PNG carries ``parameters`` (the grid's infotext), ``config`` (the first cell's RunConfig,
    so restoring the grid restores that cell, as pasting A1111's grid infotext does) and the plan.
    ``stem`` defaults to A1111's ``xyz_grid`` or ``prompt_matrix``.
    """
    stem = stem or grid_stem(plan)
    data = grid_png(image, parameters=parameters, config=config, plan=plan)
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(_MAX_NUMBER_ATTEMPTS):
        path = safe_join(folder, f"{stem}-{number:05d}.png")
        try:
            return atomic_write_bytes(path, data)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free grid file name in {str(folder)!r}")
