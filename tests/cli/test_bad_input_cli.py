"""Issue 18's bad inputs through the command line: each ends with exit 1 or 2 and exactly one
stderr line that names the input and says what to do, no traceback, nothing written in the
output folder or beside the inputs, within pytest-timeout (a hang fails instead of blocking).

The commands run in-process (``main([...])``, as tests/test_cli.py does): the console log handler
writes to the same stderr capsys captures. Progress lines (``stage 1/1 txt2img``) are not errors
and are left out of the count. A few cases need a real process (a closed stdout, the interpreter's
own last words) and run one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.cli import main

pytestmark = pytest.mark.timeout(60)

PROGRESS_PREFIX = "stage "


# -- helpers -----------------------------------------------------------------------------------
def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width``×``height`` with a few bytes of data (a "bomb")."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def safetensors_bytes(header: object, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def snapshot(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (-1 for folders and FIFOs)."""
    return {
        str(p.relative_to(root)): (-1 if p.is_dir() or p.is_fifo() else p.stat().st_size)
        for p in root.rglob("*")
    }


def run_main(argv: list[str]) -> int:
    """``main(argv)``'s exit code, also when argparse exits (a usage error)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip() and not line.startswith(PROGRESS_PREFIX)]


class Env:
    """A work folder (inputs), an output folder that must stay absent, a models folder."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        self.out = root / "out"
        self.models = self.work / "models"
        (self.models / "Stable-diffusion").mkdir(parents=True)

    def config(self, name: str = "run.json", **data: object) -> str:
        base: dict[str, object] = {
            "prompt": "x",
            "seed": 1,
            "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": 1},
        }
        base.update(data)
        path = self.work / name
        path.write_text(json.dumps(base), encoding="utf-8")
        return str(path)

    def img2img_config(self, image: str) -> str:
        return self.config(
            "img2img.json",
            input_image_path=image,
            txt2img={"enabled": False},
            img2img={"enabled": True, "model": "demo-tiny-sd15", "steps": 1},
        )

    def engine(self) -> list[str]:
        return ["--models-dir", str(self.models), "--device", "cpu", "--output", str(self.out)]

    def checkpoint(self, name: str, content: bytes) -> str:
        (self.models / "Stable-diffusion" / f"{name}.safetensors").write_bytes(content)
        return name

    def fifo(self) -> str:
        path = self.work / "pipe"
        os.mkfifo(path)
        return str(path)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_models: dict[str, Path]) -> Env:
    demo_root = next(iter(demo_models.values())).parent
    monkeypatch.setattr("stablenew_qt.engine.demo.default_demo_root", lambda: demo_root)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the log file, the default queue
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # "no GPU" is the case below; cpu elsewhere
    return Env(tmp_path)


# -- the cases: (argv builder, expected exit code, text the one line must contain) -----------
Case = Callable[[Env], list[str]]


def _image_case(make: Callable[[Env], str]) -> Case:
    return lambda e: ["run", e.img2img_config(make(e)), *e.engine()]


def _bomb(width: int, height: int) -> Callable[[Env], str]:
    def make(e: Env) -> str:
        path = e.work / f"bomb-{width}.png"
        path.write_bytes(png_with_header(width, height))
        return str(path)

    return make


def _one_pixel(e: Env) -> str:
    path = e.work / "one.png"
    Image.new("RGB", (1, 1)).save(path)
    return str(path)


def _model_run(content: bytes) -> Case:
    def argv(e: Env) -> list[str]:
        name = e.checkpoint("broken", content)
        return ["run", e.config(txt2img={"model": name, "width": 64, "height": 64, "steps": 1}), *e.engine()]

    return argv


def _in_channels_four(e: Env) -> list[str]:
    folder = e.models / "Stable-diffusion" / "four"
    (folder / "unet").mkdir(parents=True)
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}
    (folder / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    (folder / "unet" / "config.json").write_text('{"in_channels": "four"}', encoding="utf-8")
    return ["run", e.config(txt2img={"model": "four", "width": 64, "height": 64, "steps": 1}), *e.engine()]


def _tensor(shape: object) -> bytes:
    return safetensors_bytes({"a": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}, bytes(4))


DEEP = safetensors_bytes(b"[" * 200_000 + b"]" * 200_000)
BIG = "99999999999999999999"


def _queue(e: Env, *args: str) -> list[str]:
    return ["queue", *args, "--queue", str(e.work / "q.sqlite3")]


CASES: dict[str, tuple[Case, int, str]] = {
    "input_image_path of 5000 characters": (
        lambda e: ["plan", e.img2img_config("a" * 5000 + ".png")],
        2,
        "longer than 4096 characters",
    ),
    "input_image_path ~nosuchuser/x.png": (
        lambda e: ["run", e.img2img_config("~nosuchuser-stablenew/x.png"), *e.engine()],
        2,
        "there is no user 'nosuchuser-stablenew'",
    ),
    "PNG header 30000x30000 (plan)": (
        lambda e: ["plan", e.img2img_config(_bomb(30000, 30000)(e))],
        2,
        "at most 8192×8192",
    ),
    "PNG header 30000x30000 (run)": (_image_case(_bomb(30000, 30000)), 2, "at most 8192×8192"),
    "PNG header 2^31 wide": (_image_case(_bomb(2**31 - 1, 1)), 2, "at most 8192×8192"),
    "1x1 img2img input": (_image_case(_one_pixel), 2, "img2img needs at least 64 pixels"),
    'run: safetensors shape ["x"]': (_model_run(_tensor(["x"])), 1, "not a valid model file"),
    "run: safetensors shape [null]": (_model_run(_tensor([None])), 1, "not a valid model file"),
    'run: unet config "in_channels": "four"': (_in_channels_four, 1, "in_channels is 'four'"),
    "run: header nested 200k deep": (_model_run(DEEP), 1, "nested too deeply"),
    "FIFO as the config (plan)": (lambda e: ["plan", e.fifo()], 2, "FIFO (named pipe)"),
    "FIFO as the config (run)": (lambda e: ["run", e.fifo(), *e.engine()], 2, "FIFO (named pipe)"),
    "FIFO as --trust-model": (
        lambda e: ["run", e.config(), "--trust-model", e.fifo(), *e.engine()],
        2,
        "--trust-model: ",
    ),
    "FIFO to info": (lambda e: ["info", e.fifo()], 2, "FIFO (named pipe)"),
    "FIFO as --queue (list)": (lambda e: ["queue", "list", "--queue", e.fifo()], 1, "FIFO (named pipe)"),
    "FIFO as --queue (add)": (
        lambda e: ["queue", "add", e.config(), "--queue", e.fifo()],
        1,
        "FIFO (named pipe)",
    ),
    "FIFO as --queue (run)": (
        lambda e: ["queue", "run", "--queue", e.fifo(), *e.engine()],
        1,
        "FIFO (named pipe)",
    ),
    "/dev/zero as the config": (
        lambda e: ["run", "/dev/zero", *e.engine()],
        2,
        "'/dev/zero': it is a device",
    ),
    "/dev/zero as --trust-model": (
        lambda e: ["run", e.config(), "--trust-model", "/dev/zero", *e.engine()],
        2,
        "'/dev/zero': it is a device",
    ),
    "queue add --count 20 digits": (
        lambda e: _queue(e, "add", e.config(), "--count", BIG),
        2,
        "--count: the count must be a whole number from 1 to 10,000",
    ),
    "queue add --priority 20 digits": (
        lambda e: _queue(e, "add", e.config(), "--priority", BIG),
        2,
        "--priority: the priority must be a whole number",
    ),
    "queue cancel 20-digit id": (lambda e: _queue(e, "cancel", BIG), 2, "a job id must be a whole number"),
    "queue move 20-digit id": (lambda e: _queue(e, "move", BIG, "up"), 2, "a job id must be a whole number"),
    "convert --output no/dir/x.safetensors": (
        lambda e: ["convert", str(e.work / "x.ckpt"), "--output", str(e.work / "no/dir/x.safetensors")],
        1,
        "does not exist; create it or choose another output file",
    ),
    "UTF-16 config with a BOM": (
        lambda e: ["plan", str(_utf16(e))],
        2,
        "the file is UTF-16 or UTF-32 text; save it as UTF-8",
    ),
    "200 KB model name": (
        lambda e: ["run", e.config(txt2img={"model": "m" * 200_000, "steps": 1}), *e.engine()],
        1,
        "(200000 characters)",
    ),
}


def _utf16(e: Env) -> Path:
    path = e.work / "utf16.json"
    path.write_text('{"prompt": "x"}', encoding="utf-16")
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(name: str, env: Env, capsys) -> None:
    build, code, text = CASES[name]
    (env.work / "x.ckpt").write_bytes(b"junk")
    argv = build(env)
    before = snapshot(env.work)
    assert run_main(argv) == code
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 1, captured.err[:2000]
    assert text in lines[0], lines[0]
    assert len(lines[0]) < 800, "a huge input is shortened, not repeated"
    assert "Traceback" not in captured.err and captured.out == ""
    assert not env.out.exists()
    assert snapshot(env.work) == before


@pytest.mark.parametrize(
    "content",
    [_tensor(["x"]), _tensor([None]), DEEP],
    ids=['shape ["x"]', "shape [null]", "nested 200k deep"],
)
def test_models_lists_a_malformed_checkpoint_with_its_reason(content: bytes, env: Env, capsys) -> None:
    env.checkpoint("broken", content)
    assert main(["models", "--models-dir", str(env.models)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    [row] = [r for r in json.loads(captured.out)["checkpoints"] if r["name"] == "broken"]
    assert "not a valid model file" in row["family"] or "unreadable" in row["family"], row


def test_models_lists_in_channels_four_with_its_reason(env: Env, capsys) -> None:
    _in_channels_four(env)
    assert main(["models", "--models-dir", str(env.models)]) == 0
    captured = capsys.readouterr()
    [row] = [r for r in json.loads(captured.out)["checkpoints"] if r["name"] == "four"]
    assert "in_channels" in str(row["family"]) and captured.err == ""


def test_device_cuda_without_a_gpu(env: Env, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU; the case is a machine without one")
    assert main(["run", env.config(), *env.engine()[:-4], "--device", "cuda", "--output", str(env.out)]) == 1
    captured = capsys.readouterr()
    [line] = error_lines(captured.err)
    assert "no CUDA GPU found; use --device cpu (slow) or auto" in line and "Traceback" not in captured.err
    assert not env.out.exists()


def test_queue_list_of_a_new_path_creates_nothing(env: Env, capsys) -> None:
    target = env.work / "new" / "dir" / "q.sqlite3"
    assert main(["queue", "list", "--queue", str(target)]) == 0
    assert "queue empty" in capsys.readouterr().err
    assert not (env.work / "new").exists()


def test_a_damaged_queue_file_gets_one_backup_however_often_it_is_opened(env: Env, capsys) -> None:
    broken = env.work / "q.sqlite3"
    broken.write_bytes(b"garbage" * 40)
    for argv in (["list"], ["list", "--json"], ["clear"], ["add", env.config()], ["pause"]):
        assert main(["queue", *argv, "--queue", str(broken)]) == 1
        [line] = error_lines(capsys.readouterr().err)
        assert line.startswith("error: cannot use the queue file") and "backup" in line
    backups = sorted(env.work.glob("q.sqlite3.backup-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == b"garbage" * 40
    broken.write_bytes(b"other garbage" * 40)  # new damage: a new copy
    assert main(["queue", "list", "--queue", str(broken)]) == 1
    assert len(list(env.work.glob("q.sqlite3.backup-*"))) == 2


def test_a_healthy_queue_is_not_backed_up(env: Env, capsys) -> None:
    queue = env.work / "q.sqlite3"
    assert main(["queue", "add", env.config(), "--queue", str(queue)]) == 0
    with sqlite3.connect(queue) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
    conn.close()
    assert not list(env.work.glob("*.backup-*"))


def test_unwritable_data_folder_falls_back_and_the_run_works(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """XDG_DATA_HOME under a file cannot be created (as root too): one warning, the run completes."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker / "data"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    import logging

    diffusers_logger = logging.getLogger("diffusers")
    monkeypatch.setattr(diffusers_logger, "propagate", False)  # as diffusers leaves it on import
    assert main(["run", env.config(), *env.engine()]) == 0
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    warnings_ = [line for line in lines if line.startswith("warning:")]
    assert len(warnings_) == 1 and "cannot write the log file" in warnings_[0], captured.err
    assert "logging to" in warnings_[0] and str(tmp_path / "tmp") in warnings_[0]
    assert [line for line in lines if not line.startswith(("warning:", "done in"))] == []
    assert len(captured.out.split()) == 1 and Path(captured.out.strip()).is_file()
    assert diffusers_logger.propagate, "the engine routed diffusers' records through the root logger"


def test_unexpected_errors_are_one_line_with_the_traceback_in_the_log(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def boom(_args: object) -> int:
        raise KeyError("a bug\nsecond line")

    monkeypatch.setattr("stablenew_qt.cli.plan.cmd_plan", boom)  # bound when main builds the parser
    assert main(["plan", env.config()]) == 1
    err = capsys.readouterr().err
    [line] = error_lines(err)
    assert line.startswith("error: unexpected KeyError: ") and "(details in " in line
    log = Path(line.rsplit("(details in ", 1)[1].rstrip(")"))
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "KeyError" in text
    assert "Traceback" not in err


def test_library_warnings_go_to_the_log_not_the_terminal(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import logging

    from stablenew_qt.engine.library_logs import route_library_logs

    route_library_logs()  # what the engine does when it starts (diffusers imported, handler removed)

    def noisy(_args: object) -> int:
        warnings.warn(
            "torch.meshgrid: in an upcoming release, it will be required", UserWarning, stacklevel=1
        )
        logging.getLogger("diffusers.pipelines").warning("a third-party warning")
        logging.getLogger("stablenew_qt.engine.x").warning("our own warning, line 1\nline 2")
        return 0

    monkeypatch.setattr("stablenew_qt.cli.plan.cmd_plan", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        assert main(["plan", env.config()]) == 0
    err = capsys.readouterr().err
    assert err == "warning: our own warning, line 1\n"
    log = Path(os.environ["XDG_DATA_HOME"]) / "StableNewQt" / "logs" / "stablenew-qt.log"
    text = log.read_text(encoding="utf-8")
    assert "torch.meshgrid" in text and "a third-party warning" in text


def test_the_libraries_loading_bars_show_only_with_verbose() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from stablenew_qt.cli.engine_options import engine_settings
    from stablenew_qt.cli.main import build_parser
    from stablenew_qt.engine.library_logs import route_library_logs

    libraries = (diffusers_logging, transformers_logging)
    try:
        for verbose in (False, True):
            args = build_parser().parse_args(["run", "c.json", *(["-v"] if verbose else [])])
            settings = engine_settings(args)
            assert settings.library_progress_bars is verbose
            route_library_logs(settings.library_progress_bars)  # what the engine does at its start
            assert [lib.is_progress_bar_enabled() for lib in libraries] == [verbose, verbose]
    finally:
        route_library_logs()


def test_a_closed_stdout_ends_quietly(env: Env) -> None:
    """``stablenew-qt plan c.json | head -c 0``: no BrokenPipeError, no "Exception ignored"."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    result = subprocess.run(
        [sys.executable, "-m", "stablenew_qt", "plan", env.config()],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    os.close(write_end)
    assert result.returncode == 1 and result.stderr == ""


def test_in_a_real_process_a_run_error_is_one_line(env: Env) -> None:
    name = env.checkpoint("broken", _tensor(["x"]))
    argv = ["run", env.config(txt2img={"model": name, "steps": 1}), *env.engine()]
    result = subprocess.run(
        [sys.executable, "-m", "stablenew_qt", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "XDG_CACHE_HOME": str(env.work / "c")},
        check=False,
    )
    assert result.returncode == 1, result.stderr
    [line] = error_lines(result.stderr)
    assert "not a valid model file" in line and "Traceback" not in result.stderr
    assert not env.out.exists()
