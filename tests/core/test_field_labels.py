"""Messages in the window's words (issue 17, item 9): field labels, not RunConfig paths."""

from __future__ import annotations

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError, ConfigProblem
from stablenew_qt.core.field_labels import (
    FIELD_LABELS,
    all_in_user_words,
    field_label,
    in_user_words,
    message_in_user_words,
)


def test_the_issue_s_messages_read_in_the_window_s_words() -> None:
    problem = ConfigProblem(
        "input_image_path", "img2img is the first stage, so it needs an input image: set input_image_path"
    )
    assert in_user_words(problem) == (
        "Input image: img2img is the first stage, so it needs an input image: set Input image"
    )
    assert in_user_words(ConfigProblem("txt2img.width", "must be a multiple of 8")) == (
        "Width: must be a multiple of 8"
    )
    assert in_user_words(ConfigProblem("", "no stage is enabled")) == "no stage is enabled"


def test_a_longer_path_is_not_replaced_by_a_shorter_one_inside_it() -> None:
    problem = ConfigProblem("txt2img.hires_steps", "at most txt2img.hires_steps, not txt2img.steps")
    assert in_user_words(problem) == "Hires steps: at most Hires steps, not Steps"


def test_unlisted_paths_and_adetailer_units_get_words() -> None:
    assert field_label("adetailer.units.1.adetailer_model") == "ADetailer unit 2: Model"
    assert field_label("txt2img.hires_cfg_scale") == "Hires cfg scale"
    assert field_label("") == ""


def test_every_real_validation_problem_of_a_bad_config_is_labelled() -> None:
    try:
        RunConfig.from_dict({"txt2img": {"width": 100, "steps": 0}})
    except ConfigError as exc:
        text = all_in_user_words(exc.problems)
    else:
        raise AssertionError("the config should not validate")
    assert "txt2img." not in text and "Width:" in text and "Steps:" in text


def test_the_table_names_real_fields() -> None:
    data = RunConfig().model_dump()
    for path in FIELD_LABELS:
        node = data
        for part in path.split("."):
            assert part in node, f"{path} is not a RunConfig field"
            node = node[part]


def test_a_run_s_error_text_reads_in_the_window_s_words() -> None:
    """A ConfigError raised once the run started (an input image deleted since it was queued)
    reaches the window as text only: it reads like a validation message."""
    error = ConfigError(
        [
            ConfigProblem("input_image_path", "'/tmp/gone.png' does not exist: set input_image_path"),
            ConfigProblem("adetailer.units.0.adetailer_model", "'face.pt' is not installed"),
        ]
    )
    assert message_in_user_words(str(error)) == (
        "Input image: '/tmp/gone.png' does not exist: set Input image\n"
        "ADetailer unit 1: Model: 'face.pt' is not installed"
    )
    assert (
        message_in_user_words("CUDA out of memory: lower txt2img.width") == "CUDA out of memory: lower Width"
    )
    assert message_in_user_words("cannot write: disk full") == "cannot write: disk full", "no path, no change"
    assert message_in_user_words("") == ""
