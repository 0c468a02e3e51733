"""DiffusersExecutor: core's Executor protocol, implemented with diffusers in this process.

Construct it cheaply anywhere; torch and diffusers are imported on first use, on the thread
that runs the stages (the GUI's engine thread, or the CLI's main thread).
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.abc
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.config import RunConfig
from ..core.errors import CancelRequested, ConfigError, FailureKind, OutOfMemoryError, StageError
from ..core.executor import CancelToken, ProgressCallback, StagePayload, StageResult
from ..core.options import DevicePreference, MemoryMode
from ..core.sequencer import StageExecution, StageName
from .errors import MissingModelError, ModelError
from .memory import free_device_memory
from .oom import (
    CPU_RUNGS,
    CUDA_RUNGS,
    MemoryMeasures,
    Step,
    is_out_of_memory,
    ladder,
    memory_key,
    out_of_memory_advice,
    split_payload,
)
from .upscalers import UpscalerError

if TYPE_CHECKING:
    from .context import EngineContext
    from .models import ModelCatalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    """How the engine runs. ``models_dir`` has A1111's layout (an A1111/Forge folder works)."""

    models_dir: Path
    device: DevicePreference = DevicePreference.AUTO
    memory_mode: MemoryMode = MemoryMode.GPU
    preview_every: int = 5
    demo_dir: Path | None = None
    include_demo_models: bool = True
    #: Regional torch.compile of the UNet on CUDA (slower first run, faster after).
    compile_unet: bool = False
    #: ADetailer detector files the user trusts (YOLO .pt files are pickles; see docs/adetailer.md).
    trusted_detectors: tuple[Path, ...] = ()
    #: Where the detector trust list lives (default: the app data folder).
    trust_file: Path | None = None
    #: Let diffusers and transformers draw their loading bars (the CLI's ``-v``; off in the window).
    library_progress_bars: bool = False


class DiffusersExecutor:
    """Runs txt2img (with refiner and hires), img2img, upscale and ADetailer with diffusers; core's
    Engine protocol (it also warms up and describes its device)."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._context: EngineContext | None = None  # built lazily, on the engine thread
        self._memory_measures: MemoryMeasures | None = None

    @property
    def context(self) -> EngineContext:
        """The engine context (device, model catalog, pipeline cache), created on first use."""
        if self._context is None:
            self._context = _build_context(self.settings)
        return self._context

    def warm_up(self) -> None:
        """Build the engine context now (torch import, device, model catalog, demo models) and
        import everything a first run would import: the diffusers pipeline and scheduler classes,
        with the transformers, accelerate, torchvision and scipy modules they pull in, and the
        stage modules. Call on the engine thread; loads no checkpoint.

        The GUI thread runs meanwhile, so this keeps Python's GIL free for it: no full garbage
        collection runs during the imports and their objects are frozen afterwards
        (:func:`imports_frozen`), and libtorch is loaded with the GIL released
        (:class:`TorchLibrariesFirst`). See docs/benchmarks.md, "Window responsiveness".
        """
        with imports_frozen(), TorchLibrariesFirst.installed():
            _ = self.context
            _import_run_modules()

    def device_summary(self) -> str:
        """e.g. "NVIDIA H100 (float16), 12.3 GiB in use" or "CPU (float32)"; "" until the engine has
        loaded (this never loads it, so it imports no torch of its own)."""
        if self._context is None:
            return ""
        from .device import memory_in_use

        device = self._context.device
        used = memory_in_use(device)
        return device.describe() if used is None else f"{device.describe()}, {used / 2**30:.1f} GiB in use"

    def resident_checkpoints(self) -> tuple[str, ...]:
        """The checkpoints loaded now, least recently used first (none before the engine loads)."""
        return tuple(self._context.cache.resident()) if self._context is not None else ()

    def vram_mb(self) -> tuple[int, int] | None:
        """(used, total) MiB of this engine's GPU; None on the CPU or before the engine loads."""
        if self._context is None:
            return None
        from .device import device_memory_mb

        return device_memory_mb(self._context.device)

    def checkpoint_loads(self) -> int:
        """How many checkpoint loads the engine has made (what a worker's placement keeps low)."""
        return self._context.cache.loads if self._context is not None else 0

    def check_run(self, config: RunConfig) -> list[str]:
        """Check, before anything loads (the runner calls this first), the checkpoints' families
        (refiner and hires checkpoint against the base, from their headers) and ``config``'s LoRA
        tags against the installed LoRAs. ConfigError, or warnings to log."""
        from .extra_networks_run import check_run
        from .family import model_family_problems

        problems = model_family_problems(self.context.cache.family_of, config)
        if problems:
            raise ConfigError(problems)
        return check_run(self.context, config)

    def generate_images(
        self,
        stage: StageExecution,
        payload: StagePayload,
        progress: ProgressCallback,
        cancel_token: CancelToken,
    ) -> StageResult:
        name = stage.stage
        try:
            return self._climb(name, payload, progress, cancel_token)
        except (CancelRequested, StageError):
            raise
        except (ModelError, UpscalerError) as exc:
            raise stage_error(name.value, exc) from exc

    def _climb(
        self, name: StageName, payload: StagePayload, progress: ProgressCallback, token: CancelToken
    ) -> StageResult:
        """Run the stage, climbing the out-of-memory ladder (:mod:`.oom`) from the step that
        last worked for this model and size; the note says which step it took."""
        ctx = self.context
        key = memory_key(name, payload)
        remembered = ctx.oom_steps.get(key)
        steps = ladder(CUDA_RUNGS if ctx.device.is_cuda else CPU_RUNGS, len(payload.seeds))
        start = index = steps.index(remembered) if remembered in steps else 0
        while True:
            step = steps[index]
            self._measures.apply(step)
            try:
                result = self._run_in_calls(name, payload, progress, token, step.batch)
                break
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if index + 1 >= len(steps):
                    raise OutOfMemoryError(
                        name.value, out_of_memory_advice(ctx.device.is_cuda, step)
                    ) from exc
                log.warning(
                    "%s ran out of memory; trying again with %s", name.value, steps[index + 1].describe()
                )
            free_device_memory(ctx.device)  # outside `except`: the failed call's frames are gone
            index += 1
        if step == Step():
            return result
        if index > start:
            ctx.oom_steps.remember(key, step)
            note = f"ran out of memory; succeeded with {step.describe()} (kept for this model and size)"
        else:
            note = f"ran with {step.describe()}: this model and size ran out of memory before"
        log.warning("%s %s", name.value, note)
        return StageResult(result.images, dataclasses.replace(result.info, notes=(*result.info.notes, note)))

    @property
    def _measures(self) -> MemoryMeasures:
        if self._memory_measures is None:
            self._memory_measures = MemoryMeasures(self.context, self.settings.memory_mode)
        return self._memory_measures

    def _run_in_calls(
        self,
        name: StageName,
        payload: StagePayload,
        progress: ProgressCallback,
        token: CancelToken,
        batch: int | None,
    ) -> StageResult:
        """The stage on ``payload``, ``batch`` images per call (all at once when None)."""
        if batch is None or batch >= len(payload.seeds):
            return self._run(name, payload, progress, token)
        results = [self._run(name, part, progress, token) for part in split_payload(payload, batch)]
        info = results[0].info
        notes = tuple(dict.fromkeys(n for r in results for n in r.info.notes))
        return StageResult(
            tuple(image for r in results for image in r.images), dataclasses.replace(info, notes=notes)
        )

    def _run(
        self, name: StageName, payload: StagePayload, progress: ProgressCallback, token: CancelToken
    ) -> StageResult:
        from .stages import adetailer, img2img, txt2img, upscale

        ctx = self.context
        config = payload.config
        runners: dict[StageName, tuple[Callable[..., StageResult], int]] = {
            StageName.TXT2IMG: (txt2img.run, txt2img.total_steps(config.txt2img)),
            StageName.IMG2IMG: (img2img.run, img2img.total_steps(config)),
            StageName.UPSCALE: (upscale.run, len(payload.images)),
            StageName.ADETAILER: (adetailer.run, adetailer.total_steps(config)),
        }
        run, total = runners[name]
        if name is StageName.UPSCALE:
            return run(ctx, payload, ctx.reporter(progress, token, total))
        from .extra_networks_run import prepare_stage, stage_params

        payload, model = prepare_stage(ctx, name.value, payload)
        result = run(ctx, payload, ctx.reporter(progress, token, total))
        return stage_params(ctx, name.value, model, payload, result)


def stage_error(stage: str, exc: ModelError | UpscalerError) -> StageError:
    """Core's StageError for an engine error, with the failure's kind (and the file it concerns)."""
    from .adetailer.detector import UntrustedModelError  # numpy: not at import (window start-up)

    if isinstance(exc, UntrustedModelError):
        kind = FailureKind.UNTRUSTED_DETECTOR
        return StageError(stage, str(exc), kind=kind, path=exc.path, sha256=exc.sha256)
    if isinstance(exc, MissingModelError):
        return StageError(stage, str(exc), kind=FailureKind.MISSING_MODEL, path=exc.path)
    return StageError(stage, str(exc))


def _import_run_modules() -> None:
    """Import what the first run of any stage imports (about 1,400 modules), so that run does not."""
    import diffusers
    import diffusers.loaders.single_file_utils  # single-file checkpoints (load_single_file)

    from .pipelines import diffusers_class_names
    from .schedulers import RULES
    from .stages import adetailer, img2img, txt2img, upscale  # noqa: F401

    for name in (*diffusers_class_names(), *sorted({rule.class_name for rule in RULES.values()})):
        getattr(diffusers, name)  # resolves diffusers' lazy module for the class


@contextmanager
def imports_frozen() -> Iterator[None]:
    """Run the block without full garbage collections, then freeze every object that exists.

    Importing torch, diffusers and transformers creates about half a million long-lived objects
    (modules, classes, functions). Each full (generation 2) collection walks all of them with the
    GIL held: on a 2-core machine 50 to 340 ms apiece, six times during these imports and once
    more when the first model load allocates, and every thread, the GUI thread too, stops for it.
    Inside the block only the young generations are collected (a millisecond or two each, and
    they free most of the imports' short-lived garbage). ``gc.freeze()`` then moves everything
    to the permanent generation, which collections skip, so later full collections (and
    ``gc.collect()`` after a model eviction) only walk what was created since, the models
    included. Reference counting still frees frozen objects; only reference cycles that were
    already garbage at the freeze stay (about 200 objects, 25 KiB, after these imports).
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 2**31 - 1)  # generation 2 never fills up
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(*thresholds)


#: libtorch's own libraries in dependency order (torch/lib). Those a build lacks are skipped.
TORCH_LIBRARIES: tuple[str, ...] = (
    "libc10.so",
    "libtorch_cpu.so",
    "libc10_cuda.so",
    "libtorch_cuda.so",
    "libtorch.so",
)


#: Set to "0" to let torch's import load libtorch itself (holding the GIL) during the warm-up.
PRELOAD_ENV = "STABLENEW_TORCH_PRELOAD"


class TorchLibrariesFirst(importlib.abc.MetaPathFinder):
    """Loads libtorch with the GIL released, right before Python imports ``torch._C``.

    Python imports an extension module with the GIL held, and for ``torch._C`` that includes the
    dynamic loader mapping, relocating and initialising libtorch_cpu and libtorch_cuda (over 1 GB
    of code): about 200 ms on a 2-core machine, during which no other thread runs Python. A
    ``dlopen`` called through ctypes releases the GIL, so this finder (consulted by the import
    system for every module, it never finds one itself) loads :data:`TORCH_LIBRARIES` that way
    when ``torch._C`` is asked for; the import then finds them resident and only initialises the
    module. By then torch has done its own preloading (libtorch_global_deps, the CUDA wheels'
    libraries), so the libraries resolve their dependencies exactly as the import would have.
    Linux only; anything unexpected leaves the loading to the import as before.
    """

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> None:
        if fullname == "torch._C" and path and sys.platform.startswith("linux"):
            _dlopen_without_gil([Path(folder) / "lib" / name for folder in path for name in TORCH_LIBRARIES])
        return None

    @classmethod
    @contextmanager
    def installed(cls) -> Iterator[None]:
        """Install a finder at the front of ``sys.meta_path`` for the block (no-op once torch is in,
        or with the environment variable ``STABLENEW_TORCH_PRELOAD=0``: the way out should a
        torch build ever disagree with the preload)."""
        if "torch" in sys.modules or os.environ.get(PRELOAD_ENV, "1") == "0":
            yield
            return
        finder = cls()
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            sys.meta_path.remove(finder)


def _dlopen_without_gil(files: Sequence[Path]) -> None:
    """``dlopen`` each existing file with the flags Python's import uses, releasing the GIL (a
    ctypes foreign call does; ``ctypes.CDLL()`` itself does not). The handles are kept open: the
    libraries stay loaded for the process, as torch's would. Stops at the first failure."""
    import ctypes

    try:
        dlopen = ctypes.CDLL(None).dlopen
    except (AttributeError, OSError):
        return
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = (ctypes.c_char_p, ctypes.c_int)
    mode = sys.getdlopenflags()
    for file in files:
        if file.is_file() and not dlopen(os.fsencode(file), mode):
            log.debug("preloading %s failed; the torch import loads it", file)
            return


def build_catalog(settings: EngineSettings) -> ModelCatalog:
    """The model catalog of ``settings.models_dir``, with the demo models listed first
    (built on first use, seconds, then cached on disk)."""
    from .demo import DEMO_MODELS, ensure_demo_model
    from .models import ModelCatalog

    extra = {}
    if settings.include_demo_models:
        extra = {name: ensure_demo_model(name, settings.demo_dir) for name in DEMO_MODELS}
    return ModelCatalog(settings.models_dir, extra_checkpoints=extra)


def default_trust_file() -> Path:
    """Where the detector trust list lives unless the settings name another file."""
    from ..core.outputs import app_data_dir

    return app_data_dir() / "trusted-detectors.json"


def _build_context(settings: EngineSettings) -> EngineContext:
    from .adetailer.detector import DetectorCache, DetectorTrust
    from .context import EngineContext
    from .device import choose_device
    from .library_logs import route_library_logs
    from .memory import device_budget
    from .pipelines import PipelineCache
    from .upscalers import UpscalerCache

    route_library_logs(settings.library_progress_bars)
    device = choose_device(settings.device)
    catalog = build_catalog(settings)
    budget = device_budget(device)  # one budget: pipelines, upscalers and detectors
    cache = PipelineCache(
        catalog, device, memory_mode=settings.memory_mode, budget=budget, compile_unet=settings.compile_unet
    )
    trust = DetectorTrust(settings.trust_file or default_trust_file())
    for file in settings.trusted_detectors:
        trust.trust(file)
    log.info("engine on %s; models from %s", device.describe(), settings.models_dir)
    return EngineContext(
        cache,
        catalog,
        device,
        settings.models_dir,
        trust,
        UpscalerCache(budget=budget),
        DetectorCache(budget=budget),
        settings.preview_every,
    )
