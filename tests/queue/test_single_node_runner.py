"""SingleNodeJobRunner: results flow back to the JobQueue, and statuses move correctly for success,
failure, cancel, config errors and interrupted jobs (with the FakeExecutor)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from stablenew_qt.core import events as ev
from stablenew_qt.core.controller import RunInProgress
from stablenew_qt.core.events import JobEvent, JobFinished, JobInterrupted, JobStarted, QueuePaused
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job_runner import SingleNodeJobRunner
from stablenew_qt.core.queue import JobQueue, JobStatus

S = JobStatus


def _runner(queue: JobQueue, controller, **options) -> tuple[SingleNodeJobRunner, list[JobEvent]]:
    runner = SingleNodeJobRunner(queue, controller, **options)
    seen: list[JobEvent] = []
    runner.subscribe(seen.append)
    return runner, seen


def test_a_completed_job_records_its_run_and_images(
    job_queue: JobQueue, make_controller, make_config
) -> None:
    queued = job_queue.add(make_config(batch_size=2))[0]
    runner, seen = _runner(job_queue, make_controller())
    done = runner.run_next()
    assert done is not None and done.status is S.COMPLETED and done == job_queue.get(queued.id)
    assert len(done.outputs) == 2 and all(path.is_file() for path in done.outputs)
    manifest = json.loads((done.outputs[0].parent / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_id"] == done.run_id == done.outputs[0].parent.name
    assert sorted(manifest["images"]) == sorted(path.name for path in done.outputs)
    assert (done.attempts, done.error) == (1, None) and done.output_root == done.outputs[0].parents[2]
    assert [type(e) for e in seen] == [JobStarted, JobFinished]
    assert seen[0].job.status is S.RUNNING and seen[1].job == done
    assert runner.run_next() is None and runner.current is None


def test_a_failed_job_records_the_error_and_the_next_job_runs(
    job_queue: JobQueue, make_controller, make_config
) -> None:
    # The failure is scripted at step 5: only the 5-step job reaches it.
    executor = FakeExecutor().fail_at("txt2img", "model 'gone.safetensors' not found", step=5)
    failing = job_queue.add(make_config(txt2img={"steps": 5}))[0]
    fine = job_queue.add(make_config(txt2img={"steps": 3}))[0]
    runner, _seen = _runner(job_queue, make_controller(executor))
    finished = runner.run_until_empty()
    assert [(job.id, job.status) for job in finished] == [(failing.id, S.FAILED), (fine.id, S.COMPLETED)]
    assert finished[0].error == "txt2img: model 'gone.safetensors' not found"
    assert finished[0].outputs == () and not job_queue.paused


def test_pause_on_failure_pauses_the_queue(job_queue: JobQueue, make_controller, make_config) -> None:
    executor = FakeExecutor().fail_at("txt2img", "scripted failure")
    failing, waiting = job_queue.add(make_config(), 2)
    runner, seen = _runner(job_queue, make_controller(executor), pause_on_failure=True)
    assert [job.id for job in runner.run_until_empty()] == [failing.id]
    assert job_queue.paused and job_queue.get(waiting.id).status is S.QUEUED
    assert [type(e) for e in seen] == [JobStarted, JobFinished, QueuePaused]


def test_cancelling_the_running_job_leaves_the_rest_queued(
    job_queue: JobQueue, make_controller, make_config
) -> None:
    executor = FakeExecutor().block_at("txt2img", step=2)
    first, second = job_queue.add(make_config(), 2)
    runner, _seen = _runner(job_queue, make_controller(executor))
    stop = threading.Event()
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.update(done=runner.run_until_empty(stop)))
    thread.start()
    assert executor.blocked.wait(10)
    assert runner.current is not None and runner.current.id == first.id
    stop.set()
    assert runner.cancel_current() is True
    thread.join(10)
    (cancelled,) = box["done"]  # type: ignore[misc]
    assert cancelled.id == first.id and cancelled.status is S.CANCELLED and cancelled.outputs == ()
    assert job_queue.get(second.id).status is S.QUEUED
    assert runner.cancel_current() is False, "nothing runs now"


def test_a_cancel_from_another_process_stops_the_run_at_its_next_step(
    job_queue: JobQueue, queue_path: Path, make_controller, make_config
) -> None:
    controller = make_controller()
    job = job_queue.add(make_config(txt2img={"steps": 20}))[0]
    runner, _seen = _runner(job_queue, controller)
    steps: list[int] = []
    with JobQueue(queue_path) as other:  # its own connection, as `stablenew-qt queue cancel` has

        def cancel_at_step_3(event: object) -> None:
            if isinstance(event, ev.StepProgress):
                steps.append(event.step)
                if event.step == 3:
                    assert other.cancel(job.id) is True

        controller.subscribe(cancel_at_step_3)
        done = runner.run_next()
    assert done is not None and done.status is S.CANCELLED
    assert steps == [1, 2, 3], "the runner saw the request at the same step and stopped"


def test_a_job_whose_input_image_vanished_fails_and_the_queue_goes_on(
    job_queue: JobQueue, make_controller, make_config, input_image: Path
) -> None:
    img2img = make_config(
        txt2img={"enabled": False}, img2img={"enabled": True}, input_image_path=str(input_image)
    )
    vanished = job_queue.add(img2img)[0]
    fine = job_queue.add(make_config())[0]
    input_image.unlink()
    runner, _seen = _runner(job_queue, make_controller())
    failed, done = runner.run_until_empty()
    assert (failed.id, failed.status, done.id, done.status) == (vanished.id, S.FAILED, fine.id, S.COMPLETED)
    assert "input_image_path" in (failed.error or "") and str(input_image) in (failed.error or "")


def test_an_interrupting_keyboard_interrupt_cancels_the_job_and_propagates(
    job_queue: JobQueue, make_controller, make_config
) -> None:
    executor = FakeExecutor().raise_at("txt2img", KeyboardInterrupt())
    job = job_queue.add(make_config())[0]
    runner, _seen = _runner(job_queue, make_controller(executor))
    with pytest.raises(KeyboardInterrupt):
        runner.run_next()
    assert job_queue.get(job.id).status is S.CANCELLED


def test_a_busy_controller_claims_no_job(job_queue: JobQueue, make_controller, make_config) -> None:
    executor = FakeExecutor().block_at("txt2img")
    controller = make_controller(executor)
    job = job_queue.add(make_config())[0]
    thread = threading.Thread(target=controller.run_pipeline, args=(make_config(),))
    thread.start()
    try:
        assert executor.blocked.wait(10)
        with pytest.raises(RunInProgress):
            SingleNodeJobRunner(job_queue, controller).run_next()
        assert (job_queue.get(job.id).status, job_queue.get(job.id).attempts) == (S.QUEUED, 0)
    finally:
        controller.cancel()
        thread.join(10)


def test_runner_cancel_of_a_queued_job(job_queue: JobQueue, make_controller, make_config) -> None:
    job = job_queue.add(make_config())[0]
    runner, _seen = _runner(job_queue, make_controller())
    assert runner.cancel(job.id) is False
    assert job_queue.get(job.id).status is S.CANCELLED and runner.run_next() is None


# -- interrupted jobs --------------------------------------------------------------------------
def _crash_mid_write(queue_path: Path, make_config, output_root: Path) -> tuple[int, Path, Path]:
    """A process that claimed a job, wrote one whole image and half of another, then died."""
    with JobQueue(queue_path) as crashed:
        job = crashed.add(make_config())[0]
        crashed.add(make_config(seed=99))
        crashed.next_job()
        crashed.record_run(job.id, "120000-abcdef", output_root)
    run_dir = output_root / "2026-01-01" / "120000-abcdef"
    run_dir.mkdir(parents=True)
    whole = run_dir / "00000-1234.png"
    whole.write_bytes(b"a whole image")
    partial = run_dir / ".00001-1235.png.k2j3h4.tmp"
    partial.write_bytes(b"half an im")
    return job.id, whole, partial


def test_recovery_cleans_up_and_auto_resume_reruns_the_job_once(
    queue_path: Path, make_controller, make_config, tmp_path: Path
) -> None:
    job_id, whole, partial = _crash_mid_write(queue_path, make_config, tmp_path / "runs")
    with JobQueue(queue_path) as queue:
        runner, seen = _runner(queue, make_controller(), auto_resume=True)
        (resumed,) = runner.take_over_queue()
        assert resumed.id == job_id and resumed.status is S.QUEUED
        assert seen == [JobInterrupted(resumed, True, (partial,))]
        assert not partial.exists() and whole.exists(), "complete files are never deleted"
        finished = runner.run_until_empty()
    assert [(job.id, job.status, job.attempts) for job in finished] == [
        (job_id, S.COMPLETED, 2),
        (job_id + 1, S.COMPLETED, 1),
    ]


def test_without_auto_resume_an_interrupted_job_waits_for_retry(
    queue_path: Path, make_controller, make_config, tmp_path: Path
) -> None:
    job_id, _whole, partial = _crash_mid_write(queue_path, make_config, tmp_path / "runs")
    with JobQueue(queue_path) as queue:
        runner, seen = _runner(queue, make_controller())
        finished = runner.run_until_empty()  # recovers on its own first
        assert [job.id for job in finished] == [job_id + 1]
        assert isinstance(seen[0], JobInterrupted) and not seen[0].resumed and not partial.exists()
        assert queue.get(job_id).status is S.INTERRUPTED
        queue.retry(job_id)
        (again,) = runner.run_until_empty()
    assert (again.id, again.status, again.attempts) == (job_id, S.COMPLETED, 2)


def test_an_emptied_run_folder_is_removed(
    queue_path: Path, make_controller, make_config, tmp_path: Path
) -> None:
    _job_id, whole, _partial = _crash_mid_write(queue_path, make_config, tmp_path / "runs")
    whole.unlink()
    with JobQueue(queue_path) as queue:
        SingleNodeJobRunner(queue, make_controller()).take_over_queue()
    assert not whole.parent.exists() and whole.parent.parent.exists()


def test_run_job_runs_that_job_out_of_turn_even_when_paused(
    job_queue: JobQueue, make_controller, make_config
) -> None:
    first, second = job_queue.add(make_config(), 2)
    now = job_queue.add_front(make_config(prompt="run me now"))[0]
    job_queue.pause()
    runner, seen = _runner(job_queue, make_controller())
    assert runner.run_next() is None, "paused: run_next takes nothing"
    done = runner.run_job(second.id)
    assert done is not None and done.id == second.id and done.status is S.COMPLETED
    assert [type(e) for e in seen] == [JobStarted, JobFinished]
    assert runner.run_job(second.id) is None, "it ran already: nothing to claim"
    assert [job.id for job in job_queue.list(status=S.QUEUED)] == [now.id, first.id]
    job_queue.cancel(now.id)
    assert runner.run_job(now.id) is None and job_queue.get(now.id).status is S.CANCELLED


def test_closing_the_app_interrupts_the_running_job_for_resume(
    job_queue: JobQueue, queue_path: Path, make_controller, make_config
) -> None:
    executor = FakeExecutor().block_at("txt2img", step=2)
    job, waiting = job_queue.add(make_config(), 2)
    runner, _seen = _runner(job_queue, make_controller(executor))
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.update(done=runner.run_next()))
    thread.start()
    assert executor.blocked.wait(10)
    assert runner.interrupt_current() is True
    thread.join(10)
    interrupted = box["done"]
    assert isinstance(interrupted, type(job)) and interrupted.id == job.id
    assert interrupted.status is S.INTERRUPTED and interrupted.outputs == ()
    assert interrupted.error == "the app was closed while this job was running"
    assert job_queue.get(waiting.id).status is S.QUEUED
    assert runner.interrupt_current() is False, "nothing runs now"
    job_queue.close()
    # The next start: the job is still interrupted, offered for resume, and runs once more.
    with JobQueue(queue_path) as reopened:
        assert [j.id for j in reopened.list(status=S.INTERRUPTED)] == [job.id]
        resumed = reopened.retry(job.id, front=True)
        assert resumed.status is S.QUEUED and resumed.attempts == 1
        again = SingleNodeJobRunner(reopened, make_controller()).run_next()
        assert again is not None and (again.id, again.status, again.attempts) == (job.id, S.COMPLETED, 2)


def test_a_cancel_wins_over_closing(job_queue: JobQueue, make_controller, make_config) -> None:
    executor = FakeExecutor().block_at("txt2img", step=2)
    job = job_queue.add(make_config())[0]
    runner, _seen = _runner(job_queue, make_controller(executor))
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.update(done=runner.run_next()))
    thread.start()
    assert executor.blocked.wait(10)
    assert runner.cancel(job.id) is True
    runner.interrupt_current()
    thread.join(10)
    assert job_queue.get(job.id).status is S.CANCELLED, "the user cancelled it before closing"
