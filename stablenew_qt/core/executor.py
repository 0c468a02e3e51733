"""The Executor protocol: the one seam between the core and whatever makes pixels.

The engine (diffusers) and the FakeExecutor both implement ``generate_images``, so tests replace a
single method for every stage. :class:`Engine` adds what the session needs besides running stages
(preparing itself, saying where it runs), so nothing has to ask which executor it has.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from .config import RunConfig
from .errors import CancelRequested
from .sequencer import StageExecution


class CancelToken:
    """One run's cancel flag. Set from any thread; checked by the runner and inside stages."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelRequested()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds pass; True if cancelled."""
        return self._event.wait(timeout)


class ProgressCallback(Protocol):
    """Called by a stage after each denoising step (or unit of work).

    ``step`` counts from 1 to ``total``; ``preview`` is an optional small RGB image;
    ``label`` is a short phrase such as ``"hires"`` or ``"face 2 of 3"``.
    """

    def __call__(
        self, step: int, total: int, preview: Image.Image | None = None, label: str = ""
    ) -> None: ...


@dataclass(frozen=True)
class StagePayload:
    """Everything a stage needs, resolved by the runner.

    ``images`` are the previous stage's output (empty for txt2img); ``seeds`` hold one seed per
    image the stage makes or processes; ``prompt``/``negative_prompt`` are already resolved for
    this stage (img2img overrides applied).
    """

    config: RunConfig
    prompt: str
    negative_prompt: str
    seeds: tuple[int, ...]
    images: tuple[Image.Image, ...] = ()


@dataclass(frozen=True)
class StageInfo:
    """What a stage reports about itself, for the infotext and the manifest.

    ``params`` are A1111 ``extra_generation_params`` keys in insertion order (for example
    ``"Hires upscale"``, ``"Refiner"``, ``"ADetailer model"``); ``notes`` are log lines for the user.
    """

    model_name: str | None = None
    model_hash: str | None = None
    vae_name: str | None = None
    vae_hash: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageResult:
    images: tuple[Image.Image, ...]
    info: StageInfo = field(default_factory=StageInfo)


@runtime_checkable
class Executor(Protocol):
    """Runs one stage. Must check ``cancel_token`` often and raise CancelRequested when set;
    raise StageError (or OutOfMemoryError) with a user-facing message on failure."""

    def generate_images(
        self,
        stage: StageExecution,
        payload: StagePayload,
        progress: ProgressCallback,
        cancel_token: CancelToken,
    ) -> StageResult: ...


@runtime_checkable
class EngineInfo(Protocol):
    """What an engine says about itself, besides running stages."""

    def warm_up(self) -> None:
        """Prepare now (imports, device, model list) so the first run does not; loads no model.
        Called on the thread that runs the stages."""
        ...

    def device_summary(self) -> str:
        """One line such as "NVIDIA H100 (float16), 12.3 GiB in use" or "CPU (float32)"; "" while
        the engine has not loaded (this never loads it)."""
        ...


@runtime_checkable
class Engine(Executor, EngineInfo, Protocol):
    """An executor that is also an :class:`EngineInfo`: what an EngineSession runs jobs with."""
