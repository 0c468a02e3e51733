"""``stablenew-qt queue ...``: the durable job queue from the command line.

``add`` queues RunConfig files, ``list`` shows the queue, ``run`` works through it headless with
the real engine (the same EngineSession the window drives) until nothing is left to run;
``retry``, ``cancel``, ``remove``, ``move``, ``clear``, ``pause`` and ``resume`` change it, also
while another process runs it (the GUI or a ``queue run``). Every action takes ``--queue FILE``
(default: ``queue.sqlite3`` in the user data folder). Exit codes: 0 done, 1 a job failed or the
queue file cannot be used, 2 config error, 130 Ctrl-C.

``queue run`` leaves jobs that a crash interrupted as ``interrupted`` (listed, and retried with
``queue retry ID``) unless ``--resume-interrupted`` is given: then they run first, once more.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.config import load_run_config
from ..core.errors import shorten
from ..core.events import JobFinished, JobInterrupted, JobStarted, QueuePaused, SessionEvent, WorkersChanged
from ..core.files import FileRefused, user_path
from ..core.job import MAX_COPIES, Job, JobStatus
from ..core.options import ExitCode
from ..core.queue import JobQueue, QueueError, QueueMissing, default_queue_path
from ..core.sequencer import StageSequencer
from ..core.workers import WorkersSetting
from .engine_options import add_engine_options, add_output_options, learning_log, make_engine, output_settings
from .logs import first_line
from .queue_groups import (
    GroupRequest,
    add_group_options,
    add_group_parser,
    expand_request,
    queue_request,
    wants_group,
)
from .terminal import TextProgress, ctrl_c_cancels

_PROMPT_WIDTH = 48

Command = Callable[[argparse.Namespace], int]


def add_parser(subparsers: Any) -> None:
    """Register ``queue`` and its actions on the CLI's subparsers (``build_parser``'s ``sub``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--queue", metavar="FILE", help=f"the queue file (default: {default_queue_path()})")
    queue = subparsers.add_parser(
        "queue",
        help="the durable job queue: add, list, run, retry, cancel, remove, move, clear, pause, resume",
        description="A queue of runs that survives restarts and crashes (see docs/queue.md).",
    )
    actions = queue.add_subparsers(dest="queue_command", metavar="ACTION", required=True)

    def action(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help, parents=[common])
        parser.set_defaults(func=_reporting_queue_errors(func))
        return parser

    add = action("add", cmd_add, "queue a RunConfig JSON file (prints the new job ids)")
    add.add_argument("config", metavar="CONFIG.json", help="a RunConfig JSON file (see docs/run-config.md)")
    add.add_argument(
        "--count", type=_count, default=1, help=f"queue N copies, seeds stepping (1 to {MAX_COPIES:,}; 1)"
    )
    add.add_argument("--front", action="store_true", help="put it before every queued job")
    add.add_argument(
        "--priority", type=_priority, default=0, help=f"higher runs first (±{MAX_PRIORITY:,}; default 0)"
    )
    add_group_options(add)
    listing = action("list", cmd_list, "show the jobs: running, queued in run order, then history")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--status", choices=[s.value for s in JobStatus], action="append")
    listing.add_argument("--text", help="only jobs whose prompt, model or error contains this")
    listing.add_argument("--group", type=_job_id, metavar="ID", help="only the jobs of this group")
    run = action("run", cmd_run, "run the queued jobs headless until none is left (Ctrl-C cancels)")
    add_output_options(run)
    run.add_argument(
        "--resume-interrupted", action="store_true", help="first re-run jobs that a crash interrupted"
    )
    run.add_argument("--pause-on-failure", action="store_true", help="pause the queue when a job fails")
    run.add_argument(
        "--workers",
        metavar="local|N|ADDRESS",
        default="this",
        help="run jobs on Ray workers: 'local' (one per GPU), N workers, or a cluster ('auto', "
        "'ray://host:port'); default: this GPU, in this process (see docs/workers.md)",
    )
    add_engine_options(run)
    for name, func, text in (
        ("retry", cmd_retry, "queue a failed, cancelled or interrupted job again"),
        ("cancel", cmd_cancel, "cancel a queued job, or stop the running one"),
        ("remove", cmd_remove, "delete a job that is not running from the queue (its images stay)"),
    ):
        action(name, func, text).add_argument("id", type=_job_id, metavar="ID", help="the job id")
    move = action("move", cmd_move, "reorder a queued job")
    move.add_argument("id", type=_job_id, metavar="ID", help="the job id")
    move.add_argument("where", choices=("up", "down", "top"), help="one place up or down, or to the top")
    rate = action("rate", cmd_rate, "rate a job's images from 1 to 5 (0 clears the rating)")
    rate.add_argument("id", type=_job_id, metavar="ID", help="the job id")
    rate.add_argument(
        "rating", type=int, choices=range(6), metavar="N", help="1 (worst) to 5 (best), 0 clears"
    )
    action("clear", cmd_clear, "delete completed, failed and cancelled jobs (their images stay)")
    action("pause", cmd_pause, "start no further job (the running one finishes)")
    action("resume", cmd_resume, "start jobs again after a pause")
    add_group_parser(action, _job_id, _open)


#: Job ids are SQLite integers; a larger number names no job (and SQLite cannot hold it).
MAX_JOB_ID = 2**63 - 1
#: Priorities are ordering keys, not quantities: a million levels either way is plenty.
MAX_PRIORITY = 1_000_000


def _whole(text: str, low: int, high: int, what: str) -> int:
    """``text`` as a whole number from ``low`` to ``high``, checked before it is converted (so
    a 5,000-digit number costs nothing), or argparse's one-line usage error (exit 2)."""
    digits = text[1:] if text[:1] in "+-" else text
    ok = digits.isascii() and digits.isdigit() and len(digits) <= len(str(max(abs(low), high)))
    value = int(text) if ok else None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"{what} must be a whole number from {low:,} to {high:,}, got {shorten(text)!r}"
        )
    return value


def _count(text: str) -> int:
    return _whole(text, 1, MAX_COPIES, "the count")


def _priority(text: str) -> int:
    return _whole(text, -MAX_PRIORITY, MAX_PRIORITY, "the priority")


def _job_id(text: str) -> int:
    return _whole(text, 1, MAX_JOB_ID, "a job id")


def _reporting_queue_errors(func: Command) -> Command:
    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except QueueError as exc:
            print(f"error: {first_line(exc)}", file=sys.stderr)
            return ExitCode.FAILED

    return wrapper


def _open(args: argparse.Namespace, *, create: bool = False) -> JobQueue:
    """The queue ``--queue`` names; only the actions that add to it (or run it) create the
    file and its folder: ``list`` or ``cancel`` on a mistyped path must leave no trace."""
    return JobQueue(_queue_path(args), create=create)


def _queue_path(args: argparse.Namespace) -> Path:
    if not args.queue:
        return default_queue_path()
    try:
        return user_path(args.queue)
    except FileRefused as exc:
        raise QueueError(f"cannot use the queue file {shorten(args.queue)!r}: {exc}") from None


# -- actions -----------------------------------------------------------------------------------
def cmd_add(args: argparse.Namespace) -> int:
    config = load_run_config(args.config)
    StageSequencer().build_execution_plan(config)  # a config error now, not when the job runs
    request = expand_request(args, config) if wants_group(args) else GroupRequest([config])
    for each in request.configs[1:]:
        StageSequencer().build_execution_plan(each)
    with _open(args, create=True) as queue:
        if request.kind is not None:
            group = queue_request(queue, request, front=args.front, priority=args.priority)
            jobs = queue.group_jobs(group.id)
            print(f"group {group.id}: {group.label}, {len(jobs)} job(s)", file=sys.stderr)
        elif args.front:
            jobs = queue.add_front(request.configs[0], args.count)
        else:
            jobs = queue.add(request.configs[0], args.count, priority=args.priority)
    for job in jobs:
        print(job.id)
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    try:
        with _open(args) as queue:
            jobs = queue.list(status=args.status, text=args.text, group=args.group)
            paused, counts, groups = queue.paused, queue.counts(), queue.groups()
    except QueueMissing:  # nothing queued yet: an empty listing, and nothing created
        jobs, paused, counts, groups = [], False, {status: 0 for status in JobStatus}, []
    if args.json:
        data = {
            "paused": paused,
            "counts": {status.value: n for status, n in counts.items()},
            "jobs": [job.to_dict() for job in jobs],
            "groups": [group.to_dict() for group in groups],
        }
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return ExitCode.OK
    print(f"{'ID':>5}  {'STATUS':<11}  {'TRIES':>5}  {'GROUP':>5}  {'CREATED':<16}  {'MODEL':<20}  PROMPT")
    for job in jobs:
        print(_row(job))
    summary = ", ".join(f"{n} {status.value}" for status, n in counts.items() if n) or "empty"
    print(f"queue {summary}" + ("; paused" if paused else ""), file=sys.stderr)
    return ExitCode.OK


def _row(job: Job) -> str:
    prompt = " ".join(str(job.config_data.get("prompt", "")).split())
    if len(prompt) > _PROMPT_WIDTH:
        prompt = prompt[: _PROMPT_WIDTH - 3] + "..."
    group = "-" if job.group_id is None else str(job.group_id)
    line = (
        f"{job.id:>5}  {job.status.value:<11}  {job.attempts:>5}  {group:>5}  {job.created:%Y-%m-%d %H:%M}  "
        f"{job.model[:20]:<20}  {prompt}"
    )
    if job.error and job.status is not JobStatus.COMPLETED:
        line += f"\n{'':>7}{job.error.splitlines()[0]}"
    return line


def cmd_retry(args: argparse.Namespace) -> int:
    with _open(args) as queue:
        queue.retry(args.id)
    print(f"job {args.id} queued again", file=sys.stderr)
    return ExitCode.OK


def cmd_cancel(args: argparse.Namespace) -> int:
    with _open(args) as queue:
        running = queue.cancel(args.id)
        status = queue.get(args.id).status
    if running:
        print(f"job {args.id} is running: it stops at its next step", file=sys.stderr)
    else:
        print(f"job {args.id} is {status.value}", file=sys.stderr)
    return ExitCode.OK


def cmd_remove(args: argparse.Namespace) -> int:
    with _open(args) as queue:
        queue.remove(args.id)
    print(f"job {args.id} removed", file=sys.stderr)
    return ExitCode.OK


def cmd_move(args: argparse.Namespace) -> int:
    with _open(args) as queue:
        move = {"up": queue.move_up, "down": queue.move_down, "top": queue.move_to_top}[args.where]
        moved = move(args.id)
    print(f"job {args.id} {'moved' if moved else 'is there already'}", file=sys.stderr)
    return ExitCode.OK


def cmd_rate(args: argparse.Namespace) -> int:
    with _open(args) as queue:
        queue.rate(args.id, args.rating or None)
    print(f"job {args.id} " + (f"rated {args.rating}" if args.rating else "unrated"), file=sys.stderr)
    return ExitCode.OK


def cmd_clear(args: argparse.Namespace) -> int:
    with _open(args) as queue:
        count = queue.clear_finished()
    print(f"removed {count} finished job(s)", file=sys.stderr)
    return ExitCode.OK


def cmd_pause(args: argparse.Namespace) -> int:
    with _open(args, create=True) as queue:
        queue.pause()
    print("queue paused: no further job starts until `stablenew-qt queue resume`", file=sys.stderr)
    return ExitCode.OK


def cmd_resume(args: argparse.Namespace) -> int:
    with _open(args) as queue:
        queue.resume()
    print("queue resumed", file=sys.stderr)
    return ExitCode.OK


# -- queue run ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """Work through the queue with the real engine; Ctrl-C cancels the running job and stops."""
    from ..core.session import SessionOptions, open_session

    options = SessionOptions(
        output_settings(args),
        queue_path=_queue_path(args),
        fallback_to_temporary=False,  # the file is the point: a broken one is an error
        pause_on_failure=args.pause_on_failure,
        auto_resume=args.resume_interrupted,
        learning_log=learning_log(args),
    )
    engine = make_engine(args)
    log_path = args.logs.details()
    workers = WorkersSetting.parse(args.workers)  # ConfigError (exit 2) for a bad value
    job_runner = None
    if workers.enabled:  # only now is stablenew_qt.cluster (and, when the pool starts, Ray) imported
        from ..cluster import job_runner_factory

        job_runner = job_runner_factory(
            workers,
            engine.settings,
            save_intermediates=options.output.save_intermediates,
            pause_on_failure=options.pause_on_failure,
            auto_resume=options.auto_resume,
        )
        print(f"workers: {workers}", file=sys.stderr, flush=True)
    with open_session(engine, options, job_runner=job_runner) as session:
        session.subscribe(TextProgress(sys.stderr))
        session.subscribe(_Report())
        session.take_over_queue()
        stop = threading.Event()
        try:
            with ctrl_c_cancels(session.cancel, "cancelling the running job", stop.set):
                finished = session.run_queue(stop)
        except KeyboardInterrupt:  # a second Ctrl-C: the runner recorded the job as cancelled
            stop.set()
            finished = []
        left, paused = session.queue.counts()[JobStatus.QUEUED], session.queue.paused
    if paused and left:
        print(f"the queue is paused with {left} job(s) queued: `stablenew-qt queue resume`", file=sys.stderr)
    elif left:
        print(f"{left} job(s) left queued", file=sys.stderr)
    if stop.is_set():
        return ExitCode.CANCELLED
    if any(job.status is JobStatus.FAILED for job in finished):
        print(f"some jobs failed {log_path}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK


class _Report:
    """What ``queue run`` prints about jobs and workers (stderr; image paths on stdout). A worker's
    line is printed when its state or job changes, not for every progress update."""

    def __init__(self) -> None:
        self._workers: dict[str, tuple[object, ...]] = {}

    def __call__(self, event: SessionEvent) -> None:
        if isinstance(event, WorkersChanged):
            self._print_workers(event)
        elif isinstance(event, JobInterrupted | JobStarted | JobFinished | QueuePaused):
            _report(event)

    def _print_workers(self, event: WorkersChanged) -> None:
        for worker in event.workers:
            key = (worker.state, worker.job_id, worker.message, tuple(worker.resident))
            if self._workers.get(worker.worker_id) == key:
                continue
            self._workers[worker.worker_id] = key
            where = f"{worker.node} {worker.device}".strip()
            note = f": {worker.message}" if worker.message else ""
            running = f" job {worker.job_id}" if worker.job_id is not None else ""
            place = f" ({where})" if where else ""
            print(f"worker {worker.worker_id}{place} {worker.state.value}{running}{note}", file=sys.stderr)


def _report(event: JobInterrupted | JobStarted | JobFinished | QueuePaused) -> None:
    job = event.job
    if isinstance(event, JobInterrupted):
        advice = (
            "it runs again first"
            if event.resumed
            else f"`stablenew-qt queue retry {job.id}` runs it again (or use --resume-interrupted)"
        )
        print(f"job {job.id} was interrupted when the app stopped; {advice}", file=sys.stderr)
    elif isinstance(event, JobStarted):
        on = f" on worker {event.worker}" if event.worker else ""
        print(f"job {job.id}: started (attempt {job.attempts}){on}", file=sys.stderr, flush=True)
    elif isinstance(event, JobFinished):
        for path in job.outputs:
            print(path, flush=True)
        explained = job.status in (JobStatus.FAILED, JobStatus.INTERRUPTED) and job.error
        detail = f": {first_line(job.error)}" if explained and job.error else ""
        on = f" on worker {event.worker.split(' ', 1)[0]}" if event.worker else ""
        print(f"job {job.id}: {job.status.value}{on}{detail}", file=sys.stderr, flush=True)
    else:
        print(
            f"queue paused because job {job.id} failed; `stablenew-qt queue resume` to go on",
            file=sys.stderr,
        )
