"""WorkersSetting.parse: what `queue run --workers` and the window's Workers field accept."""

import pickle
from pathlib import Path

import pytest

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.workers import WorkerInfo, WorkersChanged, WorkersMode, WorkersSetting, WorkerState


@pytest.mark.parametrize(
    ("text", "mode", "count", "address"),
    [
        ("", WorkersMode.THIS_GPU, 0, ""),
        ("this", WorkersMode.THIS_GPU, 0, ""),
        ("local", WorkersMode.LOCAL, 0, ""),
        (" 2 ", WorkersMode.COUNT, 2, ""),
        ("auto", WorkersMode.ADDRESS, 0, "auto"),
        ("ray://head.lan:10001", WorkersMode.ADDRESS, 0, "ray://head.lan:10001"),
        ("10.0.0.5:6379", WorkersMode.ADDRESS, 0, "10.0.0.5:6379"),
    ],
)
def test_parse_accepts_the_four_modes(text: str, mode: WorkersMode, count: int, address: str) -> None:
    setting = WorkersSetting.parse(text)
    assert (setting.mode, setting.count, setting.address) == (mode, count, address)
    assert setting.enabled is (mode is not WorkersMode.THIS_GPU)
    assert WorkersSetting.parse(str(setting)) == setting  # round-trips through its text


@pytest.mark.parametrize("text", ["0", "65", "all", "ray://host", "http://h:1", "-1"])
def test_parse_refuses_anything_else_with_one_line_naming_the_field(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        WorkersSetting.parse(text)
    assert raised.value.problems[0].field == "workers"
    assert "\n" not in str(raised.value)


def test_models_dir_travels_and_events_pickle() -> None:
    assert WorkersSetting.parse("2", Path("/models")).models_dir == Path("/models")
    event = WorkersChanged((WorkerInfo("w0", state=WorkerState.BUSY, job_id=3, fraction=0.5),))
    assert pickle.loads(pickle.dumps(event)) == event
