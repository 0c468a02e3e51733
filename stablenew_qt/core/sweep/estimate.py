"""How long a sweep will take, from the speed of the last runs (the window's Sweep panel).

Speed is measured as seconds per sampling step of one image: a run's txt2img and img2img stage
seconds (``StageFinished.seconds``) over the sampling steps it made (:func:`config_steps` of each
image times the images). A sweep's estimate is that speed times the steps of every image of every
cell. Upscale and ADetailer stages are not counted on either side (their work depends on the
upscaler and on what the detector finds), nor is loading a model, so the estimate is a lower
bound when a sweep loads several checkpoints.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ..config import Img2ImgConfig, RunConfig, Txt2ImgConfig
from ..sequencer import StageExecutionPlan

__all__ = ["SpeedMeter", "config_steps", "estimate_seconds", "format_duration", "image_count", "plan_steps"]

#: How many of the last runs the speed is averaged over.
RUNS_AVERAGED = 5


def _txt2img_steps(stage: Txt2ImgConfig) -> int:
    # Hires fix is a second pass: its own step count, or the first pass's when 0 (A1111's rule).
    return stage.steps + ((stage.hires_steps or stage.steps) if stage.hires_enabled else 0)


def config_steps(config: RunConfig) -> int:
    """Sampling steps one image of ``config`` takes (txt2img with its hires pass, then img2img)."""
    steps = _txt2img_steps(config.txt2img) if config.txt2img.enabled else 0
    return steps + (config.img2img.steps if config.img2img.enabled else 0)


def plan_steps(plan: StageExecutionPlan) -> int:
    """:func:`config_steps` of a run's stage plan (what ``RunStarted`` carries)."""
    steps = 0
    for stage in plan.stages:
        if isinstance(stage.stage_config, Txt2ImgConfig):
            steps += _txt2img_steps(stage.stage_config)
        elif isinstance(stage.stage_config, Img2ImgConfig):
            steps += stage.stage_config.steps
    return steps


def image_count(config: RunConfig) -> int:
    """Images one job of ``config`` makes (batch size × batch count)."""
    return config.batch_size * config.batch_count


def estimate_seconds(configs: Iterable[RunConfig], seconds_per_step: float) -> float:
    """Seconds the sampling of every image of ``configs`` takes at ``seconds_per_step``."""
    return sum(config_steps(c) * image_count(c) for c in configs) * seconds_per_step


class SpeedMeter:
    """Seconds per image step over the last :data:`RUNS_AVERAGED` runs (None before any)."""

    def __init__(self) -> None:
        self.runs: deque[tuple[float, int]] = deque(maxlen=RUNS_AVERAGED)

    def record(self, seconds: float, steps: int) -> None:
        """One finished run: ``seconds`` of sampling for ``steps`` image steps (ignored when 0)."""
        if steps > 0 and seconds >= 0:
            self.runs.append((seconds, steps))

    @property
    def seconds_per_step(self) -> float | None:
        steps = sum(s for _, s in self.runs)
        return sum(t for t, _ in self.runs) / steps if steps else None


def format_duration(seconds: float) -> str:
    """``"about 40 s"``, ``"about 12 min"``, ``"about 2 h 5 min"``."""
    if seconds < 90:
        return f"about {max(round(seconds), 1)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"
