"""``stablenew-qt queue ...``: every action through ``cli.main``, and ``queue run`` on the demo
models with the real engine (a job whose model is missing fails; the queue goes on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.cli import main
from stablenew_qt.core.queue import JobQueue, JobStatus

S = JobStatus


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.json"
    data = {
        "prompt": "a lighthouse, watercolour",
        "seed": 40,
        "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": 2},
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _q(queue_path: Path, *args: str) -> list[str]:
    return ["queue", *args, "--queue", str(queue_path)]


def _ids(out: str) -> list[int]:
    return [int(line) for line in out.split()]


def test_add_prints_ids_and_list_shows_the_queue(queue_path: Path, config_file: Path, capsys) -> None:
    assert main(_q(queue_path, "add", str(config_file), "--count", "3")) == 0
    first, second, third = _ids(capsys.readouterr().out)
    assert main(_q(queue_path, "add", str(config_file), "--front")) == 0
    (front,) = _ids(capsys.readouterr().out)
    assert main(_q(queue_path, "list")) == 0
    captured = capsys.readouterr()
    rows = captured.out.splitlines()[1:]
    assert [int(row.split()[0]) for row in rows] == [front, first, second, third]
    assert "queued" in rows[0] and "demo-tiny-sd15" in rows[0] and "a lighthouse" in rows[0]
    assert "queue 4 queued" in captured.err
    assert main(_q(queue_path, "list", "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["paused"] is False and data["counts"]["queued"] == 4
    assert [job["config"]["seed"] for job in data["jobs"]] == [40, 40, 41, 42]


def test_move_cancel_retry_remove_clear_pause_resume(queue_path: Path, config_file: Path, capsys) -> None:
    main(_q(queue_path, "add", str(config_file), "--count", "3"))
    a, b, c = _ids(capsys.readouterr().out)
    assert main(_q(queue_path, "move", str(c), "top")) == 0
    assert main(_q(queue_path, "cancel", str(a))) == 0
    assert "is cancelled" in capsys.readouterr().err
    assert main(_q(queue_path, "remove", str(b))) == 0
    assert main(_q(queue_path, "retry", str(a))) == 0
    assert main(_q(queue_path, "pause")) == 0
    with JobQueue(queue_path) as queue:
        assert [job.id for job in queue.list()] == [c, a] and queue.paused
        queue.next_job()
        queue.mark_completed(c, "120000-abcdef", [])
    assert main(_q(queue_path, "resume")) == 0
    assert main(_q(queue_path, "clear")) == 0
    assert "removed 1 finished job(s)" in capsys.readouterr().err
    assert main(_q(queue_path, "list", "--json", "--status", "queued")) == 0
    data = json.loads(capsys.readouterr().out)
    assert [job["id"] for job in data["jobs"]] == [a] and not data["paused"]


def test_errors_are_one_line_with_exit_codes(queue_path: Path, tmp_path: Path, capsys) -> None:
    assert main(_q(queue_path, "retry", "9")) == 1  # no queue file yet: none is created
    assert "error: there is no queue file" in capsys.readouterr().err and not queue_path.exists()
    assert main(_q(queue_path, "pause")) == 0 and main(_q(queue_path, "resume")) == 0  # creates it
    capsys.readouterr()
    assert main(_q(queue_path, "retry", "9")) == 1
    assert capsys.readouterr().err == "error: there is no job 9 in the queue\n"
    bad = tmp_path / "bad.json"
    bad.write_text('{"txt2img": {"steps": 0}}', encoding="utf-8")
    assert main(_q(queue_path, "add", str(bad))) == 2
    assert "txt2img.steps: must be at least 1, got 0" in capsys.readouterr().err
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"garbage" * 40)
    assert main(["queue", "list", "--queue", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use the queue file") and "backup" in err
    assert broken.read_bytes() == b"garbage" * 40


def test_parsing_the_queue_commands_loads_no_heavy_library() -> None:
    code = (
        "import json, sys\nfrom stablenew_qt.cli import build_parser\n"
        "build_parser().parse_args(['queue', 'list'])\nprint(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = {"torch", "diffusers", "transformers", "PySide6", "ultralytics"}
    assert not {m for m in json.loads(out.stdout) if m.split(".")[0] in heavy}


def test_queue_run_goes_on_after_a_missing_model(
    demo_models: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    queue_path: Path,
    config_file: Path,
    tmp_path: Path,
    capsys,
) -> None:
    demo_root = next(iter(demo_models.values())).parent
    monkeypatch.setattr("stablenew_qt.engine.demo.default_demo_root", lambda: demo_root)
    (tmp_path / "models").mkdir()
    missing = json.loads(config_file.read_text(encoding="utf-8"))
    missing["txt2img"]["model"] = "deleted-model"
    missing_file = tmp_path / "missing.json"
    missing_file.write_text(json.dumps(missing), encoding="utf-8")
    main(_q(queue_path, "add", str(missing_file)))
    main(_q(queue_path, "add", str(config_file)))
    failed, done = _ids(capsys.readouterr().out)
    out_dir = tmp_path / "out"
    engine = ["--output", str(out_dir), "--models-dir", str(tmp_path / "models"), "--device", "cpu"]
    assert main(_q(queue_path, "run", *engine)) == 1
    captured = capsys.readouterr()
    assert f"job {failed}: failed: txt2img: " in captured.err and "deleted-model" in captured.err
    assert f"job {done}: completed" in captured.err and "Traceback" not in captured.err
    (printed,) = captured.out.split()
    with Image.open(printed) as image:
        assert "Seed: 40" in image.text["parameters"]
    with JobQueue(queue_path) as queue:
        assert [(j.id, j.status) for j in queue.list()] == [(failed, S.FAILED), (done, S.COMPLETED)]
        assert queue.get(done).outputs == (Path(printed),)
