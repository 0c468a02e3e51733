"""The headless CLI: plan and info, with clear errors and exit code 2 for config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from stablenew_qt.cli import main
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_plan_prints_the_plan(tmp_path: Path, capsys) -> None:
    cfg = _write(tmp_path / "c.json", {"txt2img": {"hires_enabled": True}, "upscale": {"enabled": True}})
    assert main(["plan", str(cfg)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [s["stage"] for s in plan["stages"]] == ["txt2img", "upscale"]
    assert plan["stages"][0]["hires"] is True


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"txt2img": {"stpes": 3}}', "txt2img.stpes: unknown key 'stpes'; did you mean 'steps'?"),
        ('{"txt2img": {"enabled": false}}', "no stage is enabled"),
        ('{"seed": "abc"}', "seed: must be a whole number, got 'abc'"),
        ("{not json", "not valid JSON at line 1, column 2"),
    ],
)
def test_plan_config_errors_exit_2_without_traceback(
    tmp_path: Path, capsys, content: str, message: str
) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(content, encoding="utf-8")
    assert main(["plan", str(cfg)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("Config Error: ") and message in captured.err
    assert "Traceback" not in captured.err


def test_plan_missing_file(tmp_path: Path, capsys) -> None:
    assert main(["plan", str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info_reads_our_own_image(make_config, tmp_path: Path, capsys) -> None:
    config = make_config(prompt="red fox, snow: 35mm", txt2img={"hires_enabled": True})
    result = PipelineRunner(FakeExecutor(), OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert main(["info", str(result.image_paths[0])]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parsed"]["prompt"] == "red fox, snow: 35mm"
    assert out["parsed"]["params"]["Seed"] == "1234"
    assert out["run_config"]["txt2img"]["hires_enabled"] is True
    assert out["config_from_parameters"]["txt2img"]["hires_enabled"] is True


def test_info_reads_an_a1111_image(tmp_path: Path, capsys) -> None:
    text = (
        "portrait of a knight\nNegative prompt: lowres\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, "
        "Seed: 42, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.6.0"
    )
    info = PngInfo()
    info.add_text("parameters", text)
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    assert main(["info", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_config"] is None
    cfg = out["config_from_parameters"]
    assert (cfg["seed"], cfg["txt2img"]["sampler"], cfg["txt2img"]["scheduler"]) == (42, "DPM++ 2M", "Karras")
    assert (cfg["txt2img"]["width"], cfg["txt2img"]["height"]) == (512, 768)


def test_info_on_an_image_without_parameters(tmp_path: Path, capsys) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == "plain.png: no generation settings in this image\n", "one line, in words"


def test_module_entry_point_help_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stablenew_qt", "plan", "--help"], capture_output=True, text=True, check=True
    )
    assert "CONFIG.json" in out.stdout


def test_no_command_starts_the_desktop_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("stablenew_qt.app.main", lambda argv: calls.append(list(argv)) or 0)
    assert main([]) == 0 and calls == [[]]
