"""``stablenew-qt``: the headless face of the same core the desktop window drives.

Commands: ``plan CONFIG.json`` prints the stage plan (or the config error, exit code 2);
``info IMAGE`` prints an image's infotext and embedded RunConfig as JSON. With no command the
desktop app starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .core.config import load_run_config
from .core.errors import ConfigError
from .core.infotext import infotext_to_config, parse_infotext, read_image_metadata
from .core.sequencer import StageSequencer

EXIT_CONFIG_ERROR = 2


def _config_error(exc: ConfigError) -> int:
    print("Config Error:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_CONFIG_ERROR


def cmd_plan(args: argparse.Namespace) -> int:
    config = load_run_config(args.config)
    plan = StageSequencer().build_execution_plan(config)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    meta = read_image_metadata(args.image)
    if meta.parameters is None and meta.run_config is None:
        raise ConfigError(f"{args.image} carries no generation parameters")
    out: dict[str, object] = {"parameters": meta.parameters}
    if meta.parameters is not None:
        parsed = parse_infotext(meta.parameters)
        out["parsed"] = {
            "prompt": parsed.prompt,
            "negative_prompt": parsed.negative_prompt,
            "params": parsed.params,
        }
        try:
            out["config_from_parameters"] = infotext_to_config(parsed).model_dump(mode="json")
        except ConfigError as exc:
            out["config_from_parameters_error"] = str(exc)
    out["run_config"] = meta.run_config.model_dump(mode="json") if meta.run_config else None
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stablenew-qt",
        description="StableNew Qt: txt2img (SDXL refiner, hires fix), img2img, upscale and ADetailer "
        "in-process with diffusers. With no command, the desktop app starts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    plan = sub.add_parser("plan", help="validate a RunConfig JSON file and print its stage plan")
    plan.add_argument("config", metavar="CONFIG.json", help="a RunConfig JSON file (see docs/run-config.md)")
    plan.set_defaults(func=cmd_plan)
    info = sub.add_parser("info", help="print the generation parameters stored in an image (ours or A1111's)")
    info.add_argument("image", metavar="IMAGE", help="a PNG written by StableNew Qt or AUTOMATIC1111")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from .app import main as app_main

        return app_main([])
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return _config_error(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
