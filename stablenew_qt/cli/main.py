"""The ``stablenew-qt`` parser and entry point. With no command the desktop app starts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import ConfigError
from ..core.options import ExitCode
from . import bench, convert, info, models, plan, queue, run
from .terminal import print_config_error

#: The command modules, in ``--help`` order; each has ``add_parser(subparsers)``.
COMMANDS = (plan, info, run, models, convert, bench, queue)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print_config_error(exc)
        return ExitCode.CONFIG_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
