"""StageSequencer plans and the runner's call order for every stage combination (seed test map).

The ``test_rule_*`` tests are the rows of docs/stage-rules.md, one test per row.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.core.sequencer import CANONICAL_ORDER, StageName, StageSequencer

ALL = ("txt2img", "img2img", "upscale", "adetailer")


def _toggles(enabled: set[str]) -> dict[str, dict[str, bool]]:
    return {name: {"enabled": name in enabled} for name in ALL}


COMBINATIONS = [set(c) for n in range(len(ALL) + 1) for c in itertools.combinations(ALL, n)]


def _expected(enabled: set[str]) -> list[str] | None:
    if not enabled & {"txt2img", "img2img", "upscale"}:
        return None
    return [name for name in ALL if name in enabled]


@pytest.mark.parametrize("enabled", COMBINATIONS, ids=lambda s: "+".join(sorted(s)) or "none")
def test_every_combination_plans_and_runs_in_canonical_order(
    enabled: set[str], make_config, input_image: Path, tmp_path: Path
) -> None:
    config = make_config(input_image_path=str(input_image), **_toggles(enabled))
    expected = _expected(enabled)
    if expected is None:
        with pytest.raises(ConfigError):
            StageSequencer().build_execution_plan(config)
        return
    plan = StageSequencer().build_execution_plan(config)
    assert [s.value for s in plan.names] == expected
    assert [s.index for s in plan.stages] == list(range(len(expected)))

    executor = FakeExecutor()
    result = PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert result.status == "COMPLETED", result.error
    assert [s.value for s in executor.stages_called] == expected
    assert len(result.image_paths) == (1 if expected[0] == "upscale" else config.batch_size)


def test_rule_at_least_one_generation_stage(make_config) -> None:
    config = make_config(**_toggles(set()))
    with pytest.raises(ConfigError) as err:
        StageSequencer().build_execution_plan(config)
    assert "no stage is enabled" in str(err.value)


def test_rule_adetailer_cannot_run_alone(make_config) -> None:
    config = make_config(**_toggles({"adetailer"}))
    with pytest.raises(ConfigError) as err:
        StageSequencer().build_execution_plan(config)
    assert err.value.problems[0].field == "adetailer.enabled"
    assert "cannot run alone" in str(err.value)


def test_rule_adetailer_always_last(make_config, input_image: Path) -> None:
    for enabled in ({"txt2img", "adetailer"}, {"img2img", "adetailer"}, {"upscale", "adetailer", "img2img"}):
        config = make_config(input_image_path=str(input_image), **_toggles(enabled))
        plan = StageSequencer().build_execution_plan(config)
        assert plan.names[-1] is StageName.ADETAILER
        assert StageName.ADETAILER not in plan.names[:-1]


def test_rule_canonical_order(make_config) -> None:
    plan = StageSequencer().build_execution_plan(make_config(**_toggles(set(ALL))))
    assert plan.names == CANONICAL_ORDER


def test_rule_refiner_and_hires_live_inside_txt2img(make_config) -> None:
    config = make_config(
        txt2img={"refiner_enabled": True, "refiner_model_name": "tiny-refiner", "hires_enabled": True}
    )
    plan = StageSequencer().build_execution_plan(config)
    assert plan.names == (StageName.TXT2IMG,)
    assert plan.first.refiner_enabled and plan.first.hires_enabled
    assert plan.first.stage_config.refiner_model_name == "tiny-refiner"
    assert plan.to_dict()["stages"][0]["refiner"] is True


@pytest.mark.parametrize("flag", ["refiner_enabled", "hires_enabled"])
def test_rule_refiner_or_hires_without_txt2img(flag: str, make_config, input_image: Path) -> None:
    config = make_config(
        input_image_path=str(input_image),
        txt2img={"enabled": False, flag: True, "refiner_model_name": "r"},
        img2img={"enabled": True},
    )
    with pytest.raises(ConfigError) as err:
        StageSequencer().build_execution_plan(config)
    assert [p.field for p in err.value.problems] == [f"txt2img.{flag}"]
    assert "enable txt2img or turn it off" in str(err.value)


def test_rule_refiner_needs_a_model(make_config) -> None:
    config = make_config(txt2img={"refiner_enabled": True, "refiner_model_name": " "})
    with pytest.raises(ConfigError) as err:
        StageSequencer().build_execution_plan(config)
    assert err.value.problems[0].field == "txt2img.refiner_model_name"


@pytest.mark.parametrize("first", ["img2img", "upscale"])
def test_rule_first_stage_from_file_needs_input_image(first: str, make_config) -> None:
    config = make_config(**_toggles({first}))
    with pytest.raises(ConfigError) as err:
        StageSequencer().build_execution_plan(config)
    assert err.value.problems[0].field == "input_image_path"
    assert f"{first} is the first stage" in str(err.value)


def test_rule_input_image_must_exist(make_config, tmp_path: Path) -> None:
    config = make_config(input_image_path=str(tmp_path / "missing.png"), **_toggles({"img2img"}))
    with pytest.raises(ConfigError, match="does not exist"):
        StageSequencer().build_execution_plan(config)


def test_rule_input_image_must_be_readable(make_config, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is not an image")
    config = make_config(input_image_path=str(bogus), **_toggles({"upscale"}))
    with pytest.raises(ConfigError, match="not a readable image"):
        StageSequencer().build_execution_plan(config)


def test_rule_input_image_ignored_after_txt2img(make_config, input_image: Path) -> None:
    config = make_config(input_image_path=str(input_image), **_toggles({"txt2img", "img2img"}))
    plan = StageSequencer().build_execution_plan(config)
    assert plan.input_image_path is None
    assert any("ignored" in w for w in plan.warnings)


def test_rule_upscale_first_makes_one_image(make_config, input_image: Path, tmp_path: Path) -> None:
    config = make_config(batch_size=3, input_image_path=str(input_image), **_toggles({"upscale"}))
    plan = StageSequencer().build_execution_plan(config)
    assert any("batch_size is ignored" in w for w in plan.warnings)
    result = PipelineRunner(FakeExecutor(), OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert len(result.image_paths) == 1


def test_rule_adetailer_needs_an_active_unit(make_config) -> None:
    config = make_config(
        adetailer={"enabled": True, "units": [{"adetailer_model": "None"}, {"adetailer_tab_enable": False}]}
    )
    with pytest.raises(ConfigError) as err:
        StageSequencer().build_execution_plan(config)
    assert err.value.problems[0].field == "adetailer.units"


def test_rule_adetailer_separate_checkpoint_needs_a_name(make_config) -> None:
    config = make_config(adetailer={"enabled": True, "units": [{"adetailer_use_checkpoint": True}]})
    with pytest.raises(ConfigError) as err:
        StageSequencer().build_execution_plan(config)
    assert err.value.problems[0].field == "adetailer.units[0].adetailer_checkpoint"


def test_rule_every_problem_reported_at_once(make_config) -> None:
    config = make_config(
        txt2img={"enabled": False, "hires_enabled": True},
        adetailer={"enabled": True},
    )
    with pytest.raises(ConfigError) as err:
        StageSequencer().build_execution_plan(config)
    fields = [p.field for p in err.value.problems]
    assert fields == ["adetailer.enabled", "txt2img.hires_enabled"]


def test_rule_model_knowledge_conflicts_end_in_error_not_config_error(make_config, tmp_path: Path) -> None:
    """A conflict only the engine can see (e.g. a refiner of another family) is a StageError at run
    time: the plan is valid, the run ends FAILED with the engine's message, and nothing is written."""
    from stablenew_qt.core.errors import StageError

    config = make_config(txt2img={"refiner_enabled": True, "refiner_model_name": "sd15-as-refiner"})
    StageSequencer().build_execution_plan(config)
    executor = FakeExecutor().raise_at(
        "txt2img", StageError("txt2img", "refiner 'sd15-as-refiner' is SD1.x but the base model is SDXL")
    )
    result = PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert result.status == "FAILED"
    assert result.error == "txt2img: refiner 'sd15-as-refiner' is SD1.x but the base model is SDXL"
    assert not (tmp_path / "runs").exists()


def test_rule_plan_preview_skips_file_checks(make_config, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.png")
    config = make_config(input_image_path=missing, **_toggles({"img2img"}))
    plan = StageSequencer().build_execution_plan(config, check_files=False)
    assert plan.names == (StageName.IMG2IMG,) and plan.input_image_path == missing
    with pytest.raises(ConfigError, match="does not exist"):
        StageSequencer().build_execution_plan(config)


def _engine_refuses(make_config, tmp_path: Path, stage: str, message: str, **overrides):
    """Run a structurally valid config through an executor that fails ``stage`` as the engine would."""
    from stablenew_qt.core.errors import StageError

    config = make_config(**overrides)
    StageSequencer().build_execution_plan(config)  # structurally fine: no ConfigError
    executor = FakeExecutor().raise_at(stage, StageError(stage, message))
    return PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(config, CancelToken()), executor


def test_rule_upscaler_not_installed_ends_in_error(make_config, tmp_path: Path) -> None:
    message = "upscaler '4x-NotInstalled' is not in models/ESRGAN; installed: Lanczos, Nearest, None"
    result, executor = _engine_refuses(
        make_config,
        tmp_path,
        "upscale",
        message,
        upscale={"enabled": True, "upscale_model": "4x-NotInstalled"},
    )
    assert (result.status, result.failed_stage, result.error) == (
        "FAILED",
        StageName.UPSCALE,
        f"upscale: {message}",
    )
    assert executor.stages_called == [StageName.TXT2IMG, StageName.UPSCALE]
    assert result.image_paths == () and not (tmp_path / "runs").exists()


def test_rule_missing_model_ends_in_error(make_config, tmp_path: Path) -> None:
    message = "model 'missing.safetensors' is not in models/Stable-diffusion"
    result, _ = _engine_refuses(
        make_config, tmp_path, "txt2img", message, txt2img={"model": "missing.safetensors"}
    )
    assert (result.status, result.error) == ("FAILED", f"txt2img: {message}")
    assert not (tmp_path / "runs").exists()
