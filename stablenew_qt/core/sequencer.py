"""StageSequencer: turns a RunConfig into an ordered StageExecutionPlan, or a ConfigError.

Canonical order: txt2img, img2img, upscale, adetailer. The refiner and hires fix are settings of
the txt2img stage, never stages of their own. The full rule table is in ``docs/stage-rules.md``;
each row there has a test in ``tests/pipeline/test_stage_sequencer_runner_integration.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .config import ADetailerConfig, Img2ImgConfig, RunConfig, Txt2ImgConfig, UpscaleConfig
from .errors import ConfigError, ConfigProblem
from .images import MIN_IMG2IMG_SIDE, check_input_image
from .inpaint_checks import check_inpaint_files, inpaint_structural_problems, inpaint_warnings


class StageName(StrEnum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    UPSCALE = "upscale"
    ADETAILER = "adetailer"


CANONICAL_ORDER: tuple[StageName, ...] = tuple(StageName)
GENERATION_STAGES = frozenset({StageName.TXT2IMG, StageName.IMG2IMG, StageName.UPSCALE})

StageSettings = Txt2ImgConfig | Img2ImgConfig | UpscaleConfig | ADetailerConfig


@dataclass(frozen=True)
class StageExecution:
    """One stage of a plan. ``stage_config`` is that stage's section of the RunConfig; for
    txt2img it carries the refiner and hires settings."""

    stage: StageName
    index: int
    stage_config: StageSettings

    @property
    def refiner_enabled(self) -> bool:
        return isinstance(self.stage_config, Txt2ImgConfig) and self.stage_config.refiner_enabled

    @property
    def hires_enabled(self) -> bool:
        return isinstance(self.stage_config, Txt2ImgConfig) and self.stage_config.hires_enabled

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"stage": self.stage.value, "index": self.index}
        if isinstance(self.stage_config, Txt2ImgConfig):
            data["refiner"] = self.refiner_enabled
            data["hires"] = self.hires_enabled
        data["stage_config"] = self.stage_config.model_dump(mode="json")
        return data


@dataclass(frozen=True)
class StageExecutionPlan:
    """The ordered stages of one run plus what the first stage reads from disk."""

    stages: tuple[StageExecution, ...]
    input_image_path: str | None
    warnings: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[StageName, ...]:
        return tuple(s.stage for s in self.stages)

    @property
    def first(self) -> StageExecution:
        return self.stages[0]

    def __len__(self) -> int:
        return len(self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": [s.to_dict() for s in self.stages],
            "input_image_path": self.input_image_path,
            "warnings": list(self.warnings),
        }


class StageSequencer:
    """Validates the stage structure of a RunConfig and orders its stages."""

    def build_execution_plan(self, config: RunConfig, *, check_files: bool = True) -> StageExecutionPlan:
        """Return the plan, or raise ConfigError listing every structural problem.

        ``check_files=False`` skips opening ``input_image_path`` (for previews of a plan only).
        """
        problems = _structural_problems(config)
        if problems:
            raise ConfigError(problems)
        enabled = {
            StageName.TXT2IMG: config.txt2img.enabled,
            StageName.IMG2IMG: config.img2img.enabled,
            StageName.UPSCALE: config.upscale.enabled,
            StageName.ADETAILER: config.adetailer.enabled,
        }
        names = [name for name in CANONICAL_ORDER if enabled[name]]
        settings: dict[StageName, StageSettings] = {
            StageName.TXT2IMG: config.txt2img,
            StageName.IMG2IMG: config.img2img,
            StageName.UPSCALE: config.upscale,
            StageName.ADETAILER: config.adetailer,
        }
        stages = tuple(StageExecution(name, i, settings[name]) for i, name in enumerate(names))
        warnings: list[str] = []
        input_path: str | None = None
        if names[0] == StageName.TXT2IMG:
            if config.input_image_path:
                warnings.append("input_image_path is ignored: txt2img makes the first image")
        else:
            input_path = config.input_image_path
            if check_files:
                min_side = MIN_IMG2IMG_SIDE if names[0] == StageName.IMG2IMG else 1
                check_input_image(str(input_path), min_side=min_side)
            if names[0] == StageName.UPSCALE and config.batch_size > 1:
                warnings.append("batch_size is ignored: upscaling one input image makes one image")
        if check_files:
            check_inpaint_files(config)
        warnings += inpaint_warnings(config)
        return StageExecutionPlan(stages, input_path, tuple(warnings))


def _structural_problems(config: RunConfig) -> list[ConfigProblem]:
    t2i, i2i, up, ad = config.txt2img, config.img2img, config.upscale, config.adetailer
    problems: list[ConfigProblem] = []
    if not (t2i.enabled or i2i.enabled or up.enabled):
        if ad.enabled:
            problems.append(
                ConfigProblem(
                    "adetailer.enabled", "ADetailer cannot run alone: enable txt2img, img2img or upscale"
                )
            )
        else:
            problems.append(ConfigProblem("", "no stage is enabled: enable txt2img, img2img or upscale"))
    if not t2i.enabled:
        if t2i.refiner_enabled:
            problems.append(
                ConfigProblem(
                    "txt2img.refiner_enabled",
                    "the refiner runs inside txt2img: enable txt2img or turn it off",
                )
            )
        if t2i.hires_enabled:
            problems.append(
                ConfigProblem(
                    "txt2img.hires_enabled", "hires fix runs inside txt2img: enable txt2img or turn it off"
                )
            )
    if t2i.enabled and t2i.refiner_enabled and not (t2i.refiner_model_name or "").strip():
        problems.append(
            ConfigProblem("txt2img.refiner_model_name", "choose a refiner model or turn the refiner off")
        )
    if ad.enabled and not ad.active_units:
        problems.append(
            ConfigProblem(
                "adetailer.units",
                "every ADetailer unit is off or has model 'None': enable one or turn ADetailer off",
            )
        )
    for i, unit in enumerate(ad.units):
        if (
            ad.enabled
            and unit.active
            and unit.adetailer_use_checkpoint
            and not (unit.adetailer_checkpoint or "").strip()
        ):
            problems.append(
                ConfigProblem(
                    f"adetailer.units[{i}].adetailer_checkpoint",
                    "choose a checkpoint or untick 'use separate checkpoint'",
                )
            )
    starts_from_file = not t2i.enabled and (i2i.enabled or up.enabled)
    if starts_from_file and not (config.input_image_path or "").strip():
        first = "img2img" if i2i.enabled else "upscale"
        problems.append(
            ConfigProblem(
                "input_image_path",
                f"{first} is the first stage, so it needs an input image: set input_image_path",
            )
        )
    problems += inpaint_structural_problems(config)
    return problems
