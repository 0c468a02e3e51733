"""``queue add`` with ``--sweep``, ``--pack``, ``--wildcards`` and ``--styles``, and ``queue group``.

A RunConfig becomes many jobs, queued as one group (see docs/sweeps.md and docs/queue.md):

1. ``--pack FILE``: one config per prompt of the pack (TXT or JSON) over the config;
2. ``--styles NAME[,NAME]``: styles.csv styles applied to every prompt (A1111 applies styles
   before wildcards, so a style may hold wildcards); the files read are ``styles.csv`` of an
   A1111 install (the folder holding the models folder) and then ours (the user data folder);
3. ``--wildcards DIR``: dynamic prompts expanded (random: each image's prompt drawn from its seed,
   ``--count N`` runs of the config; ``--combinatorial``: every combination, at most ``--count``);
4. ``--sweep FILE``: the X/Y/Z plot or prompt matrix of the one config left, its grid written when
   its last cell ends.

Everything is checked before anything is queued; a bad file is one ``Config Error`` per problem
and exit 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import RunConfig
from ..core.errors import ConfigError, ConfigProblem
from ..core.job import FINISHED_STATUSES, Job
from ..core.job_group import GroupKind, JobGroup
from ..core.options import ExitCode
from ..core.outputs import app_data_dir
from ..core.queue import JobQueue
from ..core.queue_db import QueueMissing
from ..core.sweep import (
    StyleLibrary,
    SweepSpec,
    load_prompt_pack,
    sweep_jobs,
)
from ..core.sweep.appliers import SweepContext
from ..core.sweep.dynamic import DynamicOptions, expand_dynamic
from ..core.sweep.wildcards import DEFAULT_COMBINATION_LIMIT
from ..core.user_settings import models_dir as user_models_dir
from .sweep_names import installed_sweep_context

__all__ = ["GroupRequest", "add_group_options", "add_group_parser", "expand_request", "styles_paths"]

STYLES_FILE = "styles.csv"


def add_group_options(add: argparse.ArgumentParser) -> None:
    """The options of ``queue add`` that make a group."""
    add.add_argument("--sweep", metavar="SWEEP.json", help="an X/Y/Z plot or prompt matrix (docs/sweeps.md)")
    add.add_argument("--pack", metavar="PROMPTS.txt|json", help="one job per prompt of this prompt pack")
    add.add_argument("--wildcards", metavar="DIR", help="expand __wildcards__ and {a|b} variants from DIR")
    add.add_argument(
        "--combinatorial",
        action="store_true",
        help=f"with --wildcards: every combination (at most --count, default {DEFAULT_COMBINATION_LIMIT})",
    )
    add.add_argument("--styles", metavar="NAME[,NAME]", help="apply these styles.csv styles, in order")
    add.add_argument(
        "--models-dir", metavar="DIR", help="the models folder; an A1111 install's styles.csv is beside it"
    )


@dataclass(frozen=True)
class GroupRequest:
    """What ``queue add`` queues: ``configs`` (and their group ``indices``) with the group's kind
    and meta, or a plain job when ``kind`` is None."""

    configs: list[RunConfig]
    kind: GroupKind | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    indices: list[int] | None = None


def wants_group(args: argparse.Namespace) -> bool:
    return bool(args.sweep or args.pack or args.wildcards or args.styles or args.combinatorial)


def expand_request(args: argparse.Namespace, config: RunConfig) -> GroupRequest:
    """Turn ``config`` and the group options into the jobs to queue; ConfigError for anything
    wrong (nothing is queued then)."""
    _check_combination(args)
    kind: GroupKind | None = None
    meta: dict[str, Any] = {}
    configs = [config]
    if args.pack:
        configs = load_prompt_pack(Path(args.pack), config)
        kind, meta = (
            GroupKind.PACK,
            {"source": str(Path(args.pack).resolve()), "label": f"pack {Path(args.pack).name}"},
        )
    if args.styles:
        configs = _styled(configs, _style_names(args.styles), styles_paths(args.models_dir))
    if args.wildcards:
        configs, wildcard_meta = _expanded(args, configs)
        kind = kind or GroupKind.WILDCARDS
        meta = {**wildcard_meta, **meta}
    if args.sweep:
        return _sweep(Path(args.sweep), configs[0], installed_sweep_context(user_models_dir(args.models_dir)))
    if kind is None:
        return GroupRequest(configs)
    return GroupRequest(configs, kind, meta)


def _check_combination(args: argparse.Namespace) -> None:
    if args.sweep and (args.pack or args.wildcards):
        raise ConfigError("--sweep takes one config: leave out --pack and --wildcards", "--sweep")
    if args.combinatorial and not args.wildcards:
        raise ConfigError("--combinatorial needs --wildcards DIR", "--combinatorial")
    if args.count > 1 and (args.sweep or args.pack) and not args.wildcards:
        raise ConfigError(
            "--count repeats one config: use batch_count in the config for a sweep or a pack", "--count"
        )


def styles_paths(models_dir: str | None) -> list[Path]:
    """The styles.csv files read, in order: an A1111 install's (beside its models folder), then
    ours (the user data folder), so ours win."""
    models = user_models_dir(models_dir)  # the folder every command uses (the window's choice too)
    return [models.resolve().parent / STYLES_FILE, app_data_dir() / STYLES_FILE]


def _style_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError("names no style; write --styles NAME[,NAME]", "--styles")
    return names


def _styled(configs: list[RunConfig], names: list[str], paths: list[Path]) -> list[RunConfig]:
    library = StyleLibrary.load(paths)
    if not library.styles:
        where = " or ".join(repr(str(p)) for p in paths)
        raise ConfigError(f"no styles.csv with styles in {where}", "--styles")
    try:
        styled = []
        for config in configs:
            prompt, negative = library.apply(config.prompt, config.negative_prompt, names)
            styled.append(config.model_copy(update={"prompt": prompt, "negative_prompt": negative}))
    except ConfigError as exc:
        raise ConfigError([ConfigProblem("--styles", p.message) for p in exc.problems]) from None
    return styled


def _expanded(args: argparse.Namespace, configs: list[RunConfig]) -> tuple[list[RunConfig], dict[str, Any]]:
    options = DynamicOptions(
        Path(args.wildcards), combinatorial=args.combinatorial, count=args.count, field="--wildcards"
    )
    expansion = expand_dynamic(configs, options)
    return expansion.configs, expansion.meta


def _sweep(path: Path, base: RunConfig, context: SweepContext) -> GroupRequest:
    what = f"sweep file {str(path)!r}"
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist", "--sweep") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", "--sweep") from None
    try:
        jobs = sweep_jobs(base, SweepSpec.from_json(text), context=context, source=str(path.resolve()))
    except ConfigError as exc:
        raise ConfigError([ConfigProblem(_in_file(path, p.field), p.message) for p in exc.problems]) from None
    return GroupRequest(list(jobs.configs), GroupKind.SWEEP, jobs.meta, list(jobs.indices))


def _in_file(path: Path, field_name: str) -> str:
    return f"{path.name}: {field_name}" if field_name else path.name


def queue_request(queue: JobQueue, request: GroupRequest, *, front: bool, priority: int) -> JobGroup:
    """Queue a group request (``kind`` set) as one group."""
    assert request.kind is not None
    return queue.add_group(
        request.configs, request.kind, request.meta, indices=request.indices, front=front, priority=priority
    )


# -- queue group ---------------------------------------------------------------------------------
def add_group_parser(
    action: Any, id_type: Callable[[str], int], open_queue: Callable[[argparse.Namespace], JobQueue]
) -> None:
    """``queue group list|cancel|pause|resume|top|bottom|remove [ID]`` (``action`` is queue's own parser
    factory, ``open_queue`` its opener, which creates no file)."""
    group = action("group", functools.partial(cmd_group, open_queue=open_queue), _GROUP_HELP)
    group.add_argument("what", choices=("list", "cancel", "pause", "resume", "top", "bottom", "remove"))
    group.add_argument("id", nargs="?", type=id_type, metavar="ID", help="the group id (not for list)")


_GROUP_HELP = "list the groups, or cancel, pause, resume, move (top, bottom) or remove one"


def cmd_group(args: argparse.Namespace, *, open_queue: Callable[[argparse.Namespace], JobQueue]) -> int:
    if args.what == "list":
        try:
            with open_queue(args) as queue:
                rows = [_group_row(group, queue.group_jobs(group.id)) for group in queue.groups()]
        except QueueMissing:  # nothing queued yet: nothing to list, and nothing created
            rows = []
        for row in rows:
            print(row)
        return ExitCode.OK
    if args.id is None:
        print(f"error: queue group {args.what} needs the group ID (see `queue group list`)", file=sys.stderr)
        return ExitCode.CONFIG_ERROR
    with open_queue(args) as queue:
        if args.what == "cancel":
            running = queue.cancel_group(args.id)
            tail = f"; job {running} is running: it stops at its next step" if running else ""
            print(f"group {args.id} cancelled{tail}", file=sys.stderr)
        elif args.what == "pause":
            queue.pause_group(args.id)
            print(
                f"group {args.id} paused: none of its jobs starts until `queue group resume {args.id}`",
                file=sys.stderr,
            )
        elif args.what == "resume":
            queue.resume_group(args.id)
            print(f"group {args.id} resumed", file=sys.stderr)
        elif args.what in ("top", "bottom"):
            moved = queue.move_group(args.id, top=args.what == "top")
            where = "before" if args.what == "top" else "after"
            done = f"its queued jobs moved {where} every other queued job" if moved else "already there"
            print(f"group {args.id}: {done}", file=sys.stderr)
        else:
            queue.remove_group(args.id)
            print(f"group {args.id} removed", file=sys.stderr)
    return ExitCode.OK


def _group_row(group: JobGroup, jobs: list[Job]) -> str:
    ended = sum(job.status in FINISHED_STATUSES for job in jobs)
    grid = ", ".join(str(p) for p in group.grid_paths) or (group.grid_state or "-")
    paused = "  paused" if group.paused else ""
    progress = f"{ended}/{len(jobs)}"
    return f"{group.id:>5}  {group.kind.value:<9}  {progress:>9}  {group.label}{paused}  grid: {grid}"
