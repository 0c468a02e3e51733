"""``stablenew-qt info IMAGE``: an image's A1111 parameters and embedded RunConfig, as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..core.errors import ConfigError
from ..core.infotext import infotext_to_config, parse_infotext, read_image_metadata
from ..core.options import ExitCode


def add_parser(subparsers: Any) -> None:
    info = subparsers.add_parser(
        "info", help="print the generation parameters stored in an image (ours or A1111's)"
    )
    info.add_argument("image", metavar="IMAGE", help="a PNG written by StableNew Qt or AUTOMATIC1111")
    info.set_defaults(func=cmd_info)


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
    return ExitCode.OK
