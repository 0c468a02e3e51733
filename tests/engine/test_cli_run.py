"""``stablenew-qt run``, ``models`` and ``convert`` with the real engine on the demo models.

Exit codes: 0 success, 1 run error (one readable line), 2 config error, 130 cancelled by Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from stablenew_qt.cli import main


@pytest.fixture
def demo_env(demo_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the CLI's demo-model cache at the session's prebuilt demo models."""
    demo_root = next(iter(demo_models.values())).parent
    monkeypatch.setattr("stablenew_qt.engine.demo.default_demo_root", lambda: demo_root)
    (tmp_path / "models").mkdir()
    return tmp_path / "models"


def _config(tmp_path: Path, **txt2img: object) -> Path:
    data = {
        "prompt": "a cat, watercolour",
        "seed": 11,
        "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": 2, **txt2img},
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_run_writes_images_and_exits_0(demo_env: Path, tmp_path: Path, capsys) -> None:
    out, learning_log = tmp_path / "out", tmp_path / "learning.jsonl"
    code = main(
        [
            "run",
            str(_config(tmp_path)),
            "--output",
            str(out),
            "--models-dir",
            str(demo_env),
            "--device",
            "cpu",
            "--learning-log",
            str(learning_log),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (printed,) = captured.out.split()
    with Image.open(printed) as im:
        assert im.size == (64, 64) and "Seed: 11" in im.text["parameters"]
    assert Path(printed).is_relative_to(out)
    assert "stage 1/1 txt2img" in captured.err and "done in" in captured.err
    [line] = learning_log.read_text(encoding="utf-8").splitlines()  # the learning hook's switch
    assert json.loads(line)["outputs"] == [printed]


def test_run_error_is_one_readable_line_and_exit_1(demo_env: Path, tmp_path: Path, capsys) -> None:
    cfg = _config(tmp_path, model="not-installed")
    code = main(
        ["run", str(cfg), "--output", str(tmp_path / "out"), "--models-dir", str(demo_env), "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "error: txt2img: " in err and "not-installed" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_run_config_error_exits_2_before_loading(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"txt2img": {"steps": 0}}', encoding="utf-8")
    assert main(["run", str(cfg), "--output", str(tmp_path / "out")]) == 2
    assert "txt2img.steps: must be at least 1, got 0" in capsys.readouterr().err


def test_models_lists_demo_models_with_family(demo_env: Path, capsys) -> None:
    assert main(["models", "--models-dir", str(demo_env)]) == 0
    listing = json.loads(capsys.readouterr().out)
    families = {row["name"]: row["family"] for row in listing["checkpoints"]}
    assert families["demo-tiny-sd15"] == "sd15"
    assert families["demo-tiny-sdxl-refiner"] == "sdxl-refiner"


def test_convert_makes_safetensors_weights_only(tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2, 2)}}, ckpt)
    assert main(["convert", str(ckpt)]) == 0
    out = Path(capsys.readouterr().out.strip())
    from safetensors.torch import load_file

    assert out.suffix == ".safetensors" and torch.equal(load_file(out)["w"], torch.ones(2, 2))


def test_ctrl_c_cancels_cleanly_with_exit_130(demo_models: dict[str, Path], tmp_path: Path) -> None:
    """A real process, a real SIGINT while a stage runs: exit 130, nothing written."""
    demo_root = next(iter(demo_models.values())).parent
    cfg = _config(tmp_path, steps=150, width=256, height=256)
    (tmp_path / "models").mkdir()
    code = (
        "import sys, stablenew_qt.engine.demo as d, pathlib;"
        f"d.default_demo_root = lambda: pathlib.Path({str(demo_root)!r});"
        "from stablenew_qt.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [
        str(cfg),
        "--output",
        str(tmp_path / "out"),
        "--models-dir",
        str(tmp_path / "models"),
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    line = ""
    while "stage 1/1" not in line and time.monotonic() < deadline:
        line = proc.stderr.readline()
    time.sleep(0.5)  # inside the denoising loop
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "cancelled: nothing was saved" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _tiny_lora(models: Path, name: str = "tiny_detail") -> Path:
    """A one-module kohya LoRA for SD 1.x's first cross-attention key projection."""
    from safetensors.torch import save_file

    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    tensors = {f"{key}.lora_down.weight": torch.zeros(2, 768), f"{key}.lora_up.weight": torch.zeros(320, 2)}
    path = models / "Lora" / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def test_models_lists_loras_and_embeddings_with_family_and_hash(demo_env: Path, capsys) -> None:
    lora = _tiny_lora(demo_env)
    assert main(["models", "--models-dir", str(demo_env), "--hashes"]) == 0
    listing = json.loads(capsys.readouterr().out)
    (row,) = listing["loras"]
    assert (row["name"], row["path"], row["family"]) == ("tiny_detail", str(lora), "SD1")
    assert len(row["hash"]) == 12 and listing["embeddings"] == []


def test_a_missing_lora_is_exit_2_before_any_model_loads(demo_env: Path, tmp_path: Path, capsys) -> None:
    _tiny_lora(demo_env)
    config = _config(tmp_path)
    data = json.loads(config.read_text(encoding="utf-8"))
    config.write_text(json.dumps({**data, "prompt": "a cat <lora:tiny_detial:1>"}), encoding="utf-8")
    code = main(
        [
            "run",
            str(config),
            "--output",
            str(tmp_path / "out"),
            "--models-dir",
            str(demo_env),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "prompt: LoRA 'tiny_detial' not found in" in err and "closest installed: tiny_detail" in err
    assert not (tmp_path / "out").exists()
