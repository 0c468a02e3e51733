"""PipelineRunner: runs one RunConfig's plan stage by stage through an Executor.

It knows nothing of Qt or torch. It resolves seeds, hands each stage's images to the next, reports
typed events, writes outputs only once the last stage has finished, and turns every failure into
a RunResult in FAILED or CANCELLED with a message for the user and a typed cause (the traceback
goes to the log).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from PIL import Image

from .. import __version__
from .config import MAX_SEED, RunConfig
from .errors import CancelRequested, ConfigError, FailureCause, FailureKind, OutputError, StageError
from .events import (
    EventSink,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    StageFinished,
    StageStarted,
    StepProgress,
)
from .executor import CancelToken, Executor, StageInfo, StagePayload, StageResult
from .hooks import LearningHook, RunRecord, StageRecord
from .images import load_input_image
from .infotext import build_infotext, png_metadata, read_image_metadata
from .lifecycle import LifecycleState
from .outputs import OutputSettings, RunOutputs, build_manifest, new_run_id
from .preflight import preflight
from .sequencer import StageExecution, StageExecutionPlan, StageName, StageSequencer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """How a run ended. ``images`` are the final images in memory (empty unless COMPLETED);
    ``error`` and ``cause`` say why a FAILED run failed."""

    run_id: str
    status: LifecycleState
    config: RunConfig
    seeds: tuple[int, ...]
    image_paths: tuple[Path, ...] = ()
    manifest_path: Path | None = None
    error: str | None = None
    failed_stage: StageName | None = None
    cause: FailureCause | None = None
    images: tuple[Image.Image, ...] = field(default=(), repr=False, compare=False)


def _random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def resolve_seeds(config: RunConfig, random_seed: Callable[[], int] = _random_seed) -> RunConfig:
    """Return ``config`` with every ``-1`` seed replaced by a concrete one (recorded everywhere)."""
    seed = config.seed if config.seed != -1 else random_seed()
    updates: dict[str, object] = {"seed": seed}
    if config.subseed == -1 and config.subseed_strength > 0:
        updates["subseed"] = random_seed()
    if config.img2img.seed == -1:
        updates["img2img"] = config.img2img.model_copy(update={"seed": random_seed()})
    return config.model_copy(update=updates)


def image_seeds(base: int, count: int) -> tuple[int, ...]:
    """Per-image seeds ``base + i`` (wrapping at 2**32), as A1111 assigns them in a batch."""
    return tuple((base + i) % (MAX_SEED + 1) for i in range(count))


def from_image(config: RunConfig, start: int) -> RunConfig:
    """``config`` for the images of a batch from image ``start`` on (a batch-count batch, a smaller
    call of the out-of-memory ladder): its variation seed is image ``start``'s, so ``subseed + i``
    inside the part is each image's own (A1111's ``all_subseeds``)."""
    if not start or config.subseed_strength <= 0 or config.subseed < 0:
        return config
    return config.model_copy(update={"subseed": image_seeds(config.subseed, start + 1)[-1]})


def batch_seeds(config: RunConfig, base: int, count: int) -> tuple[int, ...]:
    """A batch's seeds as A1111's ``process_images`` draws them: ``base + i``, except with a
    variation seed on (strength > 0), where every image keeps ``base`` and only the variation
    seeds step (``subseed + i``)."""
    return (base % (MAX_SEED + 1),) * count if config.subseed_strength > 0 else image_seeds(base, count)


@dataclass
class _RunState:
    run_id: str
    config: RunConfig
    plan: StageExecutionPlan
    seeds: tuple[int, ...]
    outputs: RunOutputs
    started: datetime
    t0: float
    stage_records: list[StageRecord] = field(default_factory=list)
    stage_infos: dict[StageName, StageInfo] = field(default_factory=dict)
    source_parameters: str | None = None


class PipelineRunner:
    """Runs plans through ``executor``. One runner serves many runs, one at a time."""

    def __init__(
        self,
        executor: Executor,
        output: OutputSettings,
        *,
        hooks: Sequence[LearningHook] = (),
        sequencer: StageSequencer | None = None,
        random_seed: Callable[[], int] = _random_seed,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.executor = executor
        self.output = output
        self.hooks: list[LearningHook] = list(hooks)
        self.sequencer = sequencer or StageSequencer()
        self._random_seed = random_seed
        self._clock = clock

    def add_hook(self, hook: LearningHook) -> None:
        self.hooks.append(hook)

    def run(
        self,
        config: RunConfig,
        cancel_token: CancelToken,
        emit: EventSink | None = None,
        *,
        plan: StageExecutionPlan | None = None,
    ) -> RunResult:
        """Run ``config`` to the end. Raises ConfigError (before anything is written) for a config
        that cannot run, an output folder that cannot take its images (``preflight``) or what the
        engine's own ``check_run`` refuses (e.g. a LoRA tag naming no installed file); every
        later failure is returned as a RunResult in FAILED or CANCELLED. The run's files appear
        all at once when it completes (see ``RunOutputs``), or not at all. ``plan`` is
        ``config``'s plan when the caller has just built it (it is not built again)."""
        emit = emit or (lambda _event: None)
        plan = plan or self.sequencer.build_execution_plan(config)
        count = 1 if plan.first.stage is StageName.UPSCALE else config.batch_size * config.batch_count
        config = resolve_seeds(config, self._random_seed)
        started = datetime.now().astimezone()
        run_id = new_run_id(started)
        preflight(self.output, plan, config)
        for warning in _engine_check(self.executor, config):
            log.warning("%s: %s", run_id, warning)
        state = _RunState(
            run_id,
            config,
            plan,
            batch_seeds(config, config.seed, count),
            RunOutputs(self.output, run_id, started),
            started,
            self._clock(),
        )
        for warning in plan.warnings:
            log.warning("%s: %s", run_id, warning)
        subseeds = image_seeds(config.subseed, count) if config.subseed_strength > 0 else ()
        emit(RunStarted(run_id, plan, state.seeds, subseeds))
        stage: StageExecution | None = None
        try:
            images = self._input_images(state)
            for stage in plan.stages:
                cancel_token.raise_if_cancelled()
                images = self._run_stage(state, stage, images, cancel_token, emit)
            return self._complete(state, images, emit)
        except CancelRequested:
            log.info("%s: cancelled%s", run_id, f" during {stage.stage}" if stage else "")
            return self._end(state, LifecycleState.CANCELLED, stage, None, emit)
        except (StageError, ConfigError, OutputError) as exc:
            log.error("%s: %s", run_id, exc)
            return self._end(state, LifecycleState.FAILED, stage, exc.cause, emit)
        except Exception as exc:
            where = f" in {stage.stage}" if stage else ""
            log.exception("%s: unexpected error%s", run_id, where)
            message = f"unexpected error{where}: {type(exc).__name__}: {exc} (details in the log)"
            cause = FailureCause(FailureKind.UNEXPECTED, message, stage.stage.value if stage else None)
            return self._end(state, LifecycleState.FAILED, stage, cause, emit)
        except BaseException:
            state.outputs.discard()  # KeyboardInterrupt, SystemExit: nothing of the run stays
            raise

    # -- stages --------------------------------------------------------------------------
    def _input_images(self, state: _RunState) -> tuple[Image.Image, ...]:
        path = state.plan.input_image_path
        if path is None:
            return ()
        i2i = state.config.img2img
        # mask_from_alpha: img2img (the first stage) takes the mask from the alpha, then flattens
        image = load_input_image(path, keep_alpha=i2i.enabled and i2i.mask_from_alpha)
        try:
            state.source_parameters = read_image_metadata(path).parameters
        except ConfigError:
            state.source_parameters = None
        return tuple(image.copy() for _ in state.seeds)

    def _run_stage(
        self,
        state: _RunState,
        stage: StageExecution,
        images: tuple[Image.Image, ...],
        token: CancelToken,
        emit: EventSink,
    ) -> tuple[Image.Image, ...]:
        total_stages = len(state.plan)
        emit(StageStarted(state.run_id, stage.stage, stage.index, total_stages))
        # Batch count: one engine call per batch of batch_size images (A1111's n_iter loop), the
        # whole run's seeds stepping across the batches; the stage ends when every batch is made.
        size = len(state.seeds) if state.plan.first.stage is StageName.UPSCALE else state.config.batch_size
        batches = [(start, min(start + size, len(state.seeds))) for start in range(0, len(state.seeds), size)]
        made: list[Image.Image] = []
        infos: list[StageInfo] = []
        seconds = 0.0
        for number, (start, end) in enumerate(batches):
            token.raise_if_cancelled()
            progress = _progress_sink(state, stage, emit, number, len(batches))
            payload = _payload(state.config, stage.stage, state.seeds, images, start, end)
            t0 = self._clock()
            result = self.executor.generate_images(stage, payload, progress, token)
            seconds += self._clock() - t0
            _check_result(stage, result, expected=end - start)
            made.extend(result.images)
            infos.append(result.info)
        # The first batch's info describes the stage; a note (an out-of-memory step that worked)
        # from any batch is kept, once.
        notes = tuple(dict.fromkeys(note for info in infos for note in info.notes))
        result = StageResult(tuple(made), replace(infos[0], notes=notes))
        state.stage_infos[stage.stage] = result.info
        for note in result.info.notes:
            log.info("%s: %s: %s", state.run_id, stage.stage, note)
        record = StageRecord(
            state.run_id,
            stage.stage.value,
            stage.index,
            seconds,
            len(result.images),
            dict(result.info.params),
        )
        state.stage_records.append(record)
        emit(
            StageFinished(
                state.run_id,
                stage.stage,
                stage.index,
                seconds,
                len(result.images),
                dict(result.info.params),
                tuple(result.info.notes),
            )
        )
        self._call_hooks(lambda hook: hook.on_stage_finished(record))
        is_last = stage.index == total_stages - 1
        if self.output.save_intermediates and not is_last:
            for image, seed in zip(result.images, state.seeds, strict=True):
                state.outputs.save_intermediate(image, stage=stage.stage.value, seed=seed)
        return result.images

    # -- endings -------------------------------------------------------------------------
    def _complete(self, state: _RunState, images: tuple[Image.Image, ...], emit: EventSink) -> RunResult:
        paths = []
        sampling_seeds = _first_sampling_seeds(state)
        for i, (image, seed) in enumerate(zip(images, state.seeds, strict=True)):
            per_image = _per_image_config(state.config, i, seed)
            text = build_infotext(
                state.config,
                seed=sampling_seeds[i],
                subseed=per_image.subseed,
                stage_infos=state.stage_infos,
                version=__version__,
                source_parameters=state.source_parameters,
            )
            paths.append(state.outputs.save_image(image, seed=seed, pnginfo=png_metadata(text, per_image)))
        manifest = self._write_manifest(state, LifecycleState.COMPLETED, None)
        assert manifest is not None
        state.outputs.publish()
        seconds = self._clock() - state.t0
        emit(RunCompleted(state.run_id, state.outputs.path, tuple(paths), manifest, seconds))
        self._finish_hooks(state, LifecycleState.COMPLETED, paths, None)
        return RunResult(
            state.run_id,
            LifecycleState.COMPLETED,
            state.config,
            state.seeds,
            tuple(paths),
            manifest,
            images=images,
        )

    def _end(
        self,
        state: _RunState,
        status: LifecycleState,
        stage: StageExecution | None,
        cause: FailureCause | None,
        emit: EventSink,
    ) -> RunResult:
        error = cause.message if cause is not None else None
        manifest = self._keep_intermediates(state, status, error)
        name = stage.stage if stage else None
        emit(
            RunCancelled(state.run_id, name)
            if status is LifecycleState.CANCELLED
            else RunFailed(state.run_id, name, error or "", cause)
        )
        self._finish_hooks(state, status, [], error)
        return RunResult(state.run_id, status, state.config, state.seeds, (), manifest, error, name, cause)

    def _keep_intermediates(self, state: _RunState, status: LifecycleState, error: str | None) -> Path | None:
        # A run that does not complete publishes no final image. Its intermediates, if it saved
        # any, are published with a manifest saying how it ended; if even that fails, none stay.
        outputs = state.outputs
        outputs.keep_only_intermediates()
        if not outputs.written:
            outputs.discard()
            return None
        try:
            manifest = self._write_manifest(state, status, error)
            outputs.publish()
        except OutputError as exc:
            log.error("%s: %s", state.run_id, exc)
            outputs.discard()
            return None
        return manifest

    def _write_manifest(self, state: _RunState, status: LifecycleState, error: str | None) -> Path | None:
        stages = [
            {
                "stage": r.stage,
                "seconds": round(r.seconds, 4),
                "image_count": r.image_count,
                "model_name": state.stage_infos[StageName(r.stage)].model_name,
                "model_hash": state.stage_infos[StageName(r.stage)].model_hash,
                "vae_name": state.stage_infos[StageName(r.stage)].vae_name,
                "vae_hash": state.stage_infos[StageName(r.stage)].vae_hash,
                "params": _jsonable(r.params),
                "notes": list(state.stage_infos[StageName(r.stage)].notes),
            }
            for r in state.stage_records
        ]
        data = build_manifest(
            version=__version__,
            run_id=state.run_id,
            status=status.value,
            started=state.started,
            finished=datetime.now().astimezone(),
            config=state.config.model_dump(mode="json"),
            seeds=state.seeds,
            plan=state.plan.to_dict(),
            stages=stages,
            images=[p.relative_to(state.outputs.path).as_posix() for p in state.outputs.written],
            error=error,
        )
        return state.outputs.write_manifest(data)

    def _finish_hooks(
        self, state: _RunState, status: LifecycleState, paths: Sequence[Path], error: str | None
    ) -> None:
        record = RunRecord(
            run_id=state.run_id,
            status=status.value,
            config=state.config.model_dump(mode="json"),
            seeds=state.seeds,
            plan=state.plan.to_dict(),
            stages=tuple(state.stage_records),
            outputs=tuple(str(p) for p in paths),
            seconds=self._clock() - state.t0,
            error=error,
        )
        self._call_hooks(lambda hook: hook.on_run_finished(record))

    def _call_hooks(self, call: Callable[[LearningHook], None]) -> None:
        for hook in self.hooks:
            try:
                call(hook)
            except Exception:
                # A broken hook must never break or lose a run.
                log.exception("learning hook %r failed", hook)


def _engine_check(executor: Executor, config: RunConfig) -> list[str]:
    """The engine's own check of ``config`` before anything runs (``check_run``, optional: the
    diffusers engine resolves LoRA tags against the installed files). Raises ConfigError."""
    check: Callable[[RunConfig], list[str]] | None = getattr(executor, "check_run", None)
    return list(check(config)) if check is not None else []


def _progress_sink(
    state: _RunState, stage: StageExecution, emit: EventSink, batch: int, batches: int
) -> Callable[..., None]:
    """The progress callback of batch ``batch`` of ``batches`` of ``stage``."""
    total_stages = len(state.plan)

    def progress(step: int, total: int, preview: Image.Image | None = None, label: str = "") -> None:
        within = (batch + min(max(step / max(total, 1), 0.0), 1.0)) / batches
        fraction = (stage.index + within) / total_stages
        if batches > 1:
            label = f"batch {batch + 1}/{batches}" + (f", {label}" if label else "")
        emit(
            StepProgress(
                state.run_id, stage.stage, stage.index, total_stages, step, total, fraction, label, preview
            )
        )

    return progress


def _payload(
    config: RunConfig,
    stage: StageName,
    seeds: tuple[int, ...],
    images: tuple[Image.Image, ...],
    start: int = 0,
    end: int | None = None,
) -> StagePayload:
    """The payload of images ``start:end`` of the run (one batch of a batch count). Its config's
    variation seed is that batch's first image's, so ``subseed + i`` inside the batch is right."""
    end = len(seeds) if end is None else end
    prompt, negative = config.prompt, config.negative_prompt
    batch_seeds_ = seeds[start:end]
    if stage is StageName.IMG2IMG:
        i2i = config.img2img
        prompt = i2i.prompt if i2i.prompt is not None else prompt
        negative = i2i.negative_prompt if i2i.negative_prompt is not None else negative
        if i2i.seed is not None:
            batch_seeds_ = batch_seeds(config, i2i.seed, end)[start:end]
    part = images[start:end] if images else ()
    return StagePayload(from_image(config, start), prompt, negative, batch_seeds_, part)


def _first_sampling_seeds(state: _RunState) -> tuple[int, ...]:
    """The seeds the infotext's ``Seed`` describes: those of the first sampling stage."""
    i2i = state.config.img2img
    if not state.config.txt2img.enabled and i2i.enabled and i2i.seed is not None:
        return batch_seeds(state.config, i2i.seed, len(state.seeds))
    return state.seeds


def _per_image_config(config: RunConfig, index: int, seed: int) -> RunConfig:
    """The config that replays exactly image ``index`` of this run on its own."""
    updates: dict[str, object] = {"seed": seed, "batch_size": 1, "batch_count": 1}
    if config.subseed_strength > 0 and config.subseed >= 0:  # image i's: subseed + i, as A1111's
        updates["subseed"] = image_seeds(config.subseed, index + 1)[-1]
    if config.img2img.seed is not None:
        updates["img2img"] = config.img2img.model_copy(
            update={"seed": batch_seeds(config, config.img2img.seed, index + 1)[-1]}
        )
    return config.model_copy(update=updates)


def _check_result(stage: StageExecution, result: StageResult, expected: int) -> None:
    if len(result.images) != expected:
        raise StageError(stage.stage.value, f"returned {len(result.images)} image(s), expected {expected}")
    for image in result.images:
        if not isinstance(image, Image.Image):
            raise StageError(stage.stage.value, f"returned {type(image).__name__} instead of an image")


def _jsonable(params: object) -> object:
    if isinstance(params, dict):
        return {str(k): _jsonable(v) for k, v in params.items()}
    if isinstance(params, list | tuple):
        return [_jsonable(v) for v in params]
    if params is None or isinstance(params, str | int | float | bool):
        return params
    return str(params)
