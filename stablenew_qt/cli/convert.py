"""``stablenew-qt convert FILE``: a pickle checkpoint to ``.safetensors``, loaded weights-only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..core.options import ExitCode


def add_parser(subparsers: Any) -> None:
    convert = subparsers.add_parser(
        "convert",
        help="convert a pickle checkpoint (.ckpt/.pt/.bin) to .safetensors, loading it weights-only",
    )
    convert.add_argument("checkpoint", metavar="FILE", help="the .ckpt/.pt/.pth/.bin file")
    convert.add_argument("--output", metavar="FILE.safetensors", help="where to write (default: beside it)")
    convert.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from ..engine.errors import ModelError
    from ..engine.safety import convert_to_safetensors

    try:
        out = convert_to_safetensors(Path(args.checkpoint), Path(args.output) if args.output else None)
    except (ModelError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    print(out)
    return ExitCode.OK
