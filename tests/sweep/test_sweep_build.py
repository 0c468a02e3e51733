"""Building and expanding X/Y/Z sweeps: axis application, A1111's load-once loop order, seeds
("Keep -1 for seeds", "Vary seeds"), Prompt S/R, name checks, the stored plan's JSON and the grid
infotext keys."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from typing import Any

import pytest
from a1111_reference import loop_order

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import StageInfo
from stablenew_qt.core.infotext import build_infotext, parse_infotext
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.core.sweep import (
    AXIS_TYPES,
    PlannedAxis,
    SweepContext,
    SweepPlan,
    SweepSpec,
    build_sweep,
    grid_parameters,
    sweep_cells,
)

CHECKPOINTS = ("sd15-base.safetensors", "anime/sd15-anime.safetensors", "photo.ckpt")
CONTEXT = SweepContext(
    checkpoints=CHECKPOINTS, vaes=("vae-ft-mse.safetensors",), upscalers=("4x-UltraSharp",)
)


def base(**changes: Any) -> RunConfig:
    data: dict[str, Any] = {
        "prompt": "a red fox in snow, <lora:fur:0.5>",
        "negative_prompt": "blurry, red",
        "seed": 1234,
        "txt2img": {"model": "sd15-base.safetensors", "width": 512, "height": 512},
    }
    for key, value in changes.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    return RunConfig.from_dict(data)


def plan(spec: dict[str, Any], config: RunConfig | None = None, seed: int = 0) -> SweepPlan:
    return build_sweep(config or base(), SweepSpec.from_dict(spec), context=CONTEXT, rng=random.Random(seed))


def test_issue_example_cfg_against_samplers() -> None:
    config = base()
    built = plan(
        {
            "x": {"type": "CFG Scale", "values": "4-8 (+2)"},
            "y": {"type": "Sampler", "values": "Euler, DPM++ 2M"},
        }
    )
    cells = sweep_cells(built, config)
    assert built.shape == (3, 2, 1)
    # No costly axis: A1111 runs Z outermost, then Y, with X innermost.
    assert [(c.x, c.y) for c in cells] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert [c.index for c in cells] == [0, 1, 2, 3, 4, 5]
    assert [(c.config.txt2img.cfg_scale, c.config.txt2img.sampler) for c in cells] == [
        (4.0, "Euler"),
        (6.0, "Euler"),
        (8.0, "Euler"),
        (4.0, "DPM++ 2M"),
        (6.0, "DPM++ 2M"),
        (8.0, "DPM++ 2M"),
    ]
    assert cells[0].labels == ("CFG Scale: 4.0", "Euler", "")
    assert {c.config.seed for c in cells} == {1234}
    # Everything else is the base config.
    assert cells[4].config.model_copy(update={"txt2img": config.txt2img}) == config


@pytest.mark.parametrize("costly", ["x", "y", "z"])
def test_checkpoint_axis_runs_outermost_so_each_model_loads_once(costly: str) -> None:
    axes = {name: {"type": "Steps", "values": "10, 20"} for name in "xyz"}
    axes[costly] = {"type": "Checkpoint name", "values": "sd15-base, anime, photo"}
    built = plan(axes)
    assert built.order()[0] == costly
    models = [c.config.txt2img.model for c in sweep_cells(built, base())]
    switches = sum(1 for a, b in itertools.pairwise(models) if a != b)
    assert switches == len(CHECKPOINTS) - 1
    assert len(models) == 3 * 2 * 2


def test_checkpoint_before_vae_before_cheap_axes() -> None:
    built = plan(
        {
            "x": {"type": "VAE", "values": "Automatic, vae-ft-mse.safetensors"},
            "y": {"type": "CFG Scale", "values": "5, 7"},
            "z": {"type": "Checkpoint name", "values": "sd15-base, photo"},
        }
    )
    assert built.order() == ("z", "x", "y")
    cells = sweep_cells(built, base())
    pairs = [(c.config.txt2img.model, c.config.txt2img.vae) for c in cells]
    assert sum(1 for a, b in itertools.pairwise(pairs) if a[0] != b[0]) == 1
    assert sum(1 for a, b in itertools.pairwise(pairs) if a != b) == 3  # VAE changes once per model


@pytest.mark.parametrize(
    "labels",
    list(itertools.product(["Steps", "Checkpoint name", "VAE", "Refiner checkpoint"], repeat=3)),
)
def test_loop_order_is_a1111s_for_every_cost_combination(labels: tuple[str, str, str]) -> None:
    axes = {
        "x": {"type": labels[0], "values": "x"},
        "y": {"type": labels[1], "values": "y"},
        "z": {"type": labels[2], "values": "z"},
    }
    spec = SweepSpec.from_dict(axes)
    costs = [AXIS_TYPES[label].cost for label in labels]
    planned = SweepPlan(
        **{
            name: PlannedAxis(type=a.type, values="v", resolved=("v",), labels=("v",))
            for name, a in zip("xyz", spec.axes, strict=True)
        }
    )
    assert planned.order() == loop_order(*costs)


def test_keep_random_seeds_off_fixes_minus_one_once_for_every_cell() -> None:
    config = base(seed=-1)
    built = plan(
        {"x": {"type": "CFG Scale", "values": "5, 7"}, "y": {"type": "Seed", "values": "-1, 42, -1"}},
        config,
        seed=7,
    )
    rng = random.Random(7)
    expected_base, first, second = (
        rng.randrange(4294967294),
        rng.randrange(4294967294),
        rng.randrange(4294967294),
    )
    assert built.base_seed == expected_base
    assert built.y.resolved == (first, 42, second)
    cells = sweep_cells(built, config)
    assert [c.config.seed for c in cells] == [first, first, 42, 42, second, second]
    assert grid_parameters(built)["Fixed Y Values"] == f"{first}, 42, {second}"
    assert built.y.labels == (f"Seed: {first}", "Seed: 42", f"Seed: {second}")


def test_keep_random_seeds_on_leaves_every_cell_random() -> None:
    config = base(seed=-1)
    built = plan(
        {
            "x": {"type": "Seed", "values": "-1, 5"},
            "y": {"type": "CFG Scale", "values": "5, 7"},
            "keep_random_seeds": True,
        },
        config,
    )
    assert built.base_seed == -1
    assert [c.config.seed for c in sweep_cells(built, config)] == [-1, 5, -1, 5]
    assert "Fixed X Values" not in grid_parameters(built)


def test_vary_seeds_adds_the_cell_position() -> None:
    built = plan(
        {
            "x": {"type": "CFG Scale", "values": "5, 6, 7"},
            "y": {"type": "Steps", "values": "10, 20"},
            "vary_seeds_x": True,
            "vary_seeds_y": True,
        }
    )
    seeds = {(c.x, c.y): c.config.seed for c in sweep_cells(built, base())}
    assert seeds == {(x, y): 1234 + x + 3 * y for x in range(3) for y in range(2)}


def test_prompt_search_and_replace() -> None:
    config = base(img2img={"enabled": True, "prompt": "red fox sketch"})
    built = plan({"x": {"type": "Prompt S/R", "values": "red, blue, "}}, config)
    cells = sweep_cells(built, config)
    assert [c.config.prompt for c in cells] == [
        "a red fox in snow, <lora:fur:0.5>",
        "a blue fox in snow, <lora:fur:0.5>",
        "a  fox in snow, <lora:fur:0.5>",
    ]
    assert [c.config.negative_prompt for c in cells] == ["blurry, red", "blurry, blue", "blurry, "]
    assert {c.config.img2img.prompt for c in cells} == {"red fox sketch"}  # explicit override untouched
    assert [c.labels[0] for c in cells] == ["red", "blue", ""]


def test_lora_weight_via_prompt_sr() -> None:
    built = plan({"x": {"type": "Prompt S/R", "values": "<lora:fur:0.5>, <lora:fur:0.8>, <lora:fur:1>"}})
    assert [c.config.prompt.split(", ")[-1] for c in sweep_cells(built, base())] == [
        "<lora:fur:0.5>",
        "<lora:fur:0.8>",
        "<lora:fur:1>",
    ]


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ({"x": {"type": "CFG scal", "values": "5"}}, ["unknown axis type 'CFG scal'", "'CFG Scale'"]),
        (
            {"x": {"type": "Sampler", "values": "Euler, Eular a"}},
            ["X axis 'Sampler'", "unknown sampler 'Eular a'", "'Euler a'"],
        ),
        (
            {"y": {"type": "Checkpoint name", "values": "nope"}},
            ["Y axis 'Checkpoint name'", "installed: sd15-base"],
        ),
        (
            {"x": {"type": "CFG Scale", "values": "5, 50"}},
            ["X axis 'CFG Scale' value 'CFG Scale: 50.0'", "cfg_scale", "at most 30"],
        ),
        (
            {"x": {"type": "Prompt S/R", "values": "wolf, dog"}},
            ["X axis 'Prompt S/R'", "did not find 'wolf'"],
        ),
        ({"x": {"type": "Hires steps", "values": "10"}}, ["X axis 'Hires steps'", "hires fix is off"]),
        ({"x": {"type": "Steps", "values": ""}}, ["X axis 'Steps'", "has no values"]),
        ({"z": {"type": "Var. seed", "values": "1, 2"}}, ["Z axis 'Var. seed'", "variation strength is 0"]),
        ({"x": {"type": "VAE", "values": "nope.pt"}}, ["unknown VAE 'nope.pt'"]),
        (
            {"x": {"type": "Seed", "values": "1-30"}, "y": {"type": "Steps", "values": "1-30"}},
            ["megapixels", "limit is 200"],
        ),
        (
            {"x": {"type": "[ADetailer] Inpaint denoising strength 1st", "values": "0.3"}},
            ["ADetailer is off"],
        ),
        (
            {"x": {"type": "Steps", "values": "5"}, "prompt_matrix": {}},
            ["either X/Y/Z axes or a prompt matrix"],
        ),
        ({"x": {"type": "Steps", "value": "5"}}, ["x.value", "unknown key"]),
    ],
)
def test_bad_sweeps_are_one_clear_error(spec: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        plan(spec)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_names_resolve_as_a1111_matches_them() -> None:
    built = plan(
        {
            "x": {"type": "Sampler", "values": "euler a, DPM++ 2M Karras"},
            "y": {"type": "Checkpoint name", "values": "anime, photo.ckpt, sd15-base [abcdef12]"},
            "z": {"type": "Hires upscaler", "values": "latent, 4x-ultrasharp"},
        },
        base(txt2img={"hires_enabled": True}),
    )
    assert built.x.resolved == ("Euler a", "DPM++ 2M Karras")
    assert built.x.labels == ("euler a", "DPM++ 2M Karras")  # labels show what was typed, as A1111's
    assert built.y.resolved == CHECKPOINTS[1:] + CHECKPOINTS[:1]
    assert built.y.labels == ("anime", "photo.ckpt", "sd15-base [abcdef12]")
    assert built.z.resolved == ("Latent", "4x-UltraSharp")
    cell = sweep_cells(built, base(txt2img={"hires_enabled": True}))[1]
    assert (cell.config.txt2img.sampler, cell.config.txt2img.scheduler) == ("DPM++ 2M", "Karras")


def test_stage_axes_apply_where_a1111_applies_them() -> None:
    hires = base(txt2img={"hires_enabled": True})
    cells = sweep_cells(plan({"x": {"type": "Denoising", "values": "0.3, 0.6"}}, hires), hires)
    assert [c.config.txt2img.hires_denoise for c in cells] == [0.3, 0.6]
    i2i = base(txt2img={"enabled": False}, img2img={"enabled": True}, input_image_path="in.png")
    cells = sweep_cells(
        plan({"x": {"type": "Denoising", "values": "0.2"}, "y": {"type": "Steps", "values": "8"}}, i2i), i2i
    )
    assert (cells[0].config.img2img.denoise, cells[0].config.img2img.steps) == (0.2, 8)
    refiner = base(txt2img={"refiner_enabled": True, "refiner_model_name": "photo.ckpt"})
    built = plan(
        {
            "x": {"type": "Refiner switch at", "values": "0.6-0.8 [3]"},
            "y": {"type": "Clip skip", "values": "1-2"},
        },
        refiner,
    )
    assert [c.config.txt2img.refiner_switch_at for c in sweep_cells(built, refiner)][:3] == [0.6, 0.7, 0.8]
    sized = sweep_cells(plan({"x": {"type": "Size", "values": "512x768, 768 x 512"}}), base())
    assert [(c.config.txt2img.width, c.config.txt2img.height) for c in sized] == [(512, 768), (768, 512)]


def test_variation_seed_and_strength_axes_set_a1111s_subseed_fields() -> None:
    config = base(seed=7, subseed_strength=0.25)
    built = plan(
        {
            "x": {"type": "Var. seed", "values": "-1, 42"},
            "y": {"type": "Var. strength", "values": "0.1, 0.5"},
        },
        config,
    )
    cells = sweep_cells(built, config)
    assert {c.config.subseed_strength for c in cells} == {0.1, 0.5}
    assert [c.config.subseed for c in cells][1::2] == [42, 42]
    fixed = {c.config.subseed for c in cells[::2]}
    assert len(fixed) == 1 and fixed != {-1}, "Keep -1 for seeds off: the -1 is fixed once for every cell"
    assert {c.config.seed for c in cells} == {7}, "the main seed stays"
    random = plan({"x": {"type": "Var. seed", "values": "-1"}, "keep_random_seeds": True}, config)
    assert [c.config.subseed for c in sweep_cells(random, config)] == [-1]


def test_adetailer_axes_use_adetailers_own_names() -> None:
    config = base(
        adetailer={"enabled": True, "units": [{"adetailer_prompt": "", "adetailer_use_cfg_scale": True}]}
    )
    built = plan(
        {
            "x": {"type": "[ADetailer] Inpaint denoising strength 1st", "values": "0.2-0.6 (+0.2)"},
            "y": {"type": "[ADetailer] CFG scale 1st", "values": "4, 9"},
            "z": {"type": "[ADetailer] Prompt S/R (AD 1st)", "values": "red, golden"},
        },
        config,
    )
    cells = sweep_cells(built, config)
    assert sorted({round(c.config.adetailer.units[0].adetailer_strength, 8) for c in cells}) == [
        0.2,
        0.4,
        0.6,
    ]
    assert {c.config.adetailer.units[0].adetailer_cfg_scale for c in cells} == {4.0, 9.0}
    golden = next(c for c in cells if c.z == 1).config
    assert golden.adetailer.units[0].adetailer_prompt == "a golden fox in snow, <lora:fur:0.5>"
    assert golden.prompt == config.prompt  # "AD 1st" leaves the main prompt alone
    assert built.x.labels[0] == "[ADetailer] Inpaint denoising strength 1st: 0.2"


def test_plan_json_round_trip_and_strictness() -> None:
    built = plan(
        {
            "x": {"type": "CFG Scale", "values": ["5", 7.5]},
            "z": {"type": "Seed", "values": "1, 2"},
            "margin_size": 10,
        }
    )
    assert built.x.values == "5,7.5"  # a list is recorded as A1111 records dropdown values
    text = built.to_json()
    assert SweepPlan.from_json(text) == built
    data = json.loads(text)
    assert data["x"] == {
        "type": "CFG Scale",
        "values": "5,7.5",
        "resolved": [5.0, 7.5],
        "labels": ["CFG Scale: 5.0", "CFG Scale: 7.5"],
    }
    assert isinstance(SweepPlan.from_json(text).x.resolved[0], float)
    assert isinstance(SweepPlan.from_json(text).z.resolved[0], int)
    with pytest.raises(ConfigError, match="version 2"):
        SweepPlan.from_dict({**data, "version": 2})
    with pytest.raises(ConfigError, match="unknown axis type"):
        SweepPlan.from_dict({**data, "y": {"type": "Stepz", "values": "", "resolved": [1], "labels": ["1"]}})
    with pytest.raises(ConfigError, match="prompt_matrix"):
        SweepPlan.from_dict({**data, "kind": "prompt_matrix"})
    with pytest.raises(ConfigError, match="line 1"):
        SweepPlan.from_json("{")


def test_grid_infotext_keys_as_a1111_writes_them() -> None:
    built = plan(
        {
            "x": {"type": "Seed", "values": "1, 2"},
            "y": {"type": "Sampler", "values": "Euler, DPM++ 2M"},
            "z": {"type": "CFG Scale", "values": "5,7"},
        }
    )
    assert grid_parameters(built) == {
        "Script": "X/Y/Z plot",
        "X Type": "Seed",
        "X Values": "1, 2",
        "Fixed X Values": "1, 2",
        "Y Type": "Sampler",
        "Y Values": "Euler, DPM++ 2M",
        "Z Type": "CFG Scale",
        "Z Values": "5,7",
    }
    assert "Z Type" not in grid_parameters(built, sub_grid=True)
    only_y = plan({"y": {"type": "Steps", "values": "10, 20"}})
    assert grid_parameters(only_y) == {"Script": "X/Y/Z plot", "Y Type": "Steps", "Y Values": "10, 20"}
    cell = sweep_cells(built, base())[0].config
    text = build_infotext(
        cell,
        seed=1,
        stage_infos={StageName.TXT2IMG: StageInfo()},
        version="0.1.0",
        extra=grid_parameters(built),
    )
    parsed = parse_infotext(text)
    keys = list(parsed.params)
    assert keys[-1] == "Version" and keys[keys.index("Script") : keys.index("Script") + 3] == [
        "Script",
        "X Type",
        "X Values",
    ]
    assert parsed.params["Y Values"] == "Euler, DPM++ 2M"
    assert parsed.params["Fixed X Values"] == "1, 2"


def test_expansion_is_deterministic() -> None:
    built = plan(
        {"x": {"type": "Seed", "values": "-1, -1"}, "y": {"type": "Steps", "values": "5-7"}}, base(seed=-1)
    )
    again = SweepPlan.from_json(built.to_json())
    assert sweep_cells(again, base(seed=-1)) == sweep_cells(built, base(seed=-1))


def test_importing_the_sweep_package_loads_no_dynamicprompts_or_numpy() -> None:
    code = "import sys, stablenew_qt.core.sweep; print(sorted(m.split('.')[0] for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'dynamicprompts'" not in out and "'numpy'" not in out and "'torch'" not in out
