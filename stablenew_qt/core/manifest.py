"""The ``manifest.json`` of a run: what ran, with which seeds, models and timings, and how it ended."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import __version__
from .config import RunConfig

APP_NAME = "StableNew Qt"
MANIFEST_NAME = "manifest.json"
RUN_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")


_STAGE_KEYS = ("stage", "seconds", "image_count")
_STAGE_OPTIONAL_KEYS = ("model_name", "model_hash", "vae_name", "vae_hash")


def _iso(moment: datetime, name: str) -> str:
    if moment.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware (for example datetime.now().astimezone()), got {moment}"
        )
    return moment.isoformat()


def _stage_entry(stage: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in _STAGE_KEYS if key not in stage]
    if missing:
        raise ValueError(f"stage record {dict(stage)!r} lacks {', '.join(missing)}")
    entry: dict[str, Any] = {
        "stage": str(stage["stage"]),
        "seconds": float(stage["seconds"]),
        "image_count": int(stage["image_count"]),
    }
    entry.update({key: stage.get(key) for key in _STAGE_OPTIONAL_KEYS})
    entry["params"] = dict(stage.get("params") or {})
    if stage.get("notes"):  # what the engine had to do, e.g. the out-of-memory step that worked
        entry["notes"] = [str(note) for note in stage["notes"]]
    return entry


def _image_name(image: Path | str, run_dir: Path | None) -> str:
    path = Path(image)
    if run_dir is not None and path.is_absolute():
        path = path.relative_to(run_dir)
    return path.as_posix()


def build_manifest(
    *,
    run_id: str,
    status: str,
    started: datetime,
    finished: datetime,
    config: RunConfig | Mapping[str, Any],
    seeds: Sequence[int],
    plan: Mapping[str, Any],
    stages: Sequence[Mapping[str, Any]],
    images: Sequence[Path | str],
    run_dir: Path | None = None,
    error: str | None = None,
    version: str = __version__,
) -> dict[str, Any]:
    """Assemble the ``manifest.json`` content of one run from plain values.

    ``status`` is COMPLETED, FAILED or CANCELLED; ``started``/``finished`` must be timezone-aware
    and are written as ISO 8601. ``config`` is the RunConfig as run (a RunConfig or its JSON dict).
    Each ``stages`` item needs ``stage``, ``seconds`` and ``image_count`` and may carry
    ``model_name``, ``model_hash``, ``vae_name``, ``vae_hash`` (default None), ``params`` and
    ``notes`` (written only when there are any).
    ``images`` are written relative to the run folder: absolute paths are made relative to
    ``run_dir``. Raises ValueError for an unknown status, a naive datetime or an incomplete stage.
    """
    if status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    config_data = config.model_dump(mode="json") if isinstance(config, RunConfig) else dict(config)
    return {
        "app": {"name": APP_NAME, "version": version},
        "run_id": run_id,
        "status": str(status),
        "started": _iso(started, "started"),
        "finished": _iso(finished, "finished"),
        "config": config_data,
        "seeds": [int(seed) for seed in seeds],
        "plan": dict(plan),
        "stages": [_stage_entry(stage) for stage in stages],
        "images": [_image_name(image, run_dir) for image in images],
        "error": error,
    }
