"""``stablenew-qt run CONFIG.json``: one job through the same EngineSession the window drives.

The config becomes a job in a temporary queue and runs at once; progress goes to stderr, the image
paths to stdout. Exit codes (:class:`~stablenew_qt.core.options.ExitCode`): 0 done, 1 run error
(one readable line; details in the log file), 2 config error (nothing loaded or written), 130 Ctrl-C
(the run is cancelled within one denoising step and nothing partial is written).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..core.config import load_run_config
from ..core.errors import FailureKind
from ..core.job import Job, JobStatus
from ..core.options import ExitCode
from ..core.session import SessionOptions, open_session
from .engine_options import add_engine_options, add_output_options, learning_log, make_engine, output_settings
from .logs import AppLogs, first_line
from .terminal import TextProgress, ctrl_c_cancels


def add_parser(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run a RunConfig headless and write its images")
    run.add_argument("config", metavar="CONFIG.json", help="a RunConfig JSON file (see docs/run-config.md)")
    add_output_options(run)
    add_engine_options(run)
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_run_config(args.config)
    options = SessionOptions(output_settings(args), queue_path=None, learning_log=learning_log(args))
    engine = make_engine(args)  # checks --trust-model files: a config error before anything runs
    args.logs.open()  # opens the log file now: a fallback is announced before the progress lines
    with open_session(engine, options) as session:
        session.subscribe(TextProgress(sys.stderr))
        try:
            with ctrl_c_cancels(session.cancel, "cancelling"):
                job = session.generate(config)  # ConfigError before anything is loaded: exit 2
        except KeyboardInterrupt:  # a second Ctrl-C: the job was recorded as cancelled
            job = None
    return report(job, args.logs)


def report(job: Job | None, logs: AppLogs) -> int:
    """Print how the job ended and return the exit code."""
    if job is not None and job.status is JobStatus.COMPLETED:
        for path in job.outputs:
            print(path)
        return ExitCode.OK
    if job is None or job.status is JobStatus.CANCELLED:
        sys.stderr.write("cancelled: nothing was saved\n")
        return ExitCode.CANCELLED
    sys.stderr.write(f"error: {first_line(job.error)} {logs.details()}\n")
    config_problem = job.cause is not None and job.cause.kind is FailureKind.CONFIG
    return ExitCode.CONFIG_ERROR if config_problem else ExitCode.FAILED
