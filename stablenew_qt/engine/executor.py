"""DiffusersExecutor: core's Executor protocol, implemented with diffusers in this process.

Construct it cheaply anywhere; torch and diffusers are imported on first use, on the thread
that runs the stages (the GUI's engine thread, or the CLI's main thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import CancelRequested, OutOfMemoryError, StageError
from ..core.executor import CancelToken, ProgressCallback, StagePayload, StageResult
from ..core.sequencer import StageExecution, StageName
from .device import DevicePreference
from .errors import ModelError
from .upscalers import UpscalerError

if TYPE_CHECKING:
    from .context import EngineContext
    from .models import ModelCatalog
    from .pipelines import MemoryMode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    """How the engine runs. ``models_dir`` has A1111's layout (an A1111/Forge folder works)."""

    models_dir: Path
    device: DevicePreference = "auto"
    memory_mode: MemoryMode = "gpu"
    preview_every: int = 5
    demo_dir: Path | None = None
    include_demo_models: bool = True
    #: Regional torch.compile of the UNet on CUDA (slower first run, faster after).
    compile_unet: bool = False
    #: ADetailer detector files the user trusts (YOLO .pt files are pickles; see docs/adetailer.md).
    trusted_detectors: tuple[Path, ...] = ()
    #: Where the detector trust list lives (default: the app data folder).
    trust_file: Path | None = None


class DiffusersExecutor:
    """Runs txt2img (with refiner and hires), img2img and upscale with diffusers."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._context: EngineContext | None = None  # built lazily, on the engine thread

    @property
    def context(self) -> EngineContext:
        """The engine context (device, model catalog, pipeline cache), created on first use."""
        if self._context is None:
            self._context = _build_context(self.settings)
        return self._context

    def warm_up(self) -> None:
        """Import torch and diffusers' SD pipelines and build the engine context now (device,
        model catalog, demo models). Call on the engine thread; loads no checkpoint."""
        _ = self.context
        import diffusers.pipelines.stable_diffusion
        import diffusers.pipelines.stable_diffusion_xl  # noqa: F401

    def device_summary(self) -> str:
        """e.g. "NVIDIA H100 (float16), 12.3 GiB in use" or "CPU (float32)"; "" until the engine has
        loaded (this never loads it, so it imports no torch of its own)."""
        if self._context is None:
            return ""
        from .device import memory_in_use

        device = self._context.device
        used = memory_in_use(device)
        return device.describe() if used is None else f"{device.describe()}, {used / 2**30:.1f} GiB in use"

    def generate_images(
        self,
        stage: StageExecution,
        payload: StagePayload,
        progress: ProgressCallback,
        cancel_token: CancelToken,
    ) -> StageResult:
        name = stage.stage
        try:
            return self._run(name, payload, progress, cancel_token)
        except (CancelRequested, StageError):
            raise
        except (ModelError, UpscalerError) as exc:
            raise StageError(name.value, str(exc)) from exc
        except Exception as exc:
            if _is_out_of_memory(exc):
                raise OutOfMemoryError(
                    name.value,
                    "the GPU ran out of memory: lower the size, batch or hires factor, or choose model CPU "
                    "offload in the Models menu",
                ) from exc
            raise

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
        return run(ctx, payload, ctx.reporter(progress, token, total))


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def build_catalog(settings: EngineSettings) -> ModelCatalog:
    """The model catalog of ``settings.models_dir``, with the demo models listed first
    (built on first use, seconds, then cached on disk)."""
    from .demo import DEMO_MODELS, ensure_demo_model
    from .models import ModelCatalog

    extra = {}
    if settings.include_demo_models:
        extra = {name: ensure_demo_model(name, settings.demo_dir) for name in DEMO_MODELS}
    return ModelCatalog(settings.models_dir, extra_checkpoints=extra)


def _build_context(settings: EngineSettings) -> EngineContext:
    from ..core.outputs import app_data_dir
    from .adetailer.detector import DetectorTrust
    from .context import EngineContext
    from .device import choose_device
    from .pipelines import PipelineCache

    device = choose_device(settings.device)
    catalog = build_catalog(settings)
    cache = PipelineCache(
        catalog, device, memory_mode=settings.memory_mode, compile_unet=settings.compile_unet
    )
    trust = DetectorTrust(settings.trust_file or app_data_dir() / "trusted-detectors.json")
    for file in settings.trusted_detectors:
        trust.trust(file)
    log.info("engine on %s; models from %s", device.describe(), settings.models_dir)
    return EngineContext(cache, catalog, device, settings.models_dir, trust, settings.preview_every)
