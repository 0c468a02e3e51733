"""Tests for core.hooks: learning hook records and the JSON Lines learning log."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import platformdirs
import pytest

from stablenew_qt.core.hooks import (
    JsonlLearningHook,
    LearningHook,
    RunRecord,
    StageRecord,
    default_learning_log_path,
)

NOW = datetime(2024, 5, 6, 17, 31, 0, tzinfo=UTC)


def _stage(run_id: str = "173015-abc123", index: int = 0, **params: Any) -> StageRecord:
    return StageRecord(run_id=run_id, stage="txt2img", index=index, seconds=2.5, image_count=1, params=params)


def _run(run_id: str = "173015-abc123", **overrides: Any) -> RunRecord:
    values: dict[str, Any] = {
        "run_id": run_id,
        "status": "COMPLETED",
        "config": {"prompt": "a cat", "seed": 42},
        "seeds": (42,),
        "plan": {"stages": [{"stage": "txt2img", "index": 0}]},
        "stages": (_stage(run_id, **{"Hires upscale": 2.0}),),
        "outputs": ("00000-42.png", "manifest.json"),
        "seconds": 3.25,
        "error": None,
    }
    return RunRecord(**{**values, **overrides})


def _lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text("utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_default_learning_log_path() -> None:
    expected = platformdirs.user_data_path("StableNewQt", appauthor=False) / "learning" / "runs.jsonl"
    assert default_learning_log_path() == expected


def test_records_are_frozen() -> None:
    record = _run()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "FAILED"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.stages[0].seconds = 1.0  # type: ignore[misc]


def test_jsonl_hook_satisfies_protocol(tmp_path: Path) -> None:
    assert isinstance(JsonlLearningHook(tmp_path / "log.jsonl"), LearningHook)


def test_one_line_per_run_with_nested_stages(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "runs.jsonl"
    hook = JsonlLearningHook(path, clock=lambda: NOW)
    hook.on_stage_finished(_stage())
    assert not path.exists()  # stage records are not logged on their own
    hook.on_run_finished(_run())
    [line] = _lines(path)
    assert line == {
        "timestamp": "2024-05-06T17:31:00+00:00",
        "run_id": "173015-abc123",
        "status": "COMPLETED",
        "config": {"prompt": "a cat", "seed": 42},
        "seeds": [42],
        "plan": {"stages": [{"stage": "txt2img", "index": 0}]},
        "stages": [
            {
                "run_id": "173015-abc123",
                "stage": "txt2img",
                "index": 0,
                "seconds": 2.5,
                "image_count": 1,
                "params": {"Hires upscale": 2.0},
            }
        ],
        "outputs": ["00000-42.png", "manifest.json"],
        "seconds": 3.25,
        "error": None,
    }


def test_default_timestamp_is_timezone_aware(tmp_path: Path) -> None:
    hook = JsonlLearningHook(tmp_path / "runs.jsonl")
    hook.on_run_finished(_run())
    [line] = _lines(tmp_path / "runs.jsonl")
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() is not None


def test_appends_across_runs_and_instances(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    JsonlLearningHook(path).on_run_finished(_run("000001-aaaaaa"))
    second = JsonlLearningHook(path)
    second.on_run_finished(_run("000002-bbbbbb", status="FAILED", error="img2img: out of memory"))
    second.on_run_finished(_run("000003-cccccc", status="CANCELLED", stages=(), outputs=()))
    lines = _lines(path)
    assert [(line["run_id"], line["status"]) for line in lines] == [
        ("000001-aaaaaa", "COMPLETED"),
        ("000002-bbbbbb", "FAILED"),
        ("000003-cccccc", "CANCELLED"),
    ]
    assert lines[1]["error"] == "img2img: out of memory"
    assert lines[2]["stages"] == []


def test_unicode_is_written_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    prompt = "ein Schloß im Nebel, 城, 🐈"
    JsonlLearningHook(path).on_run_finished(_run(config={"prompt": prompt}))
    raw = path.read_bytes().decode("utf-8")
    assert prompt in raw
    assert raw.count("\n") == 1
    assert _lines(path)[0]["config"]["prompt"] == prompt


def test_read_only_mappings_and_paths_are_written(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    nested = MappingProxyType({"inner": MappingProxyType({"a": 1}), "file": Path("x.png")})
    record = _run(config=MappingProxyType({"prompt": "p"}), stages=(_stage(extra=nested),))
    JsonlLearningHook(path).on_run_finished(record)
    [line] = _lines(path)
    assert line["config"] == {"prompt": "p"}
    assert line["stages"][0]["params"] == {"extra": {"inner": {"a": 1}, "file": "x.png"}}


def test_non_json_numbers_raise_and_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    hook = JsonlLearningHook(path)
    hook.on_run_finished(_run())
    with pytest.raises(ValueError, match="JSON compliant"):
        hook.on_run_finished(_run(seconds=float("nan")))
    assert len(_lines(path)) == 1


def test_concurrent_runs_write_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    hooks = [JsonlLearningHook(path), JsonlLearningHook(path)]
    threads, per_thread = 8, 10
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    long_prompt = "x" * 20_000  # lines larger than any stdio buffer

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                hooks[n % 2].on_run_finished(_run(f"{n:06d}-{i:06x}", config={"prompt": long_prompt}))
        except BaseException as exc:  # collected so the main thread can fail the test
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    lines = _lines(path)
    assert len(lines) == threads * per_thread
    assert {line["run_id"] for line in lines} == {
        f"{n:06d}-{i:06x}" for n in range(threads) for i in range(per_thread)
    }
