"""PipelineRunner: stage order, data hand-off, seeds, events, outputs, cancel and errors in every stage."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.errors import ConfigError, StageError
from stablenew_qt.core.executor import CancelToken, StageInfo, StageResult
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.core.sequencer import StageName

FULL = {
    "txt2img": {"enabled": True, "hires_enabled": True, "hires_upscale_factor": 1.5},
    "img2img": {"enabled": True},
    "upscale": {"enabled": True, "upscale_factor": 2.0},
    "adetailer": {"enabled": True},
}
STAGES = [s.value for s in StageName]


def _run(
    config, tmp_path: Path, executor: FakeExecutor | None = None, token: CancelToken | None = None, **kw
):
    executor = executor or FakeExecutor()
    events: list[object] = []
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs", **kw))
    result = runner.run(config, token or CancelToken(), emit=events.append)
    return result, executor, events


class _KeepsOutputs(FakeExecutor):
    """Remembers what each stage returned, to compare with what the next stage received."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[tuple[Image.Image, ...]] = []

    def generate_images(self, stage, payload, progress, cancel_token):  # type: ignore[override]
        result = super().generate_images(stage, payload, progress, cancel_token)
        self.outputs.append(result.images)
        return result


def test_full_chain_hands_each_stage_the_previous_images(make_config, tmp_path: Path) -> None:
    config = make_config(batch_size=2, **FULL)
    executor = _KeepsOutputs()
    result, _, _ = _run(config, tmp_path, executor)
    assert result.status == "COMPLETED", result.error
    assert executor.stages_called == list(StageName)
    sizes = [call.input_sizes for call in executor.calls]
    # txt2img gets nothing; hires makes 96x96; img2img keeps it; upscale doubles; ADetailer keeps it.
    assert sizes == [(), ((96, 96),) * 2, ((96, 96),) * 2, ((192, 192),) * 2]
    assert [im.size for im in result.images] == [(192, 192)] * 2
    # Each stage receives exactly the pixels the previous stage returned, image by image.
    for produced, call in zip(executor.outputs, executor.calls[1:], strict=False):
        assert [im.tobytes() for im in call.payload.images] == [im.tobytes() for im in produced]
    assert [im.tobytes() for im in result.images] == [im.tobytes() for im in executor.outputs[-1]]
    # ... and every stage changed them (so the comparison above could fail).
    assert len({im.tobytes() for im in (out[0] for out in executor.outputs)}) == 4


def test_seeds_are_resolved_once_and_recorded_everywhere(make_config, tmp_path: Path) -> None:
    config = make_config(seed=-1, batch_size=3)
    result, executor, events = _run(config, tmp_path)
    base = result.config.seed
    assert base >= 0
    assert result.seeds == (base, base + 1, base + 2)
    assert executor.calls[0].payload.seeds == result.seeds
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert started.seeds == result.seeds
    names = sorted(p.name for p in result.image_paths)
    assert names == [f"{i:05d}-{s}.png" for i, s in enumerate(result.seeds)]
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["seeds"] == list(result.seeds)
    assert manifest["config"]["seed"] == base
    meta = read_image_metadata(result.image_paths[1])
    assert meta.run_config is not None and meta.run_config.seed == base + 1
    assert meta.run_config.batch_size == 1
    assert f"Seed: {base + 1}," in (meta.parameters or "")


def test_each_image_records_its_own_variation_seed(make_config, tmp_path: Path) -> None:
    # A1111's all_subseeds: image i's variation seed is subseed + i; a random one is drawn once.
    result, _, events = _run(make_config(seed=5, batch_size=2, subseed=-1, subseed_strength=0.5), tmp_path)
    base = result.config.subseed
    assert base >= 0
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert started.subseeds == (base, base + 1)
    # ... while every image keeps the seed (A1111: seed + i only when the strength is 0).
    assert started.seeds == (5, 5)
    for i, path in enumerate(result.image_paths):
        meta = read_image_metadata(path)
        assert f"Variation seed: {base + i}, Variation seed strength: 0.5," in (meta.parameters or "")
        assert meta.run_config is not None and meta.run_config.subseed == base + i


def test_no_variation_seeds_when_variation_is_off(make_config, tmp_path: Path) -> None:
    _, _, events = _run(make_config(seed=5, subseed=7, subseed_strength=0.0), tmp_path)
    assert next(e for e in events if isinstance(e, ev.RunStarted)).subseeds == ()


def test_seed_wraps_at_2_32(make_config, tmp_path: Path) -> None:
    result, _, _ = _run(make_config(seed=2**32 - 1, batch_size=2), tmp_path)
    assert result.seeds == (2**32 - 1, 0)


def test_img2img_overrides_prompt_and_seed(make_config, input_image: Path, tmp_path: Path) -> None:
    config = make_config(
        input_image_path=str(input_image),
        batch_size=2,
        txt2img={"enabled": False},
        img2img={"enabled": True, "prompt": "watercolour", "negative_prompt": "", "seed": 77},
    )
    result, executor, _ = _run(config, tmp_path)
    payload = executor.calls[0].payload
    assert (payload.prompt, payload.negative_prompt, payload.seeds) == ("watercolour", "", (77, 78))
    assert executor.calls[0].input_sizes == ((80, 64), (80, 64))
    meta = read_image_metadata(result.image_paths[1])
    assert meta.run_config is not None and meta.run_config.img2img.seed == 78
    assert "Seed: 78," in (meta.parameters or ""), "infotext Seed is the seed img2img sampled with"


def test_events_come_in_order_with_monotonic_progress(make_config, tmp_path: Path) -> None:
    result, _, events = _run(make_config(**FULL), tmp_path)
    kinds = [type(e).__name__ for e in events if not isinstance(e, ev.StepProgress)]
    assert kinds == ["RunStarted"] + ["StageStarted", "StageFinished"] * 4 + ["RunCompleted"]
    fractions = [e.fraction for e in events if isinstance(e, ev.StepProgress)]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    t2i_steps = [e.step for e in events if isinstance(e, ev.StepProgress) and e.stage is StageName.TXT2IMG]
    assert t2i_steps == list(range(1, 3 + 3 + 1))  # 3 first-pass + 3 hires steps
    done = events[-1]
    assert isinstance(done, ev.RunCompleted) and done.image_paths == result.image_paths
    finished = [e for e in events if isinstance(e, ev.StageFinished)]
    assert all(e.seconds >= 0 for e in finished)


def test_outputs_layout_and_manifest(make_config, tmp_path: Path) -> None:
    result, _, _ = _run(make_config(**FULL), tmp_path)
    run_dir = result.manifest_path.parent
    assert run_dir.parent.parent == tmp_path / "runs"
    assert run_dir.name == result.run_id
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["status"] == "COMPLETED"
    assert [s["stage"] for s in manifest["stages"]] == STAGES
    assert manifest["stages"][0]["model_name"] == "tiny-sd"
    assert len(manifest["stages"][0]["model_hash"]) == 10
    assert [s["stage"] for s in manifest["plan"]["stages"]] == STAGES
    assert manifest["images"] == [p.name for p in result.image_paths]
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*manifest["images"], "manifest.json"])


def test_infotext_written_into_each_png(make_config, tmp_path: Path) -> None:
    config = make_config(txt2img={"hires_enabled": True, "hires_steps": 2})
    result, _, _ = _run(config, tmp_path)
    with Image.open(result.image_paths[0]) as im:
        text = im.text["parameters"]
    assert text.startswith(
        "a lighthouse at dusk, oil painting\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M"
    )
    assert "Size: 64x64" in text and "Hires upscale: 2" in text and "Hires steps: 2" in text
    assert read_image_metadata(result.image_paths[0]).run_config == config.model_copy(
        update={"batch_size": 1}
    )


def test_intermediates_saved_only_when_asked(make_config, tmp_path: Path) -> None:
    result, _, _ = _run(make_config(**FULL), tmp_path, save_intermediates=True)
    inter = sorted(p.name for p in (result.manifest_path.parent / "intermediates").iterdir())
    assert inter == ["00000-1234-txt2img.png", "00001-1234-img2img.png", "00002-1234-upscale.png"]


@pytest.mark.parametrize("stage", STAGES)
def test_cancel_inside_each_stage(stage: str, make_config, tmp_path: Path) -> None:
    executor = FakeExecutor().block_at(stage, step=1)
    token = CancelToken()
    config = make_config(**FULL)
    box: dict[str, object] = {}
    worker = threading.Thread(target=lambda: box.update(r=_run(config, tmp_path, executor, token)))
    worker.start()
    assert executor.blocked.wait(10)
    token.cancel()
    worker.join(10)
    result, _, events = box["r"]  # type: ignore[misc]
    assert result.status == "CANCELLED"
    assert result.failed_stage == StageName(stage)
    assert executor.stages_called[-1] == StageName(stage)
    assert isinstance(events[-1], ev.RunCancelled) and events[-1].stage == StageName(stage)
    assert result.image_paths == () and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("stage", STAGES)
def test_cancel_between_stages_stops_before_the_next(stage: str, make_config, tmp_path: Path) -> None:
    token = CancelToken()
    executor = FakeExecutor()
    config = make_config(**FULL)

    def cancel_when_finished(event: object) -> None:
        if isinstance(event, ev.StageFinished) and event.stage.value == stage:
            token.cancel()

    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    result = runner.run(config, token, emit=cancel_when_finished)
    if stage == "adetailer":  # the last stage finished: nothing left to cancel, the run completes
        assert result.status == "COMPLETED"
        return
    assert result.status == "CANCELLED"
    assert executor.stages_called == list(StageName)[: STAGES.index(stage) + 1]


def test_cancel_before_start_runs_nothing(make_config, tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel()
    result, executor, _ = _run(make_config(), tmp_path, token=token)
    assert result.status == "CANCELLED" and executor.calls == []


@pytest.mark.parametrize("stage", STAGES)
def test_error_in_each_stage_ends_in_error_and_writes_nothing(
    stage: str, make_config, tmp_path: Path
) -> None:
    executor = FakeExecutor().fail_at(stage, "model file vanished", step=1)
    result, _, events = _run(make_config(**FULL), tmp_path, executor)
    assert result.status == "FAILED"
    assert result.error == f"{stage}: model file vanished"
    assert result.failed_stage == StageName(stage)
    assert executor.stages_called == list(StageName)[: STAGES.index(stage) + 1]
    assert isinstance(events[-1], ev.RunFailed) and events[-1].message == result.error
    assert not (tmp_path / "runs").exists()


def test_out_of_memory_message_says_what_to_lower(make_config, tmp_path: Path) -> None:
    result, _, _ = _run(make_config(**FULL), tmp_path, FakeExecutor().oom_at("upscale"))
    assert result.status == "FAILED"
    assert result.error is not None and "out of memory" in result.error and "lower" in result.error


def test_unexpected_exception_is_contained(make_config, tmp_path: Path, caplog) -> None:
    executor = FakeExecutor().raise_at("img2img", ZeroDivisionError("division by zero"))
    result, _, _ = _run(make_config(**FULL), tmp_path, executor)
    assert result.status == "FAILED"
    assert (
        result.error
        == "unexpected error in img2img: ZeroDivisionError: division by zero (details in the log)"
    )
    assert "Traceback" in caplog.text


def test_error_after_intermediates_keeps_them_with_a_manifest(make_config, tmp_path: Path) -> None:
    executor = FakeExecutor().fail_at("upscale", "no such upscaler 'R-ESRGAN 4x+'")
    result, _, _ = _run(make_config(**FULL), tmp_path, executor, save_intermediates=True)
    assert result.status == "FAILED" and result.manifest_path is not None
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["status"] == "FAILED" and manifest["error"] == "upscale: no such upscaler 'R-ESRGAN 4x+'"
    assert manifest["images"] == [
        "intermediates/00000-1234-txt2img.png",
        "intermediates/00001-1234-img2img.png",
    ]


class _WrongCount(FakeExecutor):
    def generate_images(self, stage, payload, progress, cancel_token):  # type: ignore[override]
        result = super().generate_images(stage, payload, progress, cancel_token)
        return StageResult(result.images[:1], StageInfo())


def test_executor_returning_wrong_image_count_is_an_error(make_config, tmp_path: Path) -> None:
    result, _, _ = _run(make_config(batch_size=2), tmp_path, _WrongCount())
    assert result.status == "FAILED" and result.error == "txt2img: returned 1 image(s), expected 2"


def test_config_error_raises_before_anything_runs(make_config, tmp_path: Path) -> None:
    executor = FakeExecutor()
    events: list[object] = []
    runner = PipelineRunner(executor, OutputSettings(tmp_path / "runs"))
    with pytest.raises(ConfigError):
        runner.run(make_config(txt2img={"enabled": False}), CancelToken(), emit=events.append)
    assert events == [] and executor.calls == [] and not (tmp_path / "runs").exists()


def test_stage_error_class_carries_stage_name() -> None:
    err = StageError("hires", "bad")
    assert err.stage == "hires" and str(err) == "hires: bad"


# -- batch count (A1111's n_iter) -------------------------------------------------------------


def test_batch_count_runs_one_engine_call_per_batch_with_seeds_stepping_across_them(
    make_config, tmp_path: Path
) -> None:
    config = make_config(seed=10, batch_size=2, batch_count=3, txt2img={"hires_enabled": True})
    result, executor, events = _run(config, tmp_path)
    assert result.status == "COMPLETED", result.error
    # One call per batch, each batch_size images; A1111's all_seeds = seed + i over count x size.
    assert [call.payload.seeds for call in executor.calls] == [(10, 11), (12, 13), (14, 15)]
    assert result.seeds == tuple(range(10, 16))
    assert len(result.image_paths) == 6
    assert {p.parent for p in result.image_paths} == {result.manifest_path.parent}, "one run folder"
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["seeds"] == list(range(10, 16))
    assert [s["image_count"] for s in manifest["stages"]] == [6]
    meta = read_image_metadata(result.image_paths[5])
    assert meta.run_config is not None
    assert (meta.run_config.seed, meta.run_config.batch_size, meta.run_config.batch_count) == (15, 1, 1)
    assert "Seed: 15," in (meta.parameters or "") and "Batch count" not in (meta.parameters or "")
    fractions = [e.fraction for e in events if isinstance(e, ev.StepProgress)]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    labels = {e.label for e in events if isinstance(e, ev.StepProgress)}
    assert {"batch 1/3", "batch 3/3"} <= {label.split(",")[0] for label in labels}


def test_batch_count_with_a_variation_seed_steps_the_variation_seed_across_batches(
    make_config, tmp_path: Path
) -> None:
    config = make_config(seed=5, batch_size=2, batch_count=2, subseed=100, subseed_strength=0.3)
    result, executor, events = _run(config, tmp_path)
    assert [call.payload.seeds for call in executor.calls] == [(5, 5), (5, 5)]
    # The second batch's config starts at the variation seed of its first image (100 + 2).
    assert [call.payload.config.subseed for call in executor.calls] == [100, 102]
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    assert started.subseeds == (100, 101, 102, 103)
    meta = read_image_metadata(result.image_paths[3])
    assert "Variation seed: 103," in (meta.parameters or "")


def test_batch_count_img2img_seed_steps_across_batches(
    make_config, input_image: Path, tmp_path: Path
) -> None:
    config = make_config(
        input_image_path=str(input_image),
        batch_size=1,
        batch_count=3,
        txt2img={"enabled": False},
        img2img={"enabled": True, "seed": 40},
    )
    result, executor, _ = _run(config, tmp_path)
    assert [call.payload.seeds for call in executor.calls] == [(40,), (41,), (42,)]
    assert [len(call.payload.images) for call in executor.calls] == [1, 1, 1]
    assert len(result.image_paths) == 3


def test_a_failing_later_batch_keeps_nothing_of_the_run(make_config, tmp_path: Path) -> None:
    class _FailsThirdCall(FakeExecutor):
        def generate_images(self, stage, payload, progress, cancel_token):  # type: ignore[override]
            if len(self.calls) == 2:
                raise StageError(stage.value, "out of luck")
            return super().generate_images(stage, payload, progress, cancel_token)

    result, executor, _ = _run(make_config(seed=1, batch_count=4), tmp_path, _FailsThirdCall())
    assert result.status == "FAILED"
    assert len(executor.calls) == 2
    assert not list((tmp_path / "runs").rglob("*.png")), "all or nothing: the first batches are not kept"


def test_batch_count_keeps_every_batch_s_notes_once(make_config, tmp_path: Path) -> None:
    class _Notes(FakeExecutor):
        def generate_images(self, stage, payload, progress, cancel_token):  # type: ignore[override]
            result = super().generate_images(stage, payload, progress, cancel_token)
            note = "retried with VAE tiling" if len(self.calls) > 1 else None
            return StageResult(result.images, StageInfo(notes=(note,) if note else ()))

    _, _, events = _run(make_config(seed=1, batch_count=3), tmp_path, _Notes())
    finished = next(e for e in events if isinstance(e, ev.StageFinished))
    assert finished.notes == ("retried with VAE tiling",)
