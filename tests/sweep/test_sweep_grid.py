"""Grid images: A1111's layout (pixel-equal to a two-pass re-implementation of A1111 1.10's
``image_grid`` + ``draw_grid_annotations`` with the same font), sizes and label bands, wrapping,
inactive labels, Z grids, placeholders, batch cells, and the atomic PNG write."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import a1111_reference as ref
import pytest
from PIL import Image, ImageChops, ImageDraw

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.infotext import PARAMETERS_KEY, RUN_CONFIG_KEY, read_image_metadata
from stablenew_qt.core.sweep import (
    SWEEP_PLAN_KEY,
    GridFont,
    GridLabel,
    GridLegend,
    SweepPlan,
    SweepSpec,
    assemble_grids,
    build_sweep,
    compose_grid,
    image_grid,
    sweep_cells,
    write_grid,
)
from stablenew_qt.core.sweep.build import build_prompt_matrix
from stablenew_qt.core.sweep.grid_font import dejavu_sans_path
from stablenew_qt.core.sweep.matrix import PromptMatrixOptions

FONT = GridFont()


def cell(color: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    image = Image.new("RGB", size, (color * 37 % 256, color * 91 % 256, 120))
    ImageDraw.Draw(image).rectangle((5, 5, 20, 20), fill=(255, 255, 0))
    return image


def reference_grid(cells: list[Image.Image], cols: int, legend: GridLegend, margin: int = 0) -> Image.Image:
    rows = len(cells) // cols
    grid = ref.image_grid(cells, rows=rows)
    w, h = max(c.width for c in cells), max(c.height for c in cells)
    hor = [[ref.Annotation(label.text, label.active) for label in labels] for labels in legend.columns]
    ver = [[ref.Annotation(label.text, label.active) for label in labels] for labels in legend.rows]
    return ref.draw_grid_annotations(grid, w, h, hor, ver, margin, FONT.at)


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None


def test_font_exists_offline() -> None:
    assert FONT.at(40).size == 40
    assert dejavu_sans_path() is None or FONT.name == "DejaVuSans.ttf"
    assert GridFont(path=None).at(12) is not None
    fallback = GridFont(pillow_default=True)  # as when matplotlib is absent
    assert fallback.name == "Pillow default" and fallback.at(20).size == 20
    assert fallback.at(20) is fallback.at(20)


@pytest.mark.parametrize(
    ("columns", "rows", "margin"),
    [
        (("CFG Scale: 4.0", "CFG Scale: 6.0", "CFG Scale: 8.0"), ("Euler", "DPM++ 2M"), 0),
        (("Steps: 10", "Steps: 20", "Steps: 30"), ("", ""), 6),  # no row labels: no left band
        (
            ("a long label that must wrap over several lines", "x", "Supercalifragilisticexpialidocious"),
            ("y1", "y2"),
            2,
        ),
        (("", "", ""), ("only rows", "have labels"), 0),  # no column labels: no top band
    ],
)
def test_labelled_grid_is_a1111s_pixel_for_pixel(
    columns: tuple[str, ...], rows: tuple[str, ...], margin: int
) -> None:
    cells = [cell(i) for i in range(6)]
    legend = GridLegend.simple(columns, rows)
    ours = compose_grid(cells, 3, legend, margin=margin, font=FONT)
    assert same(ours, reference_grid(cells, 3, legend, margin))


def test_inactive_labels_and_mixed_cell_sizes_are_a1111s() -> None:
    cells = [cell(i, (96, 80) if i % 2 else (80, 64)) for i in range(4)]
    legend = GridLegend(
        (
            (GridLabel("red hat", False), GridLabel("scarf", True)),
            (GridLabel("red hat", True), GridLabel("scarf", False)),
        ),
        ((GridLabel("sunglasses", False),), (GridLabel("sunglasses", True),)),
    )
    ours = compose_grid(cells, 2, legend, margin=4, font=FONT)
    assert same(ours, reference_grid(cells, 2, legend, 4))
    # The struck-through labels are grey: the band above column 0 holds grey but no black.
    band = ours.crop((ours.width - 2 * 96 - 4, 0, ours.width - 96 - 4, 40)).getcolors(10_000) or []
    assert any(color == (153, 153, 153) for _, color in band)


def test_geometry_of_a_512_grid() -> None:
    cells = [Image.new("RGB", (512, 512), (i * 40, 0, 0)) for i in range(6)]
    legend = GridLegend.simple(("Steps: 10", "Steps: 20", "Steps: 30"), ("Euler", "DPM++ 2M"))
    grid = compose_grid(cells, 3, legend, margin=10, font=FONT)
    font_size = (512 + 512) // 25
    spacing = font_size // 2
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_h = max(draw.multiline_textbbox((0, 0), t, font=FONT.at(font_size))[3] for t in ("Steps: 10",))
    text_h -= draw.multiline_textbbox((0, 0), "Steps: 10", font=FONT.at(font_size))[1]
    pad_left, pad_top = 512 * 3 // 4, text_h + 2 * spacing
    assert grid.size == (pad_left + 3 * 512 + 2 * 10, pad_top + 2 * 512 + 10)
    assert grid.getpixel((pad_left + 512 + 10 + 5, pad_top + 5)) == (40, 0, 0)  # cell 1 after one margin
    assert grid.getpixel((pad_left + 512 + 5, pad_top + 5)) == (255, 255, 255)  # the margin is background


def test_plain_grid_and_batch_grid_rules() -> None:
    assert image_grid([cell(1)]) is not None and image_grid([cell(1)]).size == (96, 80)
    four = image_grid([cell(i) for i in range(4)])
    assert four.size == (192, 160)  # round(sqrt(4)) = 2 rows
    three = image_grid([cell(i) for i in range(3)])
    assert three.size == (192, 160)  # round(sqrt(3)) = 2 rows, 2 columns, one empty spot
    assert same(three, ref.image_grid([cell(i) for i in range(3)]))
    assert compose_grid([cell(i) for i in range(6)], 3, None).size == (288, 160)  # no legend: no margins


def _xyz_plan(spec: dict[str, Any]) -> tuple[SweepPlan, RunConfig]:
    base = RunConfig.from_dict({"prompt": "a fox", "seed": 1, "txt2img": {"width": 96, "height": 80}})
    return build_sweep(base, SweepSpec.from_dict(spec), rng=random.Random(0)), base


def test_z_axis_makes_a_grid_of_grids_with_titles() -> None:
    plan, base = _xyz_plan(
        {
            "x": {"type": "Steps", "values": "10, 20"},
            "y": {"type": "CFG Scale", "values": "5, 7"},
            "z": {"type": "Seed", "values": "1, 2, 3"},
        }
    )
    cells = sweep_cells(plan, base)
    images = {c.index: [cell(c.index)] for c in cells}
    grids = assemble_grids(plan, images, cells, font=FONT)
    assert len(grids.sub_grids) == 3
    legend = GridLegend.simple(plan.x.labels, plan.y.labels)
    for z, sub in enumerate(grids.sub_grids):
        assert same(sub, reference_grid([cell(i) for i in range(z * 4, z * 4 + 4)], 2, legend))
    titles = GridLegend.simple(plan.z.labels, ("",))
    assert same(grids.main, reference_grid(list(grids.sub_grids), 3, titles))
    sub_w, sub_h = grids.sub_grids[0].size
    assert grids.main.width == 3 * sub_w and grids.main.height > sub_h


def test_without_z_the_xy_grid_is_the_grid() -> None:
    plan, base = _xyz_plan({"x": {"type": "Steps", "values": "10, 20"}})
    cells = sweep_cells(plan, base)
    grids = assemble_grids(plan, {c.index: [cell(c.index)] for c in cells}, cells, font=FONT)
    assert grids.sub_grids == ()
    assert same(grids.main, reference_grid([cell(0), cell(1)], 2, GridLegend.simple(plan.x.labels, ("",))))
    plan_off, _ = _xyz_plan({"x": {"type": "Steps", "values": "10, 20"}, "draw_legend": False})
    plain = assemble_grids(plan_off, {0: [cell(0)], 1: [cell(1)]}, font=FONT)
    assert plain.main.size == (192, 80)


def test_failed_cell_is_a_labelled_placeholder_and_batches_are_batch_grids() -> None:
    plan, base = _xyz_plan({"x": {"type": "Steps", "values": "10, 20, 30"}, "draw_legend": False})
    cells = sweep_cells(plan, base)
    images = {0: [cell(0)], 2: [cell(i) for i in range(4)]}
    grid = assemble_grids(plan, images, cells, font=FONT).main
    assert grid.size == (3 * 192, 160)  # every slot as large as the largest cell (the batch grid)
    hole = grid.crop((192, 0, 384, 160))
    colors = dict((c, n) for n, c in hole.getcolors(100_000) or [])
    assert max(colors, key=lambda c: colors[c]) == (200, 200, 200)  # grey, not A1111's black
    assert any(c != (200, 200, 200) and c != (255, 255, 255) for c in colors)  # the text "no image ..."
    assert same(grid.crop((384, 0, 576, 160)), image_grid([cell(i) for i in range(4)]))
    with pytest.raises(ConfigError, match="none of the 3 cells has an image"):
        assemble_grids(plan, {}, cells)
    assert assemble_grids(plan, {}, cells, cell_size=(32, 32)).main.size == (96, 32)


def test_prompt_matrix_grid_matches_a1111_layout() -> None:
    base = RunConfig.from_dict({"prompt": "a cat|red hat|scarf|glasses", "seed": 1})
    plan = build_prompt_matrix(base, PromptMatrixOptions(margin_size=2))
    cells = sweep_cells(plan, base)
    grids = assemble_grids(plan, {c.index: [cell(c.index)] for c in cells}, cells, font=FONT)
    legend = plan.legend()
    assert legend is not None
    assert same(grids.main, reference_grid([cell(i) for i in range(8)], 4, legend, 2))


def test_write_grid_is_atomic_numbered_and_carries_metadata(tmp_path: Path) -> None:
    plan, base = _xyz_plan({"x": {"type": "Steps", "values": "10, 20"}})
    first = sweep_cells(plan, base)[0].config
    image = cell(3)
    path = write_grid(
        image, tmp_path / "run", parameters="a fox\nSteps: 10, Script: X/Y/Z plot", config=first, plan=plan
    )
    assert path.name == "xyz_grid-00000.png"
    again = write_grid(image, tmp_path / "run", parameters="p", config=first, plan=plan)
    assert again.name == "xyz_grid-00001.png"
    meta = read_image_metadata(path)
    assert meta.parameters == "a fox\nSteps: 10, Script: X/Y/Z plot"
    assert meta.run_config == first
    with Image.open(path) as png:
        assert SweepPlan.from_json(png.info[SWEEP_PLAN_KEY]) == plan
        assert {PARAMETERS_KEY, RUN_CONFIG_KEY} <= set(png.info)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "xyz_grid-00000.png",
        "xyz_grid-00001.png",
    ]


def test_failed_grid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, base = _xyz_plan({"x": {"type": "Steps", "values": "10, 20"}})

    def broken_link(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", broken_link)
    monkeypatch.setattr(os, "rename", broken_link)
    with pytest.raises(OSError, match="No space"):
        write_grid(cell(1), tmp_path, parameters="p", config=base, plan=plan)
    assert list(tmp_path.iterdir()) == []
