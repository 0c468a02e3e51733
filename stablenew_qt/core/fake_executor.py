"""FakeExecutor: a scriptable stand-in for the engine, for GUI and controller tests only.

It makes deterministic images of the right sizes (solid colours derived from prompt and seed,
blended and resized the way each stage would change them), reports one progress step per
configured step, honours cancellation at every step, and records every call. Script failures with
:meth:`fail_at`, :meth:`oom_at`, :meth:`raise_at` and :meth:`block_at`.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .config import RunConfig
from .errors import OutOfMemoryError, StageError
from .executor import CancelToken, ProgressCallback, StageInfo, StagePayload, StageResult
from .sequencer import StageExecution, StageName
from .sizes import txt2img_output_size, upscaled_size


@dataclass(frozen=True)
class FakeCall:
    """One recorded ``generate_images`` call."""

    stage: StageName
    payload: StagePayload
    input_sizes: tuple[tuple[int, int], ...]
    thread: str


@dataclass(frozen=True)
class _Script:
    step: int
    error: BaseException | None  # None means "block until cancelled"


def _colour(*parts: object) -> tuple[int, int, int]:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return digest[0], digest[1], digest[2]


def fake_model_hash(name: str) -> str:
    """A stable 10-hex "model hash" for a model name (real hashes come from the engine)."""
    return hashlib.sha256(name.encode()).hexdigest()[:10]


class FakeExecutor:
    """Deterministic, scriptable Executor. ``step_delay`` seconds are slept per step (with cancel
    checks), so tests can cancel mid-stage; ``block_timeout`` bounds :meth:`block_at` waits."""

    def __init__(self, *, step_delay: float = 0.0, block_timeout: float = 30.0) -> None:
        self.step_delay = step_delay
        self.block_timeout = block_timeout
        self.calls: list[FakeCall] = []
        self._scripts: dict[StageName, _Script] = {}
        self._lock = threading.Lock()
        self.blocked = threading.Event()  # set when a scripted block is reached
        self.warm_ups = 0
        self.device = ""

    # -- scripting -----------------------------------------------------------------------
    def fail_at(
        self, stage: StageName | str, message: str = "scripted failure", step: int = 1
    ) -> FakeExecutor:
        self._scripts[StageName(stage)] = _Script(step, StageError(str(stage), message))
        return self

    def oom_at(self, stage: StageName | str, step: int = 1) -> FakeExecutor:
        error = OutOfMemoryError(
            str(stage), "CUDA out of memory: lower the size or batch, or use model CPU offload"
        )
        self._scripts[StageName(stage)] = _Script(step, error)
        return self

    def raise_at(self, stage: StageName | str, error: BaseException, step: int = 1) -> FakeExecutor:
        self._scripts[StageName(stage)] = _Script(step, error)
        return self

    def block_at(self, stage: StageName | str, step: int = 1) -> FakeExecutor:
        """At ``step`` of ``stage``, wait until the run is cancelled (sets :attr:`blocked`)."""
        self._scripts[StageName(stage)] = _Script(step, None)
        return self

    @property
    def stages_called(self) -> list[StageName]:
        return [c.stage for c in self.calls]

    # -- EngineInfo ----------------------------------------------------------------------
    def warm_up(self) -> None:
        """Nothing to prepare (counted in :attr:`warm_ups`)."""
        self.warm_ups += 1

    def device_summary(self) -> str:
        """:attr:`device` (a test sets it to see the readout; "" by default, like an unloaded engine)."""
        return self.device

    # -- Executor ------------------------------------------------------------------------
    def generate_images(
        self,
        stage: StageExecution,
        payload: StagePayload,
        progress: ProgressCallback,
        cancel_token: CancelToken,
    ) -> StageResult:
        with self._lock:
            self.calls.append(
                FakeCall(
                    stage.stage,
                    payload,
                    tuple(im.size for im in payload.images),
                    threading.current_thread().name,
                )
            )
        total = _step_count(stage.stage, payload.config)
        for step in range(1, total + 1):
            cancel_token.raise_if_cancelled()
            self._maybe_script(stage.stage, step, cancel_token)
            if self.step_delay:
                cancel_token.wait(self.step_delay)
            progress(step, total, label=stage.stage.value)
        cancel_token.raise_if_cancelled()
        images = _make_images(stage.stage, payload)
        return StageResult(images, _info(stage.stage, payload))

    def _maybe_script(self, stage: StageName, step: int, token: CancelToken) -> None:
        script = self._scripts.get(stage)
        if script is None or script.step != step:
            return
        if script.error is not None:
            raise script.error
        self.blocked.set()
        if not token.wait(self.block_timeout):
            raise StageError(stage.value, f"FakeExecutor blocked for {self.block_timeout}s without a cancel")
        token.raise_if_cancelled()


def _step_count(stage: StageName, config: RunConfig) -> int:
    t2i = config.txt2img
    if stage is StageName.TXT2IMG:
        return t2i.steps + ((t2i.hires_steps or t2i.steps) if t2i.hires_enabled else 0)
    if stage is StageName.IMG2IMG:
        return max(1, int(config.img2img.steps * config.img2img.denoise))
    if stage is StageName.ADETAILER:
        return len(config.adetailer.active_units)
    return 1


def _make_images(stage: StageName, payload: StagePayload) -> tuple[Image.Image, ...]:
    config = payload.config
    if stage is StageName.TXT2IMG:
        size = txt2img_output_size(config.txt2img)
        return tuple(Image.new("RGB", size, _colour(payload.prompt, seed)) for seed in payload.seeds)
    if stage is StageName.IMG2IMG:
        strength = config.img2img.denoise
        return tuple(
            Image.blend(im, Image.new("RGB", im.size, _colour("img2img", payload.prompt, seed)), strength)
            for im, seed in zip(payload.images, payload.seeds, strict=True)
        )
    if stage is StageName.UPSCALE:
        factor = config.upscale.upscale_factor
        return tuple(
            im.resize(upscaled_size(*im.size, factor), Image.Resampling.NEAREST) for im in payload.images
        )
    out = []
    for im, seed in zip(payload.images, payload.seeds, strict=True):
        im = im.copy()
        w, h = im.size
        ImageDraw.Draw(im).rectangle(
            (w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=_colour("adetailer", seed)
        )
        out.append(im)
    return tuple(out)


def _info(stage: StageName, payload: StagePayload) -> StageInfo:
    config = payload.config
    if stage is StageName.TXT2IMG:
        name = config.txt2img.model.rsplit(".", 1)[0] or "fake-model"
        refiner = config.txt2img.refiner_model_name if config.txt2img.refiner_enabled else None
        params = {"Refiner hash": fake_model_hash(refiner)} if refiner else {}
        return StageInfo(model_name=name, model_hash=fake_model_hash(name), params=params)
    if stage is StageName.IMG2IMG:
        name = (config.img2img.model or config.txt2img.model).rsplit(".", 1)[0] or "fake-model"
        size = payload.images[0].size if payload.images else (0, 0)
        return StageInfo(
            model_name=name, model_hash=fake_model_hash(name), params={"Size": f"{size[0]}x{size[1]}"}
        )
    return StageInfo(notes=(f"fake {stage.value}: {len(payload.images)} image(s)",))
