"""``stablenew-qt bench`` on the tiny demo models: it runs, reports every number, and the runner's
final image equals the hand-written diffusers chain's. Numbers only: no speed is asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.cli import build_parser
from stablenew_qt.cli.bench import run_bench

SIDES = {"runner", "hand"}
STAGES = {"txt2img", "img2img", "upscale", "save", "total"}
KEYS = {
    "device",
    "memory_measure",
    "model",
    "refiner",
    "size",
    "steps",
    "rounds",
    "stages",
    "ratio",
    "unet_steps",
    "unet_steps_per_second",
    "peak_memory_bytes",
    "load_seconds",
    "loads",
    "max_abs_diff",
    "pixels_identical",
}


def test_bench_one_round_on_the_demo_models(
    demo_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_root = next(iter(demo_models.values())).parent
    report_file = tmp_path / "bench.json"
    args = build_parser().parse_args(
        [
            "bench",
            "--device", "cpu",
            "--rounds", "1",
            "--size", "64x64",
            "--steps", "4",
            "--json", str(report_file),
            "--output", str(tmp_path / "out"),
            "--models-dir", str(tmp_path / "models"),
        ]
    )  # fmt: skip

    assert run_bench(args, demo_dir=demo_root) == 0

    data = json.loads(report_file.read_text(encoding="utf-8"))
    assert set(data) == KEYS
    assert (data["model"], data["refiner"]) == ("demo-tiny-sdxl", "demo-tiny-sdxl-refiner")
    assert (data["size"], data["steps"], data["rounds"]) == ("64x64", 4, 1)
    assert set(data["stages"]) == STAGES
    for stage, sides in data["stages"].items():
        assert set(sides) == SIDES and all(seconds > 0 for seconds in sides.values()), stage
    assert data["ratio"] > 0
    assert data["unet_steps"]["runner"] == data["unet_steps"]["hand"] > 0, "both sides run the same steps"
    for key in ("unet_steps_per_second", "peak_memory_bytes"):
        assert set(data[key]) == SIDES and all(value > 0 for value in data[key].values()), key
    assert data["load_seconds"]["cold"] > 0 and data["load_seconds"]["hand"] > 0
    assert data["load_seconds"]["warm"] >= 0
    assert data["loads"] == {"cold": 2, "warm": 0}, "base and refiner load once; warm runs load nothing"
    assert data["max_abs_diff"] == 0 and data["pixels_identical"] is True
    assert "CPU" in data["device"] and "RSS" in data["memory_measure"]

    table = capsys.readouterr().out
    assert "median seconds" in table and "identical (max abs difference 0)" in table
    assert len(list((tmp_path / "out" / "hand").glob("round-*.png"))) == 2, "warm-up and one timed round"
    assert len(list((tmp_path / "out" / "runner").rglob("*.png"))) == 2


@pytest.mark.parametrize("size", ["1024", "64x", "ax64", "64*64"])
def test_bench_size_must_be_width_x_height(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--size", size])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_bench_rounds_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--rounds", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_bench_with_an_unknown_model_is_a_one_line_error(
    demo_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_root = next(iter(demo_models.values())).parent
    args = build_parser().parse_args(
        ["bench", "--device", "cpu", "--model", "no-such-model", "--models-dir", str(tmp_path)]
    )
    assert run_bench(args, demo_dir=demo_root) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint 'no-such-model' not found") and "Traceback" not in err


AD_KEYS = {
    "device",
    "model",
    "detector",
    "image",
    "steps",
    "rounds",
    "faces",
    "phases",
    "ratio",
    "denoising_steps",
    "load_seconds",
    "loads",
    "max_abs_diff",
    "pixels_identical",
}
# The committed output of tests/tools/make_tiny_face_detector.py: a YOLO that finds drawn faces.
TINY_DETECTOR = Path(__file__).parents[1] / "data" / "face_tiny.pt"


def test_bench_adetailer_one_round_with_the_tiny_detector(
    demo_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_root = next(iter(demo_models.values())).parent
    report_file, out = tmp_path / "adetailer.json", tmp_path / "out"
    args = build_parser().parse_args(
        [
            "bench", "--adetailer",
            "--detector", str(TINY_DETECTOR),
            "--device", "cpu",
            "--rounds", "1",
            "--steps", "4",
            "--json", str(report_file),
            "--output", str(out),
            "--models-dir", str(tmp_path / "models"),
        ]
    )  # fmt: skip

    assert run_bench(args, demo_dir=demo_root) == 0

    data = json.loads(report_file.read_text(encoding="utf-8"))
    assert set(data) == AD_KEYS
    assert (data["model"], data["detector"], data["steps"], data["rounds"]) == (
        "demo-tiny-sd15", "face_tiny.pt", 4, 1,
    )  # fmt: skip
    assert data["image"].startswith("synthetic 256x256") and data["faces"] == 2, "both drawn faces found"
    assert set(data["phases"]) == {"detect", "inpaint", "per_face", "total"}
    for phase, sides in data["phases"].items():
        assert set(sides) == SIDES and all(seconds > 0 for seconds in sides.values()), phase
    assert data["ratio"] > 0
    assert data["denoising_steps"]["runner"] == data["denoising_steps"]["hand"] > 0
    assert set(data["load_seconds"]) == SIDES and all(s > 0 for s in data["load_seconds"].values())
    assert data["loads"] == {"cold": 1, "warm": 0}, "the inpaint model loads once, before the rounds"
    assert data["max_abs_diff"] == 0 and data["pixels_identical"] is True

    table = capsys.readouterr().out
    assert "inpaint per face" in table and "identical (max abs difference 0)" in table
    with Image.open(out / "adetailer-input.png") as before, Image.open(out / "adetailer-runner.png") as after:
        assert before.tobytes() != after.tobytes(), "the faces were repainted"


def test_bench_adetailer_needs_a_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "--adetailer", "--models-dir", str(tmp_path)])
    assert run_bench(args) == 2
    assert "--detector FILE" in capsys.readouterr().err


def test_bench_samplers_sweep_reports_ours_and_diffusers(
    demo_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_root = next(iter(demo_models.values())).parent
    report_file = tmp_path / "samplers.json"
    args = build_parser().parse_args(
        [
            "bench", "--samplers", "--sampler-list", "Euler,DPM++ 2M",
            "--device", "cpu", "--steps", "2", "--repeats", "1", "--size", "64x64",
            "--json", str(report_file),
        ]
    )  # fmt: skip

    assert run_bench(args, demo_dir=demo_root) == 0

    rows = json.loads(report_file.read_text(encoding="utf-8"))
    assert [r["sampler"] for r in rows] == ["Euler", "DPM++ 2M"]
    for row in rows:
        assert row["ours_s_per_step"] > 0 and row["diffusers_s_per_step"] > 0
        assert row["ours_unet_calls"] == 2, "one UNet call a step (cond and uncond batched)"
        assert row["ours_overhead_ms_per_step"] >= 0
    assert "Loop overhead alone" in capsys.readouterr().out


def test_bench_samplers_unknown_name_is_a_usage_error(demo_models: dict[str, Path], capsys) -> None:
    args = build_parser().parse_args(["bench", "--samplers", "--sampler-list", "Euler b", "--device", "cpu"])
    assert run_bench(args, demo_dir=next(iter(demo_models.values())).parent) == 2
    assert "unknown sampler(s) Euler b" in capsys.readouterr().err
