"""DispatchingJobRunner over in-process workers (conftest.LocalWorker: the real worker side on a
FakeExecutor): jobs run exactly once across workers, model-aware placement, cancel, lost workers,
pause, Run now, closing, published files and their safety, crash recovery."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from job_records import job_record
from local_workers import ListPool, LocalWorker

from stablenew_qt.core import events as ev
from stablenew_qt.core.dispatch import DispatchingJobRunner, WorkerView, checkpoint_key, place
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.job import Job, JobStatus
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.workers import RemoteRunResult, WorkerInfo, WorkerState

S = JobStatus


def _dispatcher(queue: JobQueue, controller, workers, **options) -> tuple[DispatchingJobRunner, list]:
    runner = DispatchingJobRunner(queue, controller, ListPool(list(workers)), **options)
    seen: list = []
    runner.subscribe(seen.append)
    return runner, seen


def _run_in_thread(runner: DispatchingJobRunner, stop: threading.Event | None = None):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(runner.run_until_empty(stop)), daemon=True)
    thread.start()
    return thread, result


# -- placement (pure) --------------------------------------------------------------------------
def _job(job_id: int, model: str) -> Job:
    return job_record(job_id, json.dumps({"txt2img": {"model": model}}))


def test_checkpoint_key_matches_the_ways_a_model_is_named() -> None:
    assert checkpoint_key("SDXL\\JuggernautXL.safetensors [a1b2c3d4e5]") == checkpoint_key(
        "sdxl/juggernautXL"
    )
    assert checkpoint_key("a.ckpt") == "a" and checkpoint_key("a") != checkpoint_key("b")


def test_placement_prefers_resident_then_unclaimed_then_the_head() -> None:
    jobs = [_job(1, "A"), _job(2, "B"), _job(3, "C")]
    idle = WorkerView("w0")
    assert place(jobs, WorkerView("w0", frozenset({"b"})), []).id == 2, "its own resident model first"
    assert place(jobs, idle, [WorkerView("w1", frozenset({"a"}))]).id == 2, "A is held elsewhere"
    assert place(jobs, idle, [WorkerView("w1", loading="a"), WorkerView("w2", frozenset({"b"}))]).id == 3
    everywhere = [WorkerView("w1", frozenset({"a", "b", "c"}))]
    assert place(jobs, idle, everywhere).id == 1, "every model is held elsewhere: the head"
    assert place([], idle, []) is None


def test_a_head_passed_over_too_often_is_taken_next() -> None:
    jobs = [_job(1, "C"), _job(2, "A")]
    resident_a = WorkerView("w0", frozenset({"a"}))
    assert place(jobs, resident_a, [], head_passed=3, pass_limit=4).id == 2
    assert place(jobs, resident_a, [], head_passed=4, pass_limit=4).id == 1


# -- running -----------------------------------------------------------------------------------
def test_eight_jobs_complete_exactly_once_across_two_workers(job_queue, app_controller, make_config) -> None:
    workers = [LocalWorker("w0", step_delay=0.01), LocalWorker("w1", step_delay=0.01)]
    jobs = job_queue.add(make_config(), 8)
    runner, seen = _dispatcher(job_queue, app_controller, workers)
    finished = runner.run_until_empty()
    assert sorted(job.id for job in finished) == [job.id for job in jobs]
    assert all(job.status is S.COMPLETED and job.attempts == 1 for job in finished)
    ran = workers[0].jobs + workers[1].jobs
    assert sorted(ran) == [job.id for job in jobs], "each job ran on exactly one worker, once"
    assert workers[0].jobs and workers[1].jobs, "both workers were used"
    started = Counter(e.job.id for e in seen if isinstance(e, ev.JobStarted))
    assert set(started.values()) == {1}
    # Every job's images are published in the app's output folder, with its manifest naming the worker.
    output = app_controller.output.output_dir
    for job in finished:
        assert job.outputs and all(path.is_file() and path.is_relative_to(output) for path in job.outputs)
        manifest = json.loads((job.outputs[0].parent / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["run_id"] == job.run_id and manifest["status"] == "COMPLETED"
        worker = manifest["worker"]
        assert worker["node"] == "testhost" and worker["worker_id"] in ("w0", "w1")
        assert job.id in {"w0": workers[0].jobs, "w1": workers[1].jobs}[worker["worker_id"]]
    # The run events reach the listeners; RunCompleted names the published files, not a scratch folder.
    completed = [e for e in seen if isinstance(e, ev.RunCompleted)]
    assert len(completed) == 8
    assert all(path.is_file() and path.is_relative_to(output) for e in completed for path in e.image_paths)
    assert any(isinstance(e, ev.StepProgress) for e in seen)
    assert not list(output.rglob("*.partial")) and not list(output.rglob(".*.tmp"))


def test_two_workers_overlap(job_queue, app_controller, make_config) -> None:
    workers = [LocalWorker("w0", step_delay=0.02), LocalWorker("w1", step_delay=0.02)]
    job_queue.add(make_config(), 4)
    runner, seen = _dispatcher(job_queue, app_controller, workers)
    runner.run_until_empty()
    busy_at_once = 0
    for event in seen:
        if isinstance(event, ev.WorkersChanged):
            busy_at_once = max(busy_at_once, sum(w.state is WorkerState.BUSY for w in event.workers))
    assert busy_at_once == 2


def test_same_seed_gives_the_same_pixels_on_either_worker(job_queue, app_controller, make_config) -> None:
    workers = [LocalWorker("w0"), LocalWorker("w1")]
    config = make_config(seed=1234)
    first, second = job_queue.add(config), job_queue.add(config)
    runner, _seen = _dispatcher(job_queue, app_controller, workers)
    runner.run_until_empty()
    a, b = job_queue.get(first[0].id), job_queue.get(second[0].id)
    assert a.outputs[0].read_bytes() == b.outputs[0].read_bytes()


def test_model_aware_placement_loads_each_checkpoint_once_per_worker(
    job_queue, app_controller, make_config
) -> None:
    workers = [LocalWorker("w0", step_delay=0.005), LocalWorker("w1", step_delay=0.005)]
    for model in ("modelA", "modelB"):
        job_queue.add(make_config(txt2img={"model": model}), 4)
    runner, _seen = _dispatcher(job_queue, app_controller, workers)
    finished = runner.run_until_empty()
    assert len(finished) == 8 and all(job.status is S.COMPLETED for job in finished)
    loaded = [worker.engine.loaded for worker in workers]
    # Each worker loads each checkpoint at most once (a worker idle at the end may take the last
    # job of the other's model: one more load, never one per job); they start on different ones.
    assert all(max(Counter(models).values()) == 1 for models in loaded), loaded
    assert {loaded[0][0], loaded[1][0]} == {"modelA", "modelB"}, loaded
    assert sum(len(models) for models in loaded) <= 4, f"not one load per job (8): {loaded}"


def test_a_single_node_order_would_load_per_job(job_queue, app_controller, make_config) -> None:
    """The comparison the placement test stands on: alternating models on one worker reload each time."""
    worker = LocalWorker("w0")
    for _ in range(2):
        job_queue.add(make_config(txt2img={"model": "modelA"}))
        job_queue.add(make_config(txt2img={"model": "modelB"}))
    runner, _seen = _dispatcher(job_queue, app_controller, [worker])
    runner.run_until_empty()
    assert worker.engine.loads == 2, "placement reorders for a resident model: A, A, B, B"


# -- cancel, pause, run now, close -------------------------------------------------------------
def test_cancel_current_stops_the_running_jobs_within_a_step(job_queue, app_controller, make_config) -> None:
    worker = LocalWorker("w0", step_delay=0.05)
    job = job_queue.add(make_config(txt2img={"steps": 150}))[0]
    runner, _seen = _dispatcher(job_queue, app_controller, [worker])
    thread, result = _run_in_thread(runner, threading.Event())
    assert worker.started.wait(10)
    assert runner.cancel_current() is True
    thread.join(10)
    assert not thread.is_alive()
    done = job_queue.get(job.id)
    assert done.status is S.CANCELLED and done.outputs == ()
    assert worker.steps_after_cancel <= 2, "the step running when cancel arrived, at most one more"
    runs = app_controller.output.output_dir
    assert not runs.exists() or not [p for p in runs.rglob("*") if p.is_file()], "nothing written"
    assert result[0] and result[0][0].status is S.CANCELLED


def test_a_cancel_recorded_in_the_queue_reaches_the_worker(job_queue, app_controller, make_config) -> None:
    worker = LocalWorker("w0", step_delay=0.05)
    job = job_queue.add(make_config(txt2img={"steps": 150}))[0]
    runner, _seen = _dispatcher(job_queue, app_controller, [worker])
    thread, _result = _run_in_thread(runner)
    assert worker.started.wait(10)
    with JobQueue(job_queue.path, create=False) as other:  # `queue cancel ID` from another process
        assert other.cancel(job.id) is True
    thread.join(10)
    assert job_queue.get(job.id).status is S.CANCELLED and worker.cancels == 1


def test_pause_starts_nothing_new_and_run_job_runs_one_while_paused(
    job_queue, app_controller, make_config
) -> None:
    workers = [LocalWorker("w0"), LocalWorker("w1")]
    first, second = job_queue.add(make_config(), 2)
    job_queue.pause()
    runner, _seen = _dispatcher(job_queue, app_controller, workers)
    assert runner.run_until_empty() == []
    done = runner.run_job(second.id)
    assert done is not None and done.id == second.id and done.status is S.COMPLETED
    assert job_queue.get(first.id).status is S.QUEUED
    assert runner.run_job(second.id) is None, "not queued any more"


def test_pausing_while_running_lets_the_running_jobs_finish(job_queue, app_controller, make_config) -> None:
    workers = [LocalWorker("w0", step_delay=0.02), LocalWorker("w1", step_delay=0.02)]
    job_queue.add(make_config(txt2img={"steps": 10}), 6)
    runner, _seen = _dispatcher(job_queue, app_controller, workers)

    def pause_on_first_start(event) -> None:
        if isinstance(event, ev.JobStarted) and not job_queue.paused:
            job_queue.pause()

    runner.subscribe(pause_on_first_start)
    finished = runner.run_until_empty()
    assert len(finished) in (1, 2) and all(job.status is S.COMPLETED for job in finished)
    assert job_queue.counts()[S.QUEUED] == 6 - len(finished)


def test_interrupt_current_leaves_every_running_job_interrupted(
    job_queue, app_controller, make_config
) -> None:
    workers = [LocalWorker("w0", step_delay=0.05), LocalWorker("w1", step_delay=0.05)]
    jobs = job_queue.add(make_config(txt2img={"steps": 150}), 3)
    runner, _seen = _dispatcher(job_queue, app_controller, workers)
    thread, _result = _run_in_thread(runner)
    assert workers[0].started.wait(10) and workers[1].started.wait(10)
    assert runner.interrupt_current() is True
    thread.join(10)
    statuses = [job_queue.get(job.id).status for job in jobs]
    assert sorted(statuses) == [S.INTERRUPTED, S.INTERRUPTED, S.QUEUED], "the third never started"


def test_close_stops_the_pool(job_queue, app_controller, make_config) -> None:
    workers = [LocalWorker("w0")]
    job_queue.add(make_config())
    runner, _seen = _dispatcher(job_queue, app_controller, workers)
    runner.close()
    assert not workers[0].closed, "a pool never started is not stopped"
    runner.run_until_empty()
    runner.close()
    assert workers[0].closed and runner.pool.closed


# -- faults ------------------------------------------------------------------------------------
def test_a_worker_lost_mid_job_requeues_it_once_and_the_other_worker_finishes_all(
    job_queue, app_controller, make_config
) -> None:
    doomed, healthy = LocalWorker("w0", step_delay=0.01), LocalWorker("w1", step_delay=0.01)
    doomed.die_at_step = 2
    jobs = job_queue.add(make_config(txt2img={"steps": 5}), 4)
    runner, seen = _dispatcher(job_queue, app_controller, [doomed, healthy])
    finished = runner.run_until_empty()
    lost_job = doomed.jobs[0]
    assert len(doomed.jobs) == 1, "a lost worker gets no more jobs"
    assert sorted(job.id for job in finished) == [job.id for job in jobs]
    assert all(job_queue.get(job.id).status is S.COMPLETED for job in jobs)
    assert job_queue.get(lost_job).attempts == 2, "re-queued once: attempt 2 completed"
    assert healthy.jobs.count(lost_job) == 1
    interrupted = [e for e in seen if isinstance(e, ev.JobFinished) and e.job.status is S.INTERRUPTED]
    assert [e.job.id for e in interrupted] == [lost_job] and "died" in (interrupted[0].job.error or "")
    last = [e for e in seen if isinstance(e, ev.WorkersChanged)][-1]
    assert {w.worker_id: w.state for w in last.workers} == {"w0": WorkerState.LOST, "w1": WorkerState.IDLE}
    # Nothing of the lost run is in the output folder: each completed job has one run folder.
    folders = [p for p in app_controller.output.output_dir.glob("*/*") if p.is_dir()]
    assert len(folders) == 4


def test_a_job_lost_twice_stays_interrupted(job_queue, app_controller, make_config) -> None:
    first, second = LocalWorker("w0", step_delay=0.01), LocalWorker("w1", step_delay=0.01)
    first.die_at_step = second.die_at_step = 2
    job = job_queue.add(make_config(txt2img={"steps": 5}))[0]
    runner, _seen = _dispatcher(job_queue, app_controller, [first, second])
    finished = runner.run_until_empty()
    recorded = job_queue.get(job.id)
    assert recorded.status is S.INTERRUPTED and recorded.attempts == 2
    assert "tried before" in (recorded.error or "")
    assert finished == [recorded]
    with pytest.raises(ConfigError, match="every worker was lost"):
        runner.run_until_empty()


def test_workers_that_failed_to_start_are_reported_and_the_others_serve(
    job_queue, app_controller, make_config
) -> None:
    failed = WorkerInfo("w1", state=WorkerState.FAILED, message="no models folder /models on node b")
    pool = ListPool([LocalWorker("w0")], [failed])
    runner = DispatchingJobRunner(job_queue, app_controller, pool)
    seen: list = []
    runner.subscribe(seen.append)
    job_queue.add(make_config(), 2)
    assert all(job.status is S.COMPLETED for job in runner.run_until_empty())
    first = next(e for e in seen if isinstance(e, ev.WorkersChanged))
    assert [w.state for w in first.workers] == [WorkerState.IDLE, WorkerState.FAILED]
    assert first.workers[1].message == failed.message


def test_a_pool_that_cannot_start_is_one_clear_error(job_queue, app_controller, make_config) -> None:
    class NoWorkers(ListPool):
        def start(self):  # type: ignore[no-untyped-def]
            raise ConfigError("workers need Ray: pip install 'stablenew-qt[cluster]'", "workers")

    runner = DispatchingJobRunner(job_queue, app_controller, NoWorkers([]))
    seen: list = []
    runner.subscribe(seen.append)
    job = job_queue.add(make_config())[0]
    with pytest.raises(ConfigError, match="pip install"):
        runner.run_until_empty()
    assert job_queue.get(job.id).status is S.QUEUED, "nothing claimed, nothing lost"
    assert [w.state for w in seen[-1].workers] == [WorkerState.FAILED]


class _Forger:
    """A worker that sends back the files it likes (a worker is not trusted with paths)."""

    def __init__(self, files: dict[str, bytes], run_id: str = "120000-abcdef") -> None:
        self.files, self.run_id = files, run_id
        self.info = WorkerInfo("w0", node="evil", state=WorkerState.IDLE)

    def run(self, job, on_event, **_options) -> RemoteRunResult:  # type: ignore[no-untyped-def]
        return RemoteRunResult(
            self.run_id, LifecycleState.COMPLETED, "2026-12-03", self.files, worker_id="w0"
        )

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def _manifest(run_id: str = "120000-abcdef") -> bytes:
    return json.dumps({"run_id": run_id, "status": "COMPLETED", "images": ["00000-1.png"]}).encode()


@pytest.mark.parametrize(
    "name",
    ["../escape.png", "/etc/passwd", "sub/../../escape.png", "a\\..\\b.png", ".hidden.png", "a/b/c/d/e.png"],
)
def test_a_path_escaping_the_run_folder_is_refused_and_nothing_written(
    job_queue, app_controller, make_config, tmp_path: Path, name: str
) -> None:
    job = job_queue.add(make_config())[0]
    files = {"00000-1.png": b"png", "manifest.json": _manifest(), name: b"evil"}
    runner, seen = _dispatcher(job_queue, app_controller, [_Forger(files)])
    runner.run_until_empty()
    recorded = job_queue.get(job.id)
    assert recorded.status is S.FAILED and "refused" in (recorded.error or "")
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "queue.sqlite3"]
    assert written == [] or all("queue.sqlite3" in p.name for p in written), written
    assert not any(isinstance(e, ev.RunCompleted) for e in seen)


def test_a_manifest_for_another_run_is_refused(job_queue, app_controller, make_config) -> None:
    job = job_queue.add(make_config())[0]
    files = {"00000-1.png": b"png", "manifest.json": _manifest("999999-000000")}
    runner, _seen = _dispatcher(job_queue, app_controller, [_Forger(files)])
    runner.run_until_empty()
    assert job_queue.get(job.id).status is S.FAILED
    assert not app_controller.output.output_dir.exists() or not list(
        app_controller.output.output_dir.rglob("*.png")
    )


def test_an_existing_run_folder_is_never_overwritten(job_queue, app_controller, make_config) -> None:
    existing = app_controller.output.output_dir / "2026-12-03" / "120000-abcdef"
    existing.mkdir(parents=True)
    (existing / "00000-1.png").write_bytes(b"mine")
    job = job_queue.add(make_config())[0]
    files = {"00000-1.png": b"theirs", "manifest.json": _manifest()}
    runner, _seen = _dispatcher(job_queue, app_controller, [_Forger(files)])
    runner.run_until_empty()
    assert job_queue.get(job.id).status is S.FAILED
    assert (existing / "00000-1.png").read_bytes() == b"mine"


# -- crash recovery ----------------------------------------------------------------------------
def test_a_job_left_running_by_a_dead_dispatcher_is_recovered_as_today(
    job_queue, app_controller, make_config
) -> None:
    job = job_queue.add(make_config())[0]
    claimed = job_queue.claim(job.id)
    assert claimed is not None
    job_queue.record_run(job.id, "101010-aaaaaa", app_controller.output.output_dir)
    job_queue.close()  # the dispatcher's process died with the job running
    with JobQueue(job_queue.path) as reopened:
        runner = DispatchingJobRunner(
            reopened, app_controller, ListPool([LocalWorker("w0")]), auto_resume=True
        )
        found = runner.take_over_queue()
        assert [j.id for j in found] == [job.id]
        assert reopened.get(job.id).status is S.QUEUED, "auto-resume queued it again"
        finished = runner.run_until_empty()
        assert [(j.id, j.status, j.attempts) for j in finished] == [(job.id, S.COMPLETED, 2)]


def test_the_lifecycle_is_running_while_any_worker_runs_and_then_says_how_the_last_ended(
    job_queue, app_controller, make_config
) -> None:
    workers = [LocalWorker("w0", step_delay=0.01), LocalWorker("w1", step_delay=0.01)]
    job_queue.add(make_config(), 3)
    runner, seen = _dispatcher(job_queue, app_controller, workers)
    assert runner.state is LifecycleState.IDLE
    runner.run_until_empty()
    changes = [(e.old, e.new) for e in seen if isinstance(e, ev.LifecycleChanged)]
    assert changes[0] == (LifecycleState.IDLE, LifecycleState.RUNNING)
    assert changes[-1] == (LifecycleState.RUNNING, LifecycleState.COMPLETED)
    legal = {
        (LifecycleState.IDLE, LifecycleState.RUNNING),
        (LifecycleState.RUNNING, LifecycleState.COMPLETED),
        (LifecycleState.COMPLETED, LifecycleState.IDLE),
    }
    assert set(changes) <= legal, changes
    assert runner.state is LifecycleState.COMPLETED
    runner.return_to_idle()
    assert runner.state is LifecycleState.IDLE


def test_a_session_over_the_dispatcher_forwards_every_event(tmp_path: Path, make_config) -> None:
    from stablenew_qt.core.dispatch import dispatching
    from stablenew_qt.core.fake_executor import FakeExecutor
    from stablenew_qt.core.outputs import OutputSettings
    from stablenew_qt.core.session import SessionOptions, open_session

    pool = ListPool([LocalWorker("w0"), LocalWorker("w1")])
    options = SessionOptions(
        OutputSettings(tmp_path / "out"), queue_path=tmp_path / "q.sqlite3", pause_on_failure=True
    )
    with open_session(FakeExecutor(), options, job_runner=dispatching(pool)) as session:
        assert session.job_runner.pause_on_failure, "the session's option reaches the dispatcher"
        seen: list = []
        session.subscribe(seen.append)
        job = session.generate(make_config())
        assert job.status is S.COMPLETED and session.state is LifecycleState.COMPLETED
        kinds = {type(e) for e in seen}
        assert {ev.JobStarted, ev.RunStarted, ev.StepProgress, ev.RunCompleted, ev.JobFinished} <= kinds
        assert ev.WorkersChanged in kinds and ev.LifecycleChanged in kinds
    assert pool.closed, "closing the session stops the workers"


def test_the_session_output_setting_decides_whether_a_worker_keeps_intermediates(
    job_queue, tmp_path: Path, make_config
) -> None:
    from stablenew_qt.core.controller import AppController
    from stablenew_qt.core.fake_executor import FakeExecutor
    from stablenew_qt.core.outputs import OutputSettings
    from stablenew_qt.core.runner import PipelineRunner

    keeping = AppController(PipelineRunner(FakeExecutor(), OutputSettings(tmp_path / "runs", True)))
    job = job_queue.add(make_config(upscale={"enabled": True, "upscale_factor": 2}))[0]
    runner, _seen = _dispatcher(job_queue, keeping, [LocalWorker("w0")])
    runner.run_until_empty()
    done = job_queue.get(job.id)
    assert done.status is S.COMPLETED
    intermediates = list((done.outputs[0].parent / "intermediates").glob("*.png"))
    assert intermediates, "the stages' images were kept, as the session's setting asks"
