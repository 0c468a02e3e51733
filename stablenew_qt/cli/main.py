"""The ``stablenew-qt`` parser and entry point. With no command the desktop app starts.

Whatever goes wrong, the terminal gets one line that says what to do, never a traceback: config
errors exit 2, other errors 1 (the traceback goes to the log file), and a closed stdout (output
piped to ``head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..core.errors import ConfigError
from ..core.options import ExitCode
from . import bench, convert, info, models, plan, queue, run
from .logs import app_logging, first_line
from .terminal import print_config_error

#: The command modules, in ``--help`` order; each has ``add_parser(subparsers)``.
COMMANDS = (plan, info, run, models, convert, bench, queue)


class OneLineErrors(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``PROG: error: ...; see PROG --help``), exit 2:
    the usage block above it would bury the line that says what is wrong."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            ExitCode.CONFIG_ERROR, f"{self.prog}: error: {first_line(message)} (see {self.prog} --help)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="stablenew-qt",
        description="StableNew Qt: txt2img (SDXL refiner, hires fix), img2img, upscale and ADetailer "
        "in-process with diffusers. With no command, the desktop app starts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--models-dir",
        dest="window_models_dir",
        metavar="DIR",
        help="with no command: open the window on this A1111/Forge models folder (remembered)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from ..app import main as app_main  # the one way from the CLI into Qt: no command given

        return app_main(["--models-dir", args.window_models_dir] if args.window_models_dir else [])
    with app_logging(getattr(args, "verbose", False)) as logs:
        args.logs = logs
        try:
            code = int(args.func(args))
            sys.stdout.flush()
        except ConfigError as exc:
            print_config_error(exc)
            return ExitCode.CONFIG_ERROR
        except KeyboardInterrupt:  # Ctrl-C outside a run (which handles its own)
            sys.stderr.write("interrupted\n")
            return ExitCode.CANCELLED
        except BrokenPipeError:  # stdout was closed early (`... | head`): nothing left to say
            _silence_stdout()
            return ExitCode.FAILED
        except Exception as exc:  # a bug or a case nobody foresaw: one line here, details in the log
            logs.record_unexpected(exc)
            message = first_line(exc) or "no message"
            sys.stderr.write(f"error: unexpected {type(exc).__name__}: {message} {logs.details()}\n")
            return ExitCode.FAILED
    return code


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test's capture)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
