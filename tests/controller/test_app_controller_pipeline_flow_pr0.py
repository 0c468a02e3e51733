"""AppController lifecycle: IDLE/RUNNING/COMPLETED/FAILED/CANCELLED, recovery, and a second run after each."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stablenew_qt.core import events as ev
from stablenew_qt.core.controller import AppController, RunInProgress
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.lifecycle import IllegalTransition, Lifecycle, LifecycleState
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner

S = LifecycleState


def _controller(tmp_path: Path, executor: FakeExecutor) -> tuple[AppController, list[object]]:
    controller = AppController(PipelineRunner(executor, OutputSettings(tmp_path / "runs")))
    seen: list[object] = []
    controller.subscribe(seen.append)
    return controller, seen


def _changes(seen: list[object]) -> list[tuple[str, str]]:
    return [(e.old.value, e.new.value) for e in seen if isinstance(e, ev.LifecycleChanged)]


def _run_in_thread(controller: AppController, config) -> tuple[threading.Thread, dict[str, object]]:
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.update(result=controller.run_pipeline(config)))
    thread.start()
    return thread, box


def test_completed_then_second_run(make_config, tmp_path: Path) -> None:
    controller, seen = _controller(tmp_path, FakeExecutor())
    first = controller.run_pipeline(make_config())
    assert first.status is S.COMPLETED and controller.state is S.COMPLETED
    second = controller.run_pipeline(make_config(seed=5))
    assert second.status is S.COMPLETED and second.run_id != first.run_id
    assert _changes(seen) == [
        ("IDLE", "RUNNING"),
        ("RUNNING", "COMPLETED"),
        ("COMPLETED", "IDLE"),
        ("IDLE", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]


def test_error_then_idle_then_second_run(make_config, tmp_path: Path) -> None:
    executor = FakeExecutor().fail_at("txt2img", "model missing")
    controller, seen = _controller(tmp_path, executor)
    result = controller.run_pipeline(make_config())
    assert result.status is S.FAILED and controller.state is S.FAILED
    failed = [e for e in seen if isinstance(e, ev.RunFailed)]
    assert failed[0].message == "txt2img: model missing"
    controller.return_to_idle()
    assert controller.state is S.IDLE
    controller.runner.executor = FakeExecutor()
    assert controller.run_pipeline(make_config()).status is S.COMPLETED
    assert _changes(seen) == [
        ("IDLE", "RUNNING"),
        ("RUNNING", "FAILED"),
        ("FAILED", "IDLE"),
        ("IDLE", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]


def test_cancel_then_second_run(make_config, tmp_path: Path) -> None:
    executor = FakeExecutor().block_at("txt2img", step=2)
    controller, seen = _controller(tmp_path, executor)
    thread, box = _run_in_thread(controller, make_config())
    assert executor.blocked.wait(10)
    assert controller.state is S.RUNNING
    assert controller.cancel() is True
    thread.join(10)
    assert box["result"].status is S.CANCELLED and controller.state is S.CANCELLED  # type: ignore[attr-defined]
    assert controller.cancel() is False, "nothing left to cancel"
    controller.runner.executor = FakeExecutor()
    assert controller.run_pipeline(make_config()).status is S.COMPLETED
    assert _changes(seen)[:3] == [("IDLE", "RUNNING"), ("RUNNING", "CANCELLED"), ("CANCELLED", "IDLE")]


def test_config_error_keeps_lifecycle_idle_and_writes_nothing(make_config, tmp_path: Path) -> None:
    executor = FakeExecutor()
    controller, seen = _controller(tmp_path, executor)
    with pytest.raises(ConfigError, match="no stage is enabled"):
        controller.run_pipeline(make_config(txt2img={"enabled": False}))
    assert controller.state is S.IDLE and seen == [] and executor.calls == []
    assert not (tmp_path / "runs").exists()
    assert controller.run_pipeline(make_config()).status is S.COMPLETED


def test_config_error_after_a_finished_run_returns_to_idle(make_config, tmp_path: Path) -> None:
    controller, _ = _controller(tmp_path, FakeExecutor())
    controller.run_pipeline(make_config())
    with pytest.raises(ConfigError):
        controller.run_pipeline(make_config(txt2img={"enabled": False}))
    assert controller.state is S.IDLE


def test_input_image_deleted_after_validation_ends_in_error(
    make_config, input_image: Path, tmp_path: Path
) -> None:
    controller, _ = _controller(tmp_path, FakeExecutor())
    config = make_config(
        input_image_path=str(input_image), txt2img={"enabled": False}, img2img={"enabled": True}
    )
    controller.validate(config)
    input_image.unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        controller.run_pipeline(config)
    assert controller.state is S.IDLE, "the config is checked again before RUNNING"


def test_second_start_while_running_is_refused(make_config, tmp_path: Path) -> None:
    executor = FakeExecutor().block_at("txt2img")
    controller, _ = _controller(tmp_path, executor)
    thread, box = _run_in_thread(controller, make_config())
    assert executor.blocked.wait(10)
    with pytest.raises(RunInProgress):
        controller.run_pipeline(make_config())
    controller.cancel()
    thread.join(10)
    assert box["result"].status is S.CANCELLED  # type: ignore[attr-defined]


def test_validate_never_changes_state(make_config, tmp_path: Path) -> None:
    controller, seen = _controller(tmp_path, FakeExecutor())
    plan = controller.validate(make_config(img2img={"enabled": True}))
    assert [s.value for s in plan.names] == ["txt2img", "img2img"]
    assert controller.state is S.IDLE and seen == []


def test_listener_exception_does_not_break_the_run(make_config, tmp_path: Path) -> None:
    controller, seen = _controller(tmp_path, FakeExecutor())

    def broken(_event: object) -> None:
        raise RuntimeError("listener bug")

    controller.subscribe(broken)
    assert controller.run_pipeline(make_config()).status is S.COMPLETED
    assert isinstance(seen[-1], ev.LifecycleChanged) and seen[-1].new is S.COMPLETED


def test_unsubscribe_stops_events(make_config, tmp_path: Path) -> None:
    controller, _ = _controller(tmp_path, FakeExecutor())
    got: list[object] = []
    unsubscribe = controller.subscribe(got.append)
    unsubscribe()
    controller.run_pipeline(make_config())
    assert got == []


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ([S.RUNNING], True),
        ([S.COMPLETED], False),
        ([S.RUNNING, S.COMPLETED, S.IDLE], True),
        ([S.RUNNING, S.FAILED, S.IDLE], True),
        ([S.RUNNING, S.CANCELLED, S.IDLE], True),
        ([S.RUNNING, S.IDLE], False),
        ([S.RUNNING, S.RUNNING], False),
        ([S.RUNNING, S.FAILED, S.RUNNING], False),
        ([S.RUNNING, S.COMPLETED, S.CANCELLED], False),
    ],
)
def test_lifecycle_transitions(path: list[LifecycleState], allowed: bool) -> None:
    lifecycle = Lifecycle()
    seen: list[tuple[LifecycleState, LifecycleState]] = []
    lifecycle.subscribe(lambda old, new: seen.append((old, new)))
    if allowed:
        for state in path:
            lifecycle.transition(state)
        assert lifecycle.state is path[-1] and len(seen) == len(path)
    else:
        with pytest.raises(IllegalTransition):
            for state in path:
                lifecycle.transition(state)
        assert len(seen) == len(path) - 1
