"""JobQueue: ordering, reordering, pause/resume, retry, seeds of copies, recovery after a crash,
operations from other threads while a job runs, and files it must refuse without losing them."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from stablenew_qt.core.config import MAX_SEED
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job_runner import SingleNodeJobRunner
from stablenew_qt.core.queue import (
    JobQueue,
    JobStatus,
    QueueChanged,
    QueueError,
    QueueLocked,
    stepped_copies,
)

S = JobStatus


def _queued_ids(queue: JobQueue) -> list[int]:
    return [job.id for job in queue.list(status=S.QUEUED)]


# -- adding and ordering -----------------------------------------------------------------------
def test_jobs_run_in_the_order_added_and_keep_their_config(job_queue: JobQueue, make_config) -> None:
    configs = [make_config(prompt=f"job {i}", seed=i) for i in range(3)]
    ids = [job_queue.add(config)[0].id for config in configs]
    assert _queued_ids(job_queue) == ids
    claimed = job_queue.next_job()
    assert claimed is not None and claimed.id == ids[0]
    assert (claimed.status, claimed.attempts, claimed.config) == (S.RUNNING, 1, configs[0])
    assert claimed.started is not None and claimed.started.utcoffset() is not None
    assert job_queue.next_job() is None, "one job at a time: nothing is claimed while one runs"


def test_add_front_runs_next_and_priority_runs_first(job_queue: JobQueue, make_config) -> None:
    a, b = job_queue.add(make_config(), 2)
    urgent = job_queue.add(make_config(), priority=5)[0]
    now = job_queue.add_front(make_config())[0]
    assert _queued_ids(job_queue) == [now.id, urgent.id, a.id, b.id]
    assert job_queue.next_job().id == now.id  # type: ignore[union-attr]


def test_add_count_steps_seeds_by_batch_size(job_queue: JobQueue, make_config) -> None:
    jobs = job_queue.add(make_config(seed=100, batch_size=4, img2img={"seed": 7}), count=3)
    assert [job.config.seed for job in jobs] == [100, 104, 108]
    assert [job.config.img2img.seed for job in jobs] == [7, 11, 15]
    assert [job.id for job in jobs] == _queued_ids(job_queue)


def test_a_random_seed_stays_random_in_every_copy(make_config) -> None:
    copies = stepped_copies(make_config(seed=-1, batch_size=2, img2img={"seed": -1}), 3)
    assert [(c.seed, c.img2img.seed) for c in copies] == [(-1, -1)] * 3


def test_with_a_variation_seed_copies_step_the_variation_seed_not_the_seed(make_config) -> None:
    # A1111's batch count with variation on: all_seeds keep the seed, all_subseeds step.
    config = make_config(seed=9, batch_size=2, subseed=100, subseed_strength=0.3, img2img={"seed": 40})
    copies = stepped_copies(config, 3)
    assert [(c.seed, c.subseed, c.img2img.seed) for c in copies] == [(9, 100, 40), (9, 102, 40), (9, 104, 40)]


def test_stepped_seeds_wrap_like_batch_seeds(make_config) -> None:
    assert [c.seed for c in stepped_copies(make_config(seed=MAX_SEED), 2)] == [MAX_SEED, 0]
    with pytest.raises(ValueError, match="from 1 to 10,000"):
        stepped_copies(make_config(), 0)


def test_move_up_down_to_top_and_to_an_index(job_queue: JobQueue, make_config) -> None:
    a, b, c, d = (job.id for job in job_queue.add(make_config(), 4))
    assert job_queue.move_up(c) and _queued_ids(job_queue) == [a, c, b, d]
    assert job_queue.move_down(a) and _queued_ids(job_queue) == [c, a, b, d]
    assert job_queue.move_to_top(d) and _queued_ids(job_queue) == [d, c, a, b]
    assert job_queue.move_to(d, 99) and _queued_ids(job_queue) == [c, a, b, d]
    assert not job_queue.move_up(c) and not job_queue.move_down(d) and not job_queue.move_to_top(c)
    assert job_queue.next_job().id == c  # type: ignore[union-attr]


def test_only_queued_jobs_move(job_queue: JobQueue, make_config) -> None:
    first, _second = job_queue.add(make_config(), 2)
    job_queue.next_job()
    with pytest.raises(QueueError, match=f"cannot move job {first.id}: it is running"):
        job_queue.move_down(first.id)
    with pytest.raises(QueueError, match="there is no job 99"):
        job_queue.move_up(99)


def test_a_moved_job_survives_a_restart_in_its_place(queue_path: Path, make_config) -> None:
    with JobQueue(queue_path) as queue:
        a, b, c = (job.id for job in queue.add(make_config(), 3))
        queue.move_to_top(c)
    with JobQueue(queue_path) as queue:
        assert _queued_ids(queue) == [c, a, b]


# -- pause, cancel, retry, remove, clear -------------------------------------------------------
def test_pause_stops_claims_and_persists(queue_path: Path, make_config) -> None:
    with JobQueue(queue_path) as queue:
        queue.add(make_config(), 2)
        queue.pause()
        assert queue.paused and queue.next_job() is None
    with JobQueue(queue_path) as queue:
        assert queue.paused and queue.next_job() is None
        queue.resume()
        assert not queue.paused
        job = queue.next_job()
        assert job is not None and job.status is S.RUNNING


def test_cancel_a_queued_job_or_flag_the_running_one(job_queue: JobQueue, make_config) -> None:
    running, queued = job_queue.add(make_config(), 2)
    job_queue.next_job()
    assert job_queue.cancel(queued.id) is False
    assert job_queue.get(queued.id).status is S.CANCELLED
    assert job_queue.cancel(running.id) is True, "True: the runner must stop it"
    assert job_queue.get(running.id).status is S.RUNNING and job_queue.cancel_requested(running.id)
    cancelled = job_queue.mark_cancelled(running.id)
    assert cancelled.status is S.CANCELLED and not cancelled.cancel_requested
    assert job_queue.cancel(running.id) is False, "an ended job is left alone"


def test_retry_requeues_at_the_end_and_keeps_attempts(job_queue: JobQueue, make_config) -> None:
    failed, cancelled, waiting = job_queue.add(make_config(), 3)
    job_queue.next_job()
    job_queue.mark_failed(failed.id, "txt2img: model missing")
    job_queue.cancel(cancelled.id)
    job = job_queue.retry(failed.id)
    assert (job.status, job.attempts, job.error) == (S.QUEUED, 1, None)
    job_queue.retry(cancelled.id, front=True)
    assert _queued_ids(job_queue) == [cancelled.id, waiting.id, failed.id]
    with pytest.raises(QueueError, match="only cancelled, failed, interrupted jobs can"):
        job_queue.retry(waiting.id)


def test_completed_jobs_cannot_be_retried_but_can_be_added_again(job_queue: JobQueue, make_config) -> None:
    job = job_queue.add(make_config())[0]
    job_queue.next_job()
    done = job_queue.mark_completed(job.id, "120000-abcdef", [Path("/out/00000-1.png")])
    with pytest.raises(QueueError, match="it is completed"):
        job_queue.retry(job.id)
    again = job_queue.add(done.config)[0]
    assert again.config == done.config and again.id != job.id


def test_remove_deletes_all_but_the_running_job(job_queue: JobQueue, make_config) -> None:
    running, queued = job_queue.add(make_config(), 2)
    job_queue.next_job()
    job_queue.remove(queued.id)
    assert [job.id for job in job_queue.list()] == [running.id]
    with pytest.raises(QueueError, match=r"cannot remove job .*: it is running"):
        job_queue.remove(running.id)


def test_clear_finished_keeps_queued_running_and_interrupted(queue_path: Path, make_config) -> None:
    with JobQueue(queue_path) as crashed:
        interrupted = crashed.add(make_config())[0]
        crashed.next_job()  # then the "process dies": the job is left running
    with JobQueue(queue_path) as queue:
        queue.recover_interrupted()
        done, failed, cancelled, running, queued = queue.add(make_config(), 5)
        for job_id, finish in (
            (done.id, lambda i: queue.mark_completed(i, "r", [])),
            (failed.id, lambda i: queue.mark_failed(i, "boom")),
            (cancelled.id, queue.mark_cancelled),
        ):
            assert queue.next_job().id == job_id  # type: ignore[union-attr]
            finish(job_id)
        assert queue.next_job().id == running.id  # type: ignore[union-attr]
        assert queue.clear_finished() == 3
        left = {job.id: job.status for job in queue.list()}
        assert left == {interrupted.id: S.INTERRUPTED, running.id: S.RUNNING, queued.id: S.QUEUED}


# -- reading -----------------------------------------------------------------------------------
def test_list_filters_by_status_and_text_and_counts(job_queue: JobQueue, make_config) -> None:
    cat = job_queue.add(make_config(prompt="A Cat in the rain"))[0]
    dog = job_queue.add(make_config(prompt="a dog", txt2img={"model": "dreamy-XL"}))[0]
    job_queue.next_job()
    job_queue.mark_failed(cat.id, "txt2img: model missing")
    assert [j.id for j in job_queue.list(text="cat")] == [cat.id]
    assert [j.id for j in job_queue.list(text="DREAMY")] == [dog.id]
    assert [j.id for j in job_queue.list(text="missing")] == [cat.id]
    assert [j.id for j in job_queue.list(status="failed")] == [cat.id]
    assert [j.id for j in job_queue.list(status=[S.QUEUED, S.FAILED])] == [dog.id, cat.id]
    counts = job_queue.counts()
    assert (counts[S.FAILED], counts[S.QUEUED], counts[S.COMPLETED]) == (1, 1, 0)
    with pytest.raises(QueueError, match="valid statuses: queued, running"):
        job_queue.list(status="done")


def test_a_completed_record_survives_reopening(queue_path: Path, make_config, tmp_path: Path) -> None:
    image = tmp_path / "00000-1234.png"
    with JobQueue(queue_path) as queue:
        job = queue.add(make_config())[0]
        queue.next_job()
        queue.mark_completed(job.id, "120000-abcdef", [image])
    with JobQueue(queue_path) as queue:
        done = queue.get(job.id)
    assert (done.status, done.run_id, done.outputs, done.attempts) == (
        S.COMPLETED,
        "120000-abcdef",
        (image,),
        1,
    )
    assert done.finished is not None and done.started is not None and done.finished >= done.started


def test_listeners_hear_every_change(job_queue: JobQueue, make_config) -> None:
    heard: list[QueueChanged] = []
    unsubscribe = job_queue.subscribe(heard.append)
    job = job_queue.add(make_config())[0]
    job_queue.pause()
    job_queue.cancel(job.id)
    unsubscribe()
    job_queue.resume()
    assert heard == [QueueChanged((job.id,)), QueueChanged(()), QueueChanged((job.id,))]


# -- crash recovery and the runner lock --------------------------------------------------------
def test_a_job_left_running_is_interrupted_on_recovery(queue_path: Path, make_config) -> None:
    with JobQueue(queue_path) as crashed:
        first, second = crashed.add(make_config(), 2)
        crashed.next_job()  # the process dies here: nothing marks the job
    with JobQueue(queue_path) as queue:
        assert queue.get(first.id).status is S.RUNNING, "opening alone never touches the running job"
        (interrupted,) = queue.recover_interrupted()
        assert (interrupted.id, interrupted.status, interrupted.attempts) == (first.id, S.INTERRUPTED, 1)
        assert "stopped while this job was running" in (interrupted.error or "")
        assert queue.get(second.id).status is S.QUEUED
        assert queue.recover_interrupted() == [], "reported once"
        assert queue.next_job().id == second.id  # type: ignore[union-attr]


def test_auto_resume_requeues_interrupted_jobs_at_the_front(queue_path: Path, make_config) -> None:
    with JobQueue(queue_path) as crashed:
        first, second = crashed.add(make_config(), 2)
        crashed.next_job()
    with JobQueue(queue_path) as queue:
        (resumed,) = queue.recover_interrupted(auto_resume=True)
        assert resumed.status is S.QUEUED and _queued_ids(queue) == [first.id, second.id]
        again = queue.next_job()
        assert again is not None and (again.id, again.attempts) == (first.id, 2)


def test_only_one_queue_runs_jobs_and_others_leave_its_job_alone(queue_path: Path, make_config) -> None:
    with JobQueue(queue_path) as runner, JobQueue(queue_path) as other:
        job = runner.add(make_config(), 2)[0]
        runner.next_job()
        with pytest.raises(QueueLocked, match="already being run by process"):
            other.next_job()
        with pytest.raises(QueueLocked):
            other.recover_interrupted()
        other.add(make_config())
        assert other.get(job.id).status is S.RUNNING
        assert other.cancel(job.id) is True and runner.cancel_requested(job.id)


def test_queue_operations_work_while_a_job_runs(job_queue: JobQueue, make_controller, make_config) -> None:
    executor = FakeExecutor().block_at("txt2img", step=2)
    runner = SingleNodeJobRunner(job_queue, make_controller(executor))
    running, doomed = job_queue.add(make_config(), 2)
    thread = threading.Thread(target=runner.run_next)
    thread.start()
    try:
        assert executor.blocked.wait(10)
        added = [job_queue.add(make_config(seed=s))[0].id for s in (1, 2)]
        assert job_queue.cancel(doomed.id) is False
        assert job_queue.move_to_top(added[1])
        job_queue.pause()
        assert job_queue.get(running.id).status is S.RUNNING
        assert runner.cancel(running.id) is True
    finally:
        thread.join(10)
    assert job_queue.get(running.id).status is S.CANCELLED
    assert job_queue.get(doomed.id).status is S.CANCELLED
    assert _queued_ids(job_queue) == [added[1], added[0]] and job_queue.paused


def test_concurrent_adds_from_many_threads_keep_a_strict_order(job_queue: JobQueue, make_config) -> None:
    config = make_config()

    def add_many() -> None:
        for _ in range(20):
            job_queue.add(config)
            job_queue.add_front(config)

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    jobs = job_queue.list()
    keys = {(job.priority, job.position) for job in jobs}
    assert len(jobs) == 160 and len(keys) == 160, "every job has its own place"


# -- files the queue must refuse ---------------------------------------------------------------
def _only_backup(folder: Path) -> Path:
    (backup,) = folder.glob("queue.sqlite3.backup-*")
    return backup


def test_a_file_that_is_not_a_database_is_refused_and_backed_up(queue_path: Path) -> None:
    garbage = b"not a database at all\n" * 50
    queue_path.write_bytes(garbage)
    with pytest.raises(QueueError, match="is not a SQLite database") as info:
        JobQueue(queue_path)
    backup = _only_backup(queue_path.parent)
    assert queue_path.read_bytes() == garbage and backup.read_bytes() == garbage
    assert str(backup) in str(info.value) and "move it away" in str(info.value)


def test_a_damaged_database_is_refused_and_backed_up(queue_path: Path, make_config) -> None:
    with JobQueue(queue_path) as queue:
        queue.add(make_config(prompt="x" * 500), 40)
    data = bytearray(queue_path.read_bytes())
    data[8192:12288] = b"\xff" * 4096  # one page of the jobs table, header intact
    queue_path.write_bytes(bytes(data))
    with pytest.raises(QueueError, match=r"malformed|damaged"):
        JobQueue(queue_path)
    assert queue_path.read_bytes() == bytes(data)
    assert _only_backup(queue_path.parent).read_bytes() == bytes(data)


def test_a_queue_from_a_newer_version_is_refused_and_backed_up(queue_path: Path, make_config) -> None:
    with JobQueue(queue_path) as queue:
        queue.add(make_config())
    with sqlite3.connect(queue_path) as conn:
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    original = queue_path.read_bytes()
    with pytest.raises(
        QueueError, match=r"newer StableNew Qt \(queue schema 7; this version reads schema 3\)"
    ):
        JobQueue(queue_path)
    assert queue_path.read_bytes() == original
    assert _only_backup(queue_path.parent).read_bytes() == original


def test_another_programs_database_is_refused_untouched(queue_path: Path) -> None:
    with sqlite3.connect(queue_path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    original = queue_path.read_bytes()
    with pytest.raises(QueueError, match="database of another program"):
        JobQueue(queue_path)
    assert queue_path.read_bytes() == original
    assert not list(queue_path.parent.glob("*.backup-*"))


def test_a_new_queue_file_is_wal_with_a_schema_version(queue_path: Path) -> None:
    JobQueue(queue_path).close()
    with sqlite3.connect(queue_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_schema_1_queue_file_is_migrated_and_keeps_its_jobs(queue_path: Path, make_config) -> None:
    """A queue written before failures carried causes opens as it was, and records causes from then on."""
    from stablenew_qt.core.errors import FailureCause, FailureKind
    from stablenew_qt.core.queue_db import _MIGRATIONS, APPLICATION_ID

    with sqlite3.connect(queue_path) as conn:
        for statement in _MIGRATIONS[1].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO jobs (config, status, position, created, error) VALUES (?, 'failed', 1, ?, 'boom')",
            (make_config().to_json(indent=None), "2026-11-25T10:00:00+00:00"),
        )
    conn.close()
    with JobQueue(queue_path) as queue:
        [old] = queue.list()
        assert (old.status, old.error, old.cause) == (S.FAILED, "boom", None)
        retried = queue.retry(old.id)
        claimed = queue.claim(retried.id)
        assert claimed is not None
        cause = FailureCause(FailureKind.OUT_OF_MEMORY, "txt2img: out of memory", "txt2img")
        assert queue.mark_failed(claimed.id, cause).cause == cause
    with sqlite3.connect(queue_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()


# -- history: filters and re-queueing ---------------------------------------------------------------
def test_history_filters_by_model_and_date(job_queue: JobQueue, make_config) -> None:
    from datetime import datetime, timedelta

    a = job_queue.add(make_config(txt2img={"model": "alpha.safetensors"}))[0]
    b = job_queue.add(make_config(txt2img={"model": "beta.safetensors"}))[0]
    assert [j.id for j in job_queue.list(model="alpha.safetensors")] == [a.id]
    assert [j.id for j in job_queue.list(model="beta.safetensors", status=S.QUEUED)] == [b.id]
    assert job_queue.list(model="gamma") == []
    now = datetime.now().astimezone()
    assert {j.id for j in job_queue.list(since=now - timedelta(minutes=5))} == {a.id, b.id}
    assert job_queue.list(since=now + timedelta(minutes=5)) == []
    assert job_queue.list(until=now - timedelta(minutes=5)) == []
    claimed = job_queue.next_job()
    assert claimed is not None
    done = job_queue.mark_failed(claimed.id, "scripted")
    assert done.finished is not None and done.when == done.finished
    assert job_queue.list(status=S.FAILED, until=done.finished) == []
    assert [j.id for j in job_queue.list(status=S.FAILED, since=done.finished)] == [a.id]


def test_requeue_as_is_or_with_a_new_seed_keeps_the_history(job_queue: JobQueue, make_config) -> None:
    original = job_queue.add(make_config(seed=42, img2img={"seed": 7}))[0]
    claimed = job_queue.next_job()
    assert claimed is not None
    job_queue.mark_completed(claimed.id, "run1", [])
    same = job_queue.requeue(original.id)
    fresh = job_queue.requeue(original.id, new_seed=True, front=True)
    assert job_queue.get(original.id).status is S.COMPLETED, "the finished record stays in the history"
    assert same.config == original.config and same.status is S.QUEUED
    assert fresh.config.seed not in (42, -1) and 0 <= fresh.config.seed <= MAX_SEED
    assert fresh.config.img2img.seed not in (7, None, -1)
    assert fresh.config.model_copy(update={"seed": 42, "img2img": original.config.img2img}) == original.config
    assert _queued_ids(job_queue) == [fresh.id, same.id]
    with pytest.raises(QueueError, match="no job 999"):
        job_queue.requeue(999)


def test_with_new_seed_leaves_a_following_img2img_seed_alone(make_config) -> None:
    import random

    from stablenew_qt.core.job import with_new_seed

    config = with_new_seed(make_config(seed=-1), random.Random(3))
    assert config.seed == random.Random(3).randint(0, MAX_SEED) and config.img2img.seed is None


def test_add_count_steps_seeds_past_a_batch_count(job_queue: JobQueue, make_config) -> None:
    jobs = job_queue.add(make_config(seed=100, batch_size=2, batch_count=3), count=2)
    assert [job.config.seed for job in jobs] == [100, 106]
