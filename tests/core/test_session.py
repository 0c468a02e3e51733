"""EngineSession: every RunConfig becomes a queue job and reaches its PNG through one road; events
of every kind come from one subscribe; failures carry a typed cause into the queue's record.
(FakeExecutor engine, real JobQueue files.)"""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError, FailureCause, FailureKind
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job_runner import SingleNodeJobRunner
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue, JobStatus, QueueError
from stablenew_qt.core.sequencer import StageExecutionPlan, StageName
from stablenew_qt.core.session import EngineSession, SessionOptions, TemporaryQueue, open_session

S = JobStatus


@pytest.fixture
def options(tmp_path: Path) -> SessionOptions:
    return SessionOptions(OutputSettings(tmp_path / "runs"), queue_path=tmp_path / "queue.sqlite3")


def _session(
    options: SessionOptions, engine: FakeExecutor | None = None
) -> tuple[EngineSession, list[object]]:
    session = open_session(engine or FakeExecutor(), options)
    seen: list[object] = []
    session.subscribe(seen.append)
    return session, seen


def test_generate_is_a_queue_job_that_reaches_its_png(options: SessionOptions, make_config) -> None:
    session, seen = _session(options)
    with session:
        job = session.generate(make_config(batch_size=2))
        assert job.status is S.COMPLETED and len(job.outputs) == 2 and all(p.is_file() for p in job.outputs)
        assert session.queue.get(job.id) == job, "the job is recorded in the queue file"
        assert session.state is LifecycleState.COMPLETED
    kinds = [type(e) for e in seen if not isinstance(e, ev.StepProgress | ev.QueueChanged)]
    assert kinds == [
        ev.JobStarted,
        ev.LifecycleChanged,
        ev.RunStarted,
        ev.StageStarted,
        ev.StageFinished,
        ev.RunCompleted,
        ev.LifecycleChanged,
        ev.JobFinished,
        ev.EngineReported,
    ]
    assert any(isinstance(e, ev.QueueChanged) for e in seen), "queue changes come through the same subscribe"
    with JobQueue(options.queue_path) as reopened:  # type: ignore[arg-type]
        assert reopened.get(job.id).status is S.COMPLETED


def test_a_config_that_cannot_run_is_refused_before_anything_is_queued(
    options: SessionOptions, make_config
) -> None:
    session, _seen = _session(options)
    with session, pytest.raises(ConfigError, match="no stage is enabled"):
        session.enqueue(make_config(txt2img={"enabled": False}))
    with JobQueue(options.queue_path) as queue:  # type: ignore[arg-type]
        assert queue.list() == []


def test_without_a_queue_file_the_session_uses_a_temporary_one(tmp_path: Path, make_config) -> None:
    session, _seen = _session(SessionOptions(OutputSettings(tmp_path / "runs")))
    assert session.temporary_queue and session.queue_problem is None
    assert isinstance(session.queue, TemporaryQueue)
    folder = session.queue.folder
    assert session.generate(make_config()).status is S.COMPLETED
    session.close()
    assert not folder.exists(), "a temporary queue leaves nothing behind"


def test_a_queue_file_that_cannot_be_used_falls_back_to_a_temporary_queue(
    tmp_path: Path, make_config
) -> None:
    broken = tmp_path / "queue.sqlite3"
    broken.write_bytes(b"garbage" * 40)
    options = SessionOptions(OutputSettings(tmp_path / "runs"), queue_path=broken)
    with open_session(FakeExecutor(), options) as session:
        assert session.temporary_queue and "not a SQLite database" in (session.queue_problem or "")
        assert session.generate(make_config()).status is S.COMPLETED
    assert broken.read_bytes() == b"garbage" * 40, "the broken file is left alone"
    strict = SessionOptions(OutputSettings(tmp_path / "runs"), queue_path=broken, fallback_to_temporary=False)
    with pytest.raises(QueueError, match="cannot use the queue file"):
        open_session(FakeExecutor(), strict)


def test_cancel_stops_the_running_job_and_queued_ones_at_once(options: SessionOptions, make_config) -> None:
    engine = FakeExecutor().block_at("txt2img", step=2)
    session, _seen = _session(options, engine)
    with session:
        first, second, third = session.enqueue(make_config(), 3)
        box: dict[str, object] = {}
        thread = threading.Thread(target=lambda: box.update(jobs=session.run_queue(threading.Event())))
        thread.start()
        assert engine.blocked.wait(10)
        assert session.current_job is not None and session.current_job.id == first.id
        assert session.cancel(third.id) is False  # queued: cancelled at once
        assert session.queue.get(third.id).status is S.CANCELLED
        engine._scripts.clear()
        assert session.cancel() is True  # the running job, as Ctrl-C or the Cancel button does
        thread.join(10)
    done = box["jobs"]
    assert [(j.id, j.status) for j in done] == [(first.id, S.CANCELLED), (second.id, S.COMPLETED)]  # type: ignore[attr-defined]


def test_cancelling_a_group_stops_its_running_job_and_cancels_the_rest_but_not_others(
    options: SessionOptions, make_config
) -> None:
    engine = FakeExecutor().block_at("txt2img", step=2)
    session, _seen = _session(options, engine)
    with session:
        group = session.queue.add_group([make_config() for _ in range(3)], "pack")
        [other] = session.enqueue(make_config())
        box: dict[str, object] = {}
        thread = threading.Thread(target=lambda: box.update(jobs=session.run_queue(threading.Event())))
        thread.start()
        assert engine.blocked.wait(10)
        members = [j.id for j in session.queue.group_jobs(group.id)]
        assert session.current_job is not None and session.current_job.id == members[0]
        engine._scripts.clear()
        assert session.cancel_group(group.id) is True
        thread.join(10)
        assert [session.queue.get(i).status for i in members] == [S.CANCELLED] * 3
        assert session.queue.get(other.id).status is S.COMPLETED, "a job outside the group runs"
        assert session.cancel_group(group.id) is False, "nothing of it runs any more"


def test_a_group_is_queued_only_when_every_config_can_run(options: SessionOptions, make_config) -> None:
    session, _seen = _session(options)
    with session:
        [single] = session.enqueue(make_config())
        bad = make_config(txt2img={"enabled": False})  # no stage left: refused by the sequencer
        with pytest.raises(ConfigError):
            session.enqueue_group([make_config(), bad], "wildcards")
        assert session.queue.groups() == [] and [j.id for j in session.queue.list()] == [single.id]
        group = session.enqueue_group([make_config(), make_config()], "wildcards", {"label": "w"}, front=True)
        members = [j.id for j in session.queue.group_jobs(group.id)]
        assert [j.id for j in session.queue.list(status=[S.QUEUED])] == [*members, single.id]


def test_run_queue_and_take_over_announce_themselves(options: SessionOptions, make_config) -> None:
    session, seen = _session(options)
    with session:
        session.enqueue(make_config(), 2)
        found = session.take_over_queue()
        assert found == [] and ev.InterruptedJobsFound(()) in seen
        assert [j.status for j in session.run_queue()] == [S.COMPLETED, S.COMPLETED]
    assert seen[-1] == ev.QueueRunFinished(2)


def test_engine_output_and_learning_log_change_between_jobs(
    options: SessionOptions, make_config, tmp_path: Path
) -> None:
    first, second = FakeExecutor(), FakeExecutor()
    second.device = "Fake GPU (float16)"
    session, seen = _session(options, first)
    log = tmp_path / "learning" / "runs.jsonl"
    with session:
        session.generate(make_config())
        assert not log.exists(), "the learning log is off unless switched on"
        session.replace_engine(second)
        session.set_output(OutputSettings(tmp_path / "elsewhere"))
        session.set_learning_log(log)
        job = session.generate(make_config(seed=5))
        assert job.outputs[0].is_relative_to(tmp_path / "elsewhere")
        session.set_learning_log(None)
        session.generate(make_config(seed=6))
    assert len(first.calls) == 1 and len(second.calls) == 2
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [line["seeds"] for line in lines] == [[5]]
    assert ev.EngineReported("Fake GPU (float16)") in seen


def test_the_job_runner_is_a_seam(options: SessionOptions, make_config) -> None:
    """A dispatcher for several workers plugs in here; the session only talks to the protocol."""
    made: list[SingleNodeJobRunner] = []

    def runner(queue: JobQueue, controller) -> SingleNodeJobRunner:  # type: ignore[no-untyped-def]
        made.append(SingleNodeJobRunner(queue, controller))
        return made[0]

    with open_session(FakeExecutor(), options, job_runner=runner) as session:
        assert session.job_runner is made[0]
        assert session.generate(make_config()).status is S.COMPLETED


# -- typed failure causes ------------------------------------------------------------------------
def _failed(session: EngineSession, config: RunConfig) -> FailureCause:
    job = session.generate(config)
    assert job.status is S.FAILED and job.cause is not None
    assert session.queue.get(job.id).cause == job.cause, "the queue's record keeps the cause"
    assert job.error == job.cause.message
    return job.cause


def test_out_of_memory_unexpected_and_config_failures_carry_their_kind(
    options: SessionOptions, make_config, input_image: Path
) -> None:
    engine = FakeExecutor().oom_at("img2img")
    session, seen = _session(options, engine)
    with session:
        oom = _failed(session, make_config(img2img={"enabled": True}))
        assert (oom.kind, oom.stage) == (FailureKind.OUT_OF_MEMORY, "img2img")
        engine.raise_at("img2img", ZeroDivisionError("a bug"))
        bug = _failed(session, make_config(img2img={"enabled": True}))
        assert bug.kind is FailureKind.UNEXPECTED and "ZeroDivisionError" in bug.message
        from_image = make_config(
            input_image_path=str(input_image), txt2img={"enabled": False}, img2img={"enabled": True}
        )
        [job] = session.enqueue(from_image)
        input_image.unlink()  # gone between queueing and running
        ran = session.run_job(job.id)
        assert ran is not None and ran.cause is not None and ran.cause.kind is FailureKind.CONFIG
    failed = [e for e in seen if isinstance(e, ev.RunFailed)]
    assert [e.cause.kind for e in failed if e.cause] == [FailureKind.OUT_OF_MEMORY, FailureKind.UNEXPECTED]


def test_cancelled_and_interrupted_jobs_say_so(options: SessionOptions, make_config) -> None:
    engine = FakeExecutor().block_at("txt2img", step=1)
    session, _seen = _session(options, engine)
    with session:
        [job] = session.enqueue(make_config())
        thread = threading.Thread(target=lambda: session.run_job(job.id))
        thread.start()
        assert engine.blocked.wait(10)
        session.interrupt()  # the app is closing
        thread.join(10)
        interrupted = session.queue.get(job.id)
    assert interrupted.status is S.INTERRUPTED and interrupted.cause is not None
    assert interrupted.cause.kind is FailureKind.INTERRUPTED
    with JobQueue(options.queue_path) as queue:  # type: ignore[arg-type]
        [other] = queue.add(make_config())
        queue.cancel(other.id)
        cancelled = queue.get(other.id)
    assert cancelled.cause is not None and cancelled.cause.kind is FailureKind.CANCELLED
    assert cancelled.error is None, "a cancelled job shows no error"


def test_every_event_crosses_a_process_boundary(options: SessionOptions, make_config) -> None:
    """Plain dataclasses: a worker in another process can send any of them (pickle round trip)."""
    session, seen = _session(options, FakeExecutor().fail_at("txt2img", "scripted", step=2))
    with session:
        session.generate(make_config())
        session.take_over_queue()
        session.run_queue()
    job = next(e.job for e in seen if isinstance(e, ev.JobFinished))
    preview = ev.StepProgress("r", StageName.TXT2IMG, 0, 1, 1, 2, 0.5, "", Image.new("RGB", (4, 4)))
    extra = [
        preview,
        ev.RunStarted("r", StageExecutionPlan((), None), (1,)),
        ev.SessionRefused("another process runs this queue"),
        ev.QueueChanged((1,)),
        ev.JobInterrupted(job, True, (Path("x.tmp"),)),
        ev.QueuePaused(job),
    ]
    kinds = {type(e) for e in seen} | {type(e) for e in extra}
    assert {ev.JobStarted, ev.JobFinished, ev.RunFailed, ev.InterruptedJobsFound, ev.StepProgress} <= kinds
    for event in [*seen, *extra]:
        copy = pickle.loads(pickle.dumps(event))
        assert copy == event and type(copy) is type(event)
    failed = next(e for e in seen if isinstance(e, ev.RunFailed))
    assert failed.cause == FailureCause(FailureKind.STAGE, "txt2img: scripted", "txt2img")
