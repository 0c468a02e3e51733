"""Job groups: schema 3 migration, group operations, and a sweep's grid drawn once when its last
job ends — through the real JobQueue and SingleNodeJobRunner with the FakeExecutor, including
crashes between the cells and around the grid write."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.group_grid import insert_parameters
from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.job_runner import SingleNodeJobRunner
from stablenew_qt.core.queue import GridState, GroupKind, JobQueue, JobStatus, QueueError
from stablenew_qt.core.sweep import SWEEP_PLAN_KEY, SweepSpec, assemble_grids, build_sweep, sweep_cells

S = JobStatus
SPEC = {
    "x": {"type": "CFG Scale", "values": "4-8 (+2)"},
    "y": {"type": "Sampler", "values": "Euler, DPM++ 2M"},
}


def _add_sweep(queue: JobQueue, base: RunConfig, spec: dict = SPEC) -> tuple[int, tuple]:
    plan = build_sweep(base, SweepSpec.from_dict(spec), rng=random.Random(1))
    cells = sweep_cells(plan, base)
    group = queue.add_group(
        [c.config for c in cells],
        GroupKind.SWEEP,
        {"plan": plan.to_dict(), "base": base.model_dump(mode="json")},
        indices=[c.index for c in cells],
    )
    return group.id, cells


def _runner(queue: JobQueue, make_controller, executor: FakeExecutor | None = None, **kw):
    runner = SingleNodeJobRunner(queue, make_controller(executor), **kw)
    seen: list[ev.JobEvent] = []
    runner.subscribe(seen.append)
    return runner, seen


def _grids(out: Path) -> list[Path]:
    return sorted(out.rglob("xyz_grid-*.png"))


# -- schema ------------------------------------------------------------------------------------------
def test_a_schema_2_queue_file_is_migrated_and_keeps_its_jobs(queue_path: Path, make_config) -> None:
    from stablenew_qt.core.queue_db import _MIGRATIONS, APPLICATION_ID

    with sqlite3.connect(queue_path) as conn:
        for version in (1, 2):
            for statement in _MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 2")
        conn.execute(
            "INSERT INTO jobs (config, status, position, created) VALUES (?, 'queued', 1, ?)",
            (make_config(seed=3).to_json(indent=None), "2026-11-30T10:00:00+00:00"),
        )
    conn.close()
    with JobQueue(queue_path) as queue:
        [old] = queue.list()
        assert (old.status, old.config.seed, old.group_id, old.group_index, old.rating) == (
            S.QUEUED,
            3,
            None,
            None,
            None,
        )
        group = queue.add_group([make_config(seed=1)], "pack", {"label": "two"})
        assert [j.group_id for j in queue.list()] == [None, group.id]
        assert queue.next_job().id == old.id  # type: ignore[union-attr]
    with sqlite3.connect(queue_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


# -- operations --------------------------------------------------------------------------------------
def test_a_group_keeps_its_configs_and_indices_and_lists_by_group(job_queue: JobQueue, make_config) -> None:
    loose = job_queue.add(make_config())[0]
    configs = [make_config(seed=s, batch_size=2) for s in (10, 10, 30)]
    group = job_queue.add_group(configs, GroupKind.PACK, {"source": "p.txt"}, indices=[2, 0, 1])
    jobs = job_queue.list(group=group.id)
    assert [j.config.seed for j in jobs] == [10, 10, 30], "configs run as they are: no seed stepping"
    assert [j.group_index for j in jobs] == [2, 0, 1]
    assert [j.group_index for j in job_queue.group_jobs(group.id)] == [0, 1, 2]
    assert loose.id not in {j.id for j in jobs}
    assert (group.kind, group.meta, group.grid_state, group.paused) == (
        GroupKind.PACK,
        {"source": "p.txt"},
        None,
        False,
    )
    assert job_queue.groups() == [group]
    with pytest.raises(QueueError, match="distinct index"):
        job_queue.add_group(configs, "pack", indices=[0, 0, 1])
    with pytest.raises(QueueError, match="unknown group kind 'grid'"):
        job_queue.add_group(configs, "grid")
    with pytest.raises(QueueError, match="no group 99"):
        job_queue.group(99)


def test_a_paused_group_is_skipped_until_resumed(job_queue: JobQueue, make_config) -> None:
    group = job_queue.add_group([make_config(), make_config()], "wildcards")
    loose = job_queue.add(make_config())[0]
    job_queue.pause_group(group.id)
    assert job_queue.group(group.id).paused
    claimed = job_queue.next_job()
    assert claimed is not None and claimed.id == loose.id
    job_queue.mark_completed(claimed.id, "r", [])
    assert job_queue.next_job() is None
    job_queue.resume_group(group.id)
    assert job_queue.next_job().group_id == group.id  # type: ignore[union-attr]


def test_cancel_and_remove_a_group(job_queue: JobQueue, make_config) -> None:
    group = job_queue.add_group([make_config() for _ in range(3)], "pack")
    running = job_queue.next_job()
    assert running is not None
    assert job_queue.cancel_group(group.id) == running.id
    statuses = [j.status for j in job_queue.group_jobs(group.id)]
    assert statuses == [S.RUNNING, S.CANCELLED, S.CANCELLED]
    assert job_queue.cancel_requested(running.id)
    with pytest.raises(QueueError, match="is running"):
        job_queue.remove_group(group.id)
    job_queue.mark_cancelled(running.id)
    job_queue.remove_group(group.id)
    assert job_queue.list() == [] and job_queue.groups() == []


def test_a_group_moves_to_the_top_or_the_bottom_as_one_keeping_every_order(
    job_queue: JobQueue, make_config
) -> None:
    before = job_queue.add(make_config(), 2)
    group = job_queue.add_group([make_config() for _ in range(3)], "pack")
    after = job_queue.add(make_config())
    members = [j.id for j in job_queue.group_jobs(group.id)]
    singles = [before[0].id, before[1].id, after[0].id]
    seen: list[tuple[int, ...]] = []
    job_queue.subscribe(lambda event: seen.append(event.job_ids))

    def order() -> list[int]:
        return [j.id for j in job_queue.list(status=[S.QUEUED])]

    assert job_queue.move_group(group.id, top=True)
    assert order() == members + singles
    assert seen and set(seen[-1]) <= set(members + singles)
    assert not job_queue.move_group(group.id, top=True), "already first: nothing moves"
    assert job_queue.move_group(group.id, top=False)
    assert order() == singles + members
    job_queue.cancel(members[1])  # only the group's queued jobs move
    job_queue.move_to_top(after[0].id)
    assert job_queue.move_group(group.id, top=True)
    assert order() == [members[0], members[2], after[0].id, before[0].id, before[1].id]
    with pytest.raises(QueueError):
        job_queue.move_group(999)


# -- the grid ----------------------------------------------------------------------------------------
def test_a_sweep_runs_every_cell_and_writes_one_grid_with_a1111_infotext(
    job_queue: JobQueue, make_controller, make_config, tmp_path: Path
) -> None:
    base = make_config(seed=7)
    group_id, cells = _add_sweep(job_queue, base)
    runner, seen = _runner(job_queue, make_controller)
    finished = runner.run_until_empty()
    assert len(finished) == 6 and all(j.status is S.COMPLETED for j in finished)
    [grid] = _grids(tmp_path / "runs")
    group = job_queue.group(group_id)
    assert (group.grid_state, group.grid_paths) == (GridState.WRITTEN, (grid,))
    assert [type(e) for e in seen].count(ev.GroupFinished) == 1
    assert grid.parent == finished[0].outputs[0].parent.parent, "beside the cells' run folders"
    # The grid is the cells' images assembled by core/sweep, pixel for pixel.
    jobs = job_queue.group_jobs(group_id)
    images = {j.group_index: [Image.open(p).convert("RGB") for p in j.outputs] for j in jobs}
    plan = group.plan
    assert plan is not None
    expected = assemble_grids(plan, images, cells).main
    with Image.open(grid) as written:
        assert written.size == expected.size
        assert written.convert("RGB").tobytes() == expected.tobytes()
    meta = read_image_metadata(grid)
    first = read_image_metadata(jobs[0].outputs[0])
    params = meta.parameters or ""
    assert "Script: X/Y/Z plot, X Type: CFG Scale, X Values: 4-8 (+2), Y Type: Sampler, " in params
    assert 'Y Values: "Euler, DPM++ 2M", Version: ' in params
    keys = ", Script: X/Y/Z plot, X Type: CFG Scale, X Values: 4-8 (+2), Y Type: Sampler, "
    keys += 'Y Values: "Euler, DPM++ 2M"'
    assert params.replace(keys, "") == first.parameters, "the first cell's infotext plus the grid's keys"
    assert meta.run_config == first.run_config
    with Image.open(grid) as written:
        assert SWEEP_PLAN_KEY in written.info
    # Nothing is due any more: a later pass draws nothing.
    assert runner.finish_groups() == [] and len(_grids(tmp_path / "runs")) == 1


def test_a_failed_cell_is_a_placeholder_and_a_group_with_no_image_gets_no_grid(
    job_queue: JobQueue, make_controller, make_config, tmp_path: Path
) -> None:
    executor = FakeExecutor().fail_at("txt2img", "scripted", step=3)  # only the 3-step cell
    base = make_config(seed=7)
    spec = {"x": {"type": "Steps", "values": "1, 3"}}
    group_id, _ = _add_sweep(job_queue, base, spec)
    runner, _ = _runner(job_queue, make_controller, executor)
    assert [j.status for j in runner.run_until_empty()] == [S.COMPLETED, S.FAILED]
    assert job_queue.group(group_id).grid_state is GridState.WRITTEN
    assert len(_grids(tmp_path / "runs")) == 1
    other, _ = _add_sweep(job_queue, base, spec)
    job_queue.cancel_group(other)
    assert runner.run_next() is None  # nothing to run: the cancelled group is finished off
    group = job_queue.group(other)
    assert (group.grid_state, group.grid_error) == (GridState.NONE, "no cell made an image")
    assert len(_grids(tmp_path / "runs")) == 1


def test_a_crash_between_cells_then_resume_gives_every_cell_once_and_one_grid(
    queue_path: Path, make_controller, make_config, tmp_path: Path
) -> None:
    with JobQueue(queue_path) as queue:
        group_id, cells = _add_sweep(queue, make_config(seed=7))
        runner, _ = _runner(queue, make_controller)
        runner.run_next()
        runner.run_next()
        assert queue.next_job() is not None  # the third cell is running when the process dies
    with JobQueue(queue_path) as queue:
        runner, seen = _runner(queue, make_controller, auto_resume=True)
        runner.run_until_empty()
        jobs = queue.group_jobs(group_id)
        assert sorted(j.group_index for j in jobs) == sorted(c.index for c in cells)
        assert all(j.status is S.COMPLETED for j in jobs)
        assert sorted(j.attempts for j in jobs) == [1, 1, 1, 1, 1, 2]
        assert [type(e) for e in seen].count(ev.GroupFinished) == 1
    assert len(list((tmp_path / "runs").rglob("0*.png"))) == len(cells), "every cell's image once"
    assert len(_grids(tmp_path / "runs")) == 1


def test_a_crash_around_the_grid_write_never_draws_a_second_grid(
    queue_path: Path, make_controller, make_config, tmp_path: Path
) -> None:
    class Crash(BaseException):
        pass

    with JobQueue(queue_path) as queue:
        group_id, _ = _add_sweep(queue, make_config(seed=7))
        runner, _ = _runner(queue, make_controller)
        real = queue.record_grid

        def dies_after_writing(gid, state, paths=(), error=None):  # type: ignore[no-untyped-def]
            if state is GridState.WRITTEN:
                raise Crash  # the files are on disk, the queue never hears of it
            return real(gid, state, paths, error)

        queue.record_grid = dies_after_writing  # type: ignore[method-assign]
        with pytest.raises(Crash):
            runner.run_until_empty()
        reserved = queue.group(group_id)
        assert reserved.grid_state is GridState.WRITING and len(reserved.grid_paths) == 1
        assert reserved.grid_paths[0].is_file()
    with JobQueue(queue_path) as queue:
        runner, seen = _runner(queue, make_controller)
        runner.take_over_queue()
        group = queue.group(group_id)
        assert (group.grid_state, group.grid_paths) == (GridState.WRITTEN, reserved.grid_paths)
        assert [type(e) for e in seen] == [ev.GroupFinished]
    assert _grids(tmp_path / "runs") == list(reserved.grid_paths)


def test_a_reserved_grid_that_was_never_written_is_written_under_its_name(
    queue_path: Path, make_controller, make_config, tmp_path: Path
) -> None:
    with JobQueue(queue_path) as queue:
        group_id, _ = _add_sweep(queue, make_config(seed=7))
        runner, _ = _runner(queue, make_controller)
        original = runner.finish_groups
        runner.finish_groups = lambda: []  # type: ignore[method-assign]
        runner.run_until_empty()
        folder = queue.group_jobs(group_id)[0].outputs[0].parent.parent
        (folder / "xyz_grid-00000.png").write_bytes(b"someone else's grid")
        reserved = folder / "xyz_grid-00003.png"
        # The process died after reserving the name, before the file was written.
        queue.record_grid(group_id, GridState.WRITING, [reserved])
        runner.finish_groups = original  # type: ignore[method-assign]
        [group] = runner.finish_groups()
        assert group.grid_paths == (reserved,) and reserved.is_file()
    assert sorted(p.name for p in _grids(tmp_path / "runs")) == ["xyz_grid-00000.png", "xyz_grid-00003.png"]


def test_include_sub_grids_writes_each_z_grid_too(
    job_queue: JobQueue, make_controller, make_config, tmp_path: Path
) -> None:
    spec = {**SPEC, "z": {"type": "Steps", "values": "1, 2"}, "include_sub_grids": True}
    group_id, _ = _add_sweep(job_queue, make_config(seed=7), spec)
    runner, _ = _runner(job_queue, make_controller)
    runner.run_until_empty()
    paths = job_queue.group(group_id).grid_paths
    assert [p.name for p in paths] == ["xyz_grid-00000.png", "xyz_grid-00001.png", "xyz_grid-00002.png"]
    main, sub = (read_image_metadata(p).parameters or "" for p in paths[:2])
    assert 'Z Type: Steps, Z Values: "1, 2"' in main and "Z Type" not in sub and "X Type: CFG Scale" in sub


def test_insert_parameters_goes_before_version() -> None:
    text = "a cat\nNegative prompt: dog\nSteps: 3, Seed: 1, Version: stablenew-qt 0.1"
    assert insert_parameters(text, {"Script": "X/Y/Z plot", "X Values": "1, 2"}) == (
        'a cat\nNegative prompt: dog\nSteps: 3, Seed: 1, Script: X/Y/Z plot, X Values: "1, 2", '
        "Version: stablenew-qt 0.1"
    )
    assert insert_parameters("Steps: 3", {"Script": "x"}) == "Steps: 3, Script: x"
    assert insert_parameters(text, {}) == text


def test_a_rating_is_stored_with_the_job(job_queue: JobQueue, make_config) -> None:
    job = job_queue.add(make_config())[0]
    assert job.rating is None
    assert job_queue.rate(job.id, 4).rating == 4
    assert job_queue.get(job.id).to_dict()["rating"] == 4
    assert job_queue.rate(job.id, None).rating is None
    for bad in (0, 6, 2.5):
        with pytest.raises(QueueError, match="from 1 to 5"):
            job_queue.rate(job.id, bad)  # type: ignore[arg-type]
    with pytest.raises(QueueError, match="no job 99"):
        job_queue.rate(99, 3)


def test_a_prompt_matrix_group_writes_a_prompt_matrix_grid_without_script_keys(
    job_queue: JobQueue, make_controller, make_config, tmp_path: Path
) -> None:
    base = make_config(seed=7, prompt="a cat|hat|scarf", batch_size=2)
    group_id, cells = _add_sweep(job_queue, base, {"prompt_matrix": {}})
    assert [c.config.batch_size for c in cells] == [1, 1, 1, 1]
    runner, _ = _runner(job_queue, make_controller)
    runner.run_until_empty()
    [grid] = job_queue.group(group_id).grid_paths
    assert grid.name == "prompt_matrix-00000.png"
    first = job_queue.group_jobs(group_id)[0]
    assert read_image_metadata(grid).parameters == read_image_metadata(first.outputs[0]).parameters


def test_a_cell_with_a_batch_count_shows_its_images_as_a_batch_grid(
    job_queue: JobQueue, make_controller, make_config
) -> None:
    base = make_config(seed=7, batch_count=2)
    group_id, cells = _add_sweep(job_queue, base, {"x": {"type": "Steps", "values": "1, 2"}})
    runner, _ = _runner(job_queue, make_controller)
    runner.run_until_empty()
    jobs = job_queue.group_jobs(group_id)
    assert [len(j.outputs) for j in jobs] == [2, 2]
    assert [j.config.seed for j in jobs] == [7, 7], "each cell's images are seed, seed + 1"
    [grid] = job_queue.group(group_id).grid_paths
    plan = job_queue.group(group_id).plan
    assert plan is not None
    images = {j.group_index: [Image.open(p).convert("RGB") for p in j.outputs] for j in jobs}
    with Image.open(grid) as written:
        assert written.convert("RGB").tobytes() == assemble_grids(plan, images, cells).main.tobytes()


def test_clear_finished_drops_groups_left_without_jobs(job_queue: JobQueue, make_config) -> None:
    done = job_queue.add_group([make_config()], "pack")
    waiting = job_queue.add_group([make_config(), make_config()], "pack")
    job_queue.cancel_group(done.id)
    first = job_queue.group_jobs(waiting.id)[0]
    job_queue.cancel(first.id)
    assert job_queue.clear_finished() == 2
    assert [g.id for g in job_queue.groups()] == [waiting.id]
