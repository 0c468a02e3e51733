"""Step callbacks: progress, previews and cancellation inside a denoising pass.

The stages' sampling loop (``ksampling.sample``, through ``engine.denoise.run_pass``) calls
:meth:`StepReporter.sampler_step` after every sampler step and :meth:`StepReporter.check` before
every UNet call, so a cancel stops the pass within one model evaluation. :meth:`callback` is the
same for a diffusers pipeline call (``callback_on_step_end``: it sets the pipeline's interrupt flag
and the caller raises CancelRequested afterwards), for code that still runs a pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..core.errors import CancelRequested
from ..core.executor import CancelToken, ProgressCallback


@dataclass
class StepReporter:
    """Counts steps across the passes of one stage (first pass, refiner, hires) and reports them.

    ``total`` is the expected number of denoising steps of the whole stage; ``preview_every`` 0
    turns previews off. ``make_preview`` turns the callback's latents into an image.
    """

    progress: ProgressCallback
    token: CancelToken
    total: int
    preview_every: int = 0
    make_preview: Callable[[Any], Image.Image] | None = None
    done: int = 0

    def sampler_step(self, label: str, latents: Any) -> None:
        """One step of the sampling loop (``ksampling.sample``'s callback): count it and preview
        ``latents`` (the step's x0 estimate, UNet latent space) every ``preview_every`` steps."""
        self.done = min(self.done + 1, self.total)
        preview = None
        if self.make_preview and self.preview_every and self.done % self.preview_every == 0:
            preview = self.make_preview(latents)
        self.progress(self.done, self.total, preview, label)

    def check(self) -> None:
        """Raise CancelRequested if the run was cancelled (call after every pipeline call)."""
        if self.token.cancelled:
            raise CancelRequested()

    def step(self, label: str, count: int = 1) -> None:
        """Report ``count`` units of non-denoising work (tiles, images)."""
        self.check()
        self.done = min(self.done + count, self.total)
        self.progress(self.done, self.total, None, label)
