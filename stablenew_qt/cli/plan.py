"""``stablenew-qt plan CONFIG.json``: validate a RunConfig and print its stage plan as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..core.config import load_run_config
from ..core.options import ExitCode
from ..core.sequencer import StageSequencer


def add_parser(subparsers: Any) -> None:
    plan = subparsers.add_parser("plan", help="validate a RunConfig JSON file and print its stage plan")
    plan.add_argument("config", metavar="CONFIG.json", help="a RunConfig JSON file (see docs/run-config.md)")
    plan.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    config = load_run_config(args.config)
    plan = StageSequencer().build_execution_plan(config)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
    return ExitCode.OK
