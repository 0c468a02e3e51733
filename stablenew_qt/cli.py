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
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .core.config import load_run_config
from .core.errors import ConfigError
from .core.infotext import infotext_to_config, parse_infotext, read_image_metadata
from .core.sequencer import StageSequencer

if TYPE_CHECKING:
    from .engine.executor import EngineSettings
    from .engine.models import ModelCatalog, ModelEntry

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


def _engine_settings(args: argparse.Namespace) -> EngineSettings:
    from .core.paths import default_models_dir
    from .engine.executor import EngineSettings

    return EngineSettings(
        models_dir=Path(args.models_dir) if args.models_dir else default_models_dir(),
        device=args.device,
        memory_mode=args.memory_mode,
        trusted_detectors=tuple(Path(p) for p in args.trust_model or ()),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from .core.outputs import default_output_dir
    from .headless import app_logging, run_headless

    config = load_run_config(args.config)
    StageSequencer().build_execution_plan(config)  # config errors before the engine loads anything
    output = Path(args.output) if args.output else default_output_dir()
    with app_logging(args.verbose):
        return run_headless(
            config, output, _engine_settings(args), save_intermediates=args.save_intermediates
        )


def cmd_models(args: argparse.Namespace) -> int:
    from .engine.executor import build_catalog

    catalog = build_catalog(_engine_settings(args))
    print(json.dumps(catalog_listing(catalog, hashes=args.hashes), indent=2, ensure_ascii=False))
    return 0


def catalog_listing(catalog: ModelCatalog, *, hashes: bool) -> dict[str, list[dict[str, object]]]:
    """Every discovered model by kind; checkpoints with their family (read from headers only)."""
    from .engine.errors import ModelError
    from .engine.family import detect_family
    from .engine.hashing import model_hash

    def describe(entry: ModelEntry) -> dict[str, object]:
        path = entry.path
        row: dict[str, object] = {
            "name": entry.name,
            "source": entry.source,
            "path": str(path) if path else None,
        }
        if entry.kind == "checkpoint" and path is not None:
            try:
                row["family"] = detect_family(path).value
            except ModelError as exc:
                row["family"] = f"unknown ({exc})"
        if hashes and path is not None and path.is_file():
            row["hash"] = model_hash(path)
        return row

    return {
        "checkpoints": [describe(e) for e in catalog.checkpoints()],
        "vaes": [describe(e) for e in catalog.vaes()],
        "upscalers": [describe(e) for e in catalog.upscalers()],
        "detectors": [describe(e) for e in catalog.detectors()],
    }


def cmd_convert(args: argparse.Namespace) -> int:
    from .engine.errors import ModelError
    from .engine.safety import convert_to_safetensors

    try:
        out = convert_to_safetensors(Path(args.checkpoint), Path(args.output) if args.output else None)
    except (ModelError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", metavar="DIR", help="A1111-style models folder (default: ./models)")
    parser.add_argument(
        "--device", choices=("auto", "cuda", "cpu"), default="auto", help="where to run (default: auto)"
    )
    parser.add_argument(
        "--memory-mode",
        choices=("gpu", "model_offload", "sequential_offload"),
        default="gpu",
        help="keep everything on the GPU (default), or offload to save VRAM",
    )
    parser.add_argument(
        "--trust-model",
        metavar="FILE",
        action="append",
        help="trust this ADetailer .pt detector (a pickle) from now on; repeat for several files",
    )


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
    run = sub.add_parser("run", help="run a RunConfig headless and write its images")
    run.add_argument("config", metavar="CONFIG.json", help="a RunConfig JSON file (see docs/run-config.md)")
    run.add_argument("--output", metavar="DIR", help="output folder (default: runs/ in the user data folder)")
    run.add_argument("--save-intermediates", action="store_true", help="also keep each stage's images")
    run.add_argument("-v", "--verbose", action="store_true", help="print progress details and log lines")

    _add_engine_options(run)
    run.set_defaults(func=cmd_run)
    models = sub.add_parser("models", help="list the models found, with family and hash")
    models.add_argument(
        "--hashes", action="store_true", help="also compute model hashes (reads every file once)"
    )
    _add_engine_options(models)
    models.set_defaults(func=cmd_models)
    convert = sub.add_parser(
        "convert",
        help="convert a pickle checkpoint (.ckpt/.pt/.bin) to .safetensors, loading it weights-only",
    )
    convert.add_argument("checkpoint", metavar="FILE", help="the .ckpt/.pt/.pth/.bin file")
    convert.add_argument("--output", metavar="FILE.safetensors", help="where to write (default: beside it)")
    convert.set_defaults(func=cmd_convert)
    from .bench import add_bench_parser

    add_bench_parser(sub)
    from .queue_cli import add_queue_parser

    add_queue_parser(sub)
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
