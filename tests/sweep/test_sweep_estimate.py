"""The Sweep panel's estimate arithmetic (core/sweep/estimate.py): steps per image from a config
and from the stage plan a run reports, the speed averaged over the last runs, and the wording."""

from __future__ import annotations

import pytest

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.sequencer import StageSequencer
from stablenew_qt.core.sweep.estimate import (
    RUNS_AVERAGED,
    SpeedMeter,
    config_steps,
    estimate_seconds,
    format_duration,
    image_count,
    plan_steps,
)


def config(**changes: object) -> RunConfig:
    data = RunConfig().model_dump(mode="json")
    for path, value in changes.items():
        section, _, key = path.partition("__")
        if key:
            data[section][key] = value
        else:
            data[section] = value
    return RunConfig.from_dict(data)


@pytest.mark.parametrize(
    ("changes", "steps"),
    [
        ({"txt2img__steps": 20}, 20),
        ({"txt2img__steps": 20, "txt2img__hires_enabled": True}, 40),  # hires steps 0: the first pass's
        ({"txt2img__steps": 20, "txt2img__hires_enabled": True, "txt2img__hires_steps": 7}, 27),
        ({"txt2img__steps": 20, "img2img__enabled": True, "img2img__steps": 10}, 30),
        ({"txt2img__steps": 20, "upscale__enabled": True}, 20),  # an upscale has no sampling steps
    ],
)
def test_steps_from_the_config_and_from_its_stage_plan_agree(changes: dict[str, object], steps: int) -> None:
    made = config(**changes)
    plan = StageSequencer().build_execution_plan(made, check_files=False)
    assert config_steps(made) == plan_steps(plan) == steps


def test_estimate_is_speed_times_every_image_step() -> None:
    one = config(txt2img__steps=10, batch_size=2, batch_count=3)
    assert image_count(one) == 6
    assert estimate_seconds([one, config(txt2img__steps=5)], 0.5) == pytest.approx((60 + 5) * 0.5)


def test_speed_is_averaged_over_the_last_runs_by_steps() -> None:
    meter = SpeedMeter()
    assert meter.seconds_per_step is None
    meter.record(10.0, 100)
    meter.record(1.0, 0)  # nothing sampled: says nothing about speed
    assert meter.seconds_per_step == pytest.approx(0.1)
    meter.record(30.0, 100)
    assert meter.seconds_per_step == pytest.approx(0.2)
    for _ in range(RUNS_AVERAGED):
        meter.record(1.0, 100)
    assert meter.seconds_per_step == pytest.approx(0.01), "older runs drop out"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "about 1 s"), (42, "about 42 s"), (600, "about 10 min"), (3600 * 2 + 300, "about 2 h 5 min")],
)
def test_durations_read_as_a_person_says_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
