"""Out of memory as a recoverable state: the ladder of measures the executor climbs.

When a stage runs out of memory (``torch.OutOfMemoryError`` on CUDA, an allocation
``RuntimeError`` or ``MemoryError`` on the CPU), the executor frees what it can (a garbage
collection, torch's CUDA cache) and runs the stage again one rung higher. Rungs add up: each
keeps the ones below it.

1. VAE tiling (decode and encode in tiles, whatever the size);
2. attention slicing (attention computed a slice at a time);
3. model CPU offload (only the running model on the GPU; CUDA only);
4. sequential CPU offload (one layer at a time on the GPU; CUDA only);
5. half the batch per call, again until one image per call (batches only).

On the CPU the offload rungs cannot free anything and are skipped. The rung that worked is
remembered per (model, width × height) by :class:`RememberedRungs` (one per engine, on the
context, beside the memory budget), so the next job of that model and size starts there. The
stage's notes say what was done (the log, the manifest); when every rung fails the stage fails
with an :class:`~stablenew_qt.core.errors.OutOfMemoryError` and advice.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..core.executor import StagePayload
from ..core.options import MemoryMode
from ..core.runner import from_image
from ..core.sequencer import StageName


class Rung(StrEnum):
    VAE_TILING = "vae_tiling"
    ATTENTION_SLICING = "attention_slicing"
    MODEL_OFFLOAD = "model_offload"
    SEQUENTIAL_OFFLOAD = "sequential_offload"
    SMALLER_BATCH = "smaller_batch"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Rung.VAE_TILING: "VAE tiling",
    Rung.ATTENTION_SLICING: "attention slicing",
    Rung.MODEL_OFFLOAD: "model CPU offload",
    Rung.SEQUENTIAL_OFFLOAD: "sequential CPU offload",
    Rung.SMALLER_BATCH: "a smaller batch",
}

CUDA_RUNGS = tuple(Rung)
CPU_RUNGS = (Rung.VAE_TILING, Rung.ATTENTION_SLICING, Rung.SMALLER_BATCH)


@dataclass(frozen=True)
class Step:
    """One place on the ladder: the measures in force and the images per call (None: all)."""

    rungs: tuple[Rung, ...] = ()
    batch: int | None = None

    def describe(self) -> str:
        """ "VAE tiling, attention slicing and batch 2 per call" (what a note says)."""
        parts = [r.label for r in self.rungs if r is not Rung.SMALLER_BATCH]
        if self.batch is not None:
            parts.append(f"batch {self.batch} per call")
        if not parts:
            return "no measure"
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def ladder(rungs: Sequence[Rung], batch: int) -> list[Step]:
    """Every step from the plain run (first) to the last resort, for a stage of ``batch`` images."""
    steps = [Step()]
    for rung in rungs:
        if rung is Rung.SMALLER_BATCH:
            size, rungs = batch, (*steps[-1].rungs, rung)
            while size > 1:
                size = (size + 1) // 2
                steps.append(Step(rungs, size))
        else:
            steps.append(Step((*steps[-1].rungs, rung)))
    return steps


MemoryKey = tuple[str, int, int]


def memory_key(name: StageName, payload: StagePayload) -> MemoryKey:
    """What the out-of-memory ladder remembers a step by: the stage's model and image size."""
    config = payload.config
    model = config.txt2img.model
    if name is StageName.IMG2IMG and config.img2img.model:
        model = config.img2img.model
    if payload.images:
        width, height = payload.images[0].size
    else:
        width, height = config.txt2img.width, config.txt2img.height
    return (f"{name.value}:{model}", width, height)


def split_payload(payload: StagePayload, batch: int) -> list[StagePayload]:
    """``payload`` as calls of at most ``batch`` images each (seeds, and input images with them;
    each part's variation seed its first image's, :func:`core.runner.from_image`)."""
    parts = []
    for start in range(0, len(payload.seeds), batch):
        seeds = payload.seeds[start : start + batch]
        images = payload.images[start : start + batch] if payload.images else ()
        config = from_image(payload.config, start)
        parts.append(dataclasses.replace(payload, config=config, seeds=seeds, images=images))
    return parts


def out_of_memory_advice(is_cuda: bool, last: Step) -> str:
    """The message when even the last step ran out of memory."""
    if is_cuda:
        measures = "sequential offload" + (" and batch 1" if last.batch == 1 else "")
        return f"out of GPU memory even with {measures}: lower the size or close other GPU programs"
    measures = "attention slicing" + (" and batch 1" if last.batch == 1 else "")
    return f"out of memory even with {measures}: lower the size or close other programs"


class RememberedRungs:
    """The step that worked, per (model, width, height), for this engine's session. Thread-safe."""

    def __init__(self) -> None:
        self._steps: dict[MemoryKey, Step] = {}
        self._lock = threading.Lock()

    def get(self, key: MemoryKey) -> Step:
        with self._lock:
            return self._steps.get(key, Step())

    def remember(self, key: MemoryKey, step: Step) -> None:
        with self._lock:
            self._steps[key] = step


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, a CPU allocation failure, or Python's MemoryError."""
    if isinstance(exc, MemoryError):
        return True
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class MemoryMeasures:
    """Puts a :class:`Step`'s measures in force on the engine's pipelines (through the pipeline
    cache and the context's VAE-tiling switch) and takes them back for a plain step."""

    def __init__(self, context: Any, base_mode: MemoryMode) -> None:
        self.context = context
        self.base_mode = base_mode
        self.current = Step()

    def apply(self, step: Step) -> None:
        cache = self.context.cache
        self.context.force_vae_tiling = Rung.VAE_TILING in step.rungs
        cache.set_attention_slicing(Rung.ATTENTION_SLICING in step.rungs)
        mode = self.base_mode
        if Rung.MODEL_OFFLOAD in step.rungs and mode is MemoryMode.GPU:
            mode = MemoryMode.MODEL_OFFLOAD
        if Rung.SEQUENTIAL_OFFLOAD in step.rungs:
            mode = MemoryMode.SEQUENTIAL_OFFLOAD
        cache.set_memory_mode(mode)
        self.current = step
