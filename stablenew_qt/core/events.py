"""Typed events the PipelineRunner and AppController emit. Plain frozen dataclasses, no Qt:
the GUI's bridge turns them into signals; the CLI prints them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .lifecycle import LifecycleState
from .sequencer import StageExecutionPlan, StageName


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    plan: StageExecutionPlan
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class StageStarted:
    run_id: str
    stage: StageName
    index: int
    total_stages: int


@dataclass(frozen=True)
class StepProgress:
    """Progress inside a stage. ``fraction`` is the whole run's progress in 0..1."""

    run_id: str
    stage: StageName
    index: int
    total_stages: int
    step: int
    total_steps: int
    fraction: float
    label: str = ""
    preview: Image.Image | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StageFinished:
    run_id: str
    stage: StageName
    index: int
    seconds: float
    image_count: int
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunCompleted:
    run_id: str
    output_dir: Path
    image_paths: tuple[Path, ...]
    manifest_path: Path
    seconds: float


@dataclass(frozen=True)
class RunFailed:
    """The run ended in ERROR. ``message`` is for the user; details went to the log."""

    run_id: str
    stage: StageName | None
    message: str


@dataclass(frozen=True)
class RunCancelled:
    run_id: str
    stage: StageName | None


@dataclass(frozen=True)
class LifecycleChanged:
    old: LifecycleState
    new: LifecycleState


RunEvent = (
    RunStarted
    | StageStarted
    | StepProgress
    | StageFinished
    | RunCompleted
    | RunFailed
    | RunCancelled
    | LifecycleChanged
)
EventSink = Callable[[RunEvent], None]
