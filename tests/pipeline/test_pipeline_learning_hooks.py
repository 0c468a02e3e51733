"""Learning hooks: called with every finished stage and every finished run, never able to break one."""

from __future__ import annotations

import json
from pathlib import Path

from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.hooks import JsonlLearningHook, RunRecord, StageRecord
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner


class Recorder:
    def __init__(self) -> None:
        self.stages: list[StageRecord] = []
        self.runs: list[RunRecord] = []

    def on_stage_finished(self, record: StageRecord) -> None:
        self.stages.append(record)

    def on_run_finished(self, record: RunRecord) -> None:
        self.runs.append(record)


class Broken:
    def on_stage_finished(self, record: StageRecord) -> None:
        raise RuntimeError("hook bug")

    def on_run_finished(self, record: RunRecord) -> None:
        raise RuntimeError("hook bug")


def _runner(tmp_path: Path, executor: FakeExecutor, *hooks: object) -> PipelineRunner:
    return PipelineRunner(executor, OutputSettings(tmp_path / "runs"), hooks=hooks)  # type: ignore[arg-type]


def test_hooks_see_each_stage_and_the_run(make_config, tmp_path: Path) -> None:
    rec = Recorder()
    config = make_config(img2img={"enabled": True}, upscale={"enabled": True})
    result = _runner(tmp_path, FakeExecutor(), rec).run(config, CancelToken())
    assert [s.stage for s in rec.stages] == ["txt2img", "img2img", "upscale"]
    assert [s.index for s in rec.stages] == [0, 1, 2]
    assert all(s.run_id == result.run_id and s.image_count == 1 for s in rec.stages)
    (run,) = rec.runs
    assert run.status == "COMPLETED" and run.error is None
    assert run.stages == tuple(rec.stages)
    assert run.seeds == (1234,)
    assert run.outputs == tuple(str(p) for p in result.image_paths)
    assert run.config["txt2img"]["model"] == "tiny-sd.safetensors"
    assert [s["stage"] for s in run.plan["stages"]] == ["txt2img", "img2img", "upscale"]


def test_hooks_see_failed_runs_too(make_config, tmp_path: Path) -> None:
    rec = Recorder()
    executor = FakeExecutor().fail_at("img2img", "boom")
    _runner(tmp_path, executor, rec).run(make_config(img2img={"enabled": True}), CancelToken())
    assert [s.stage for s in rec.stages] == ["txt2img"]
    assert (
        rec.runs[0].status == "FAILED" and rec.runs[0].error == "img2img: boom" and rec.runs[0].outputs == ()
    )


def test_a_broken_hook_never_breaks_the_run(make_config, tmp_path: Path, caplog) -> None:
    rec = Recorder()
    result = _runner(tmp_path, FakeExecutor(), Broken(), rec).run(make_config(), CancelToken())
    assert result.status == "COMPLETED" and len(result.image_paths) == 1
    assert len(rec.runs) == 1, "hooks after a broken one still run"
    assert "learning hook" in caplog.text


def test_jsonl_hook_appends_one_record_per_run(make_config, tmp_path: Path) -> None:
    log_path = tmp_path / "learning" / "runs.jsonl"
    runner = _runner(tmp_path, FakeExecutor())
    runner.add_hook(JsonlLearningHook(log_path))
    first = runner.run(make_config(), CancelToken())
    second = runner.run(make_config(seed=99, img2img={"enabled": True}), CancelToken())
    lines = log_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["run_id"] for r in records] == [first.run_id, second.run_id]
    assert records[1]["seeds"] == [99]
    assert [s["stage"] for s in records[1]["stages"]] == ["txt2img", "img2img"]
    assert records[0]["outputs"] == [str(p) for p in first.image_paths]
