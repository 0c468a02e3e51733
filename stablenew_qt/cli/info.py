"""``stablenew-qt info IMAGE``: an image's generation settings as JSON: its A1111 parameters and
embedded RunConfig, and the settings read by whichever common generator made it (ComfyUI,
InvokeAI, Fooocus, NovelAI, ... through ``core.metadata``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..core.errors import ConfigError
from ..core.infotext import infotext_to_config, parse_infotext, read_image_metadata
from ..core.metadata import NoGenerationSettings, read_generation_settings
from ..core.options import ExitCode


def add_parser(subparsers: Any) -> None:
    info = subparsers.add_parser(
        "info", help="print the generation parameters stored in an image (ours or A1111's)"
    )
    info.add_argument("image", metavar="IMAGE", help="a PNG written by StableNew Qt or AUTOMATIC1111")
    info.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    meta = read_image_metadata(args.image)
    try:
        settings = read_generation_settings(args.image)
    except NoGenerationSettings as exc:  # a photo, an edited or stripped image: say so in words
        sys.stderr.write(f"{exc.problems[0].message}\n")
        return ExitCode.CONFIG_ERROR
    except ConfigError:
        if meta.parameters is None and meta.run_config is None:
            raise  # recognised but unusable ("looks like a ComfyUI image, but ..."): one line
        settings = None
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
    if settings is not None:
        out["generator"] = settings.generator
        out["settings"] = settings.config.model_dump(mode="json")
        out["notes"] = list(settings.notes)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return ExitCode.OK
