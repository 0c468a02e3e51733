"""A1111's classifier-free-guidance denoiser (``modules/sd_samplers_cfg_denoiser.py``).

One call (a "denoiser step"; A1111 counts these, not sampler steps, so Heun advances it twice a
step) does, in order:

1. the cancel check, then the refiner switch (A1111 ``apply_refiner``): the completed ratio is
   ``(999 - t) / 1000`` for the training timestep t whose sigma is nearest the current one (the
   timestep itself for DDIM/PLMS/UniPC), or denoiser steps / expected steps with "switch by
   sampling steps"; once it reaches ``switch_at`` the refiner's model and conds replace the base's
   for the rest of the same sampler run;
2. each image's conditioning at this step: A1111 takes the first scheduled entry whose end step
   is >= the step, and the *first* entry when none is (``reconstruct_cond_batch``); every ``AND``
   part is one row; parts of different token lengths are padded by repeating their last vector;
3. (DDIM/PLMS/UniPC only) the inpaint blend of the input, ``x * nmask + init * mask``;
4. the UNet: with A1111's defaults (batch cond/uncond on, no cond/uncond padding) one call over
   all cond rows and the uncond rows when their token lengths agree; otherwise the cond rows in
   chunks of 2 x batch and a separate call for the uncond rows;
5. guidance: ``uncond + sum(weight * scale * (cond_part - uncond))`` per image;
6. (k-diffusion samplers) the inpaint blend of the denoised result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..conds import BatchCond, ScheduledCond, TextCond
from .model import UNetBatch

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SamplingConds:
    """The conditioning of one model: the batch's texts plus SDXL's size/aesthetic ids.

    ``cond_time_ids`` / ``uncond_time_ids`` are SDXL's ``time_ids`` (6 values for the base:
    original h, w, crop top, left, target h, w; 5 for the refiner: original h, w, crop top, left,
    aesthetic score), the same for every image; None for SD 1.x.
    """

    batch: BatchCond
    cond_time_ids: torch.Tensor | None = None
    uncond_time_ids: torch.Tensor | None = None


def scheduled_at(schedule: ScheduledCond, step: int) -> TextCond:
    """A1111's choice for denoiser step ``step`` (``ScheduledCond.at``, kept as a name here)."""
    return schedule.at(step)


def stack_padded(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """A1111's ``stack_conds``: pad shorter token sequences by repeating their last vector."""
    import torch

    tokens = max(t.shape[0] for t in tensors)
    padded = [
        t if t.shape[0] == tokens else torch.vstack([t, t[-1:].repeat([tokens - t.shape[0], 1])])
        for t in tensors
    ]
    return torch.stack(padded)


@dataclass(frozen=True)
class _Rows:
    """Conditioning rows for the UNet, cond rows first then uncond rows."""

    parts: list[list[tuple[int, float]]]  # per image: (row index, weight)
    cond: UNetBatch
    uncond: UNetBatch


def _text_rows(conds: Sequence[TextCond], time_ids: torch.Tensor | None, image_cond: Any) -> UNetBatch:
    import torch

    crossattn = stack_padded([c.crossattn for c in conds])
    pooled = None
    if all(c.pooled is not None for c in conds):
        pooled = torch.stack([c.pooled for c in conds if c.pooled is not None])
    ids = None if time_ids is None else time_ids.reshape(1, -1).repeat(len(conds), 1)
    return UNetBatch(crossattn, pooled, ids, image_cond)


@dataclass
class InpaintBlend:
    """A1111's latent mask: ``mask`` keeps the original (1 - latmask), ``nmask`` = latmask repaints."""

    init_latents: torch.Tensor
    mask: torch.Tensor
    nmask: torch.Tensor

    def apply(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self.nmask + self.init_latents * self.mask


@dataclass(frozen=True)
class ModelStage:
    """A denoiser (sigma- or timestep-based wrapper around a model) and the conds it is used with."""

    inner: Any
    conds: SamplingConds


@dataclass(frozen=True)
class PendingRefiner:
    stage: ModelStage
    switch_at: float
    by_sample_steps: bool = False


class CFGDenoiser:
    """``denoiser(x, sigma)`` for a sampler; see the module docstring for what one call does."""

    def __init__(
        self,
        stage: ModelStage,
        cfg_scale: float,
        *,
        image_cond: torch.Tensor | None = None,
        inpaint: InpaintBlend | None = None,
        refiner: PendingRefiner | None = None,
        total_steps: int = 1,
        check_cancel: Callable[[], None] | None = None,
    ) -> None:
        self.stage = stage
        self.cfg_scale = cfg_scale
        self.image_cond = image_cond
        self.inpaint = inpaint
        self.refiner = refiner
        self.total_steps = max(total_steps, 1)
        self.check_cancel = check_cancel
        self.blend_input = getattr(stage.inner, "kind", "sigma") == "timestep"
        self.step = 0
        self.switched_at_step: int | None = None
        # DDIM CFG++ sets these (A1111's cond_scale_miltiplier / need_last_noise_uncond).
        self.cond_scale_multiplier = 1.0
        self.keep_uncond = False
        self.last_uncond: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.check_cancel is not None:
            self.check_cancel()
        self._maybe_switch(sigma)
        rows = self._rows(x.shape[0])
        if self.inpaint is not None and self.blend_input:
            x = self.inpaint.apply(x)
        x_out = self._evaluate(x, sigma, rows)
        batch = x.shape[0]
        if self.keep_uncond:
            self.last_uncond = x_out[-batch:].clone()
        denoised = self._combine(x_out, rows.parts, batch, self.cfg_scale * self.cond_scale_multiplier)
        if self.inpaint is not None and not self.blend_input:
            denoised = self.inpaint.apply(denoised)
        self.step += 1
        return denoised

    def _maybe_switch(self, sigma: torch.Tensor) -> None:
        import torch

        refiner = self.refiner
        if refiner is None:
            return
        if refiner.by_sample_steps:
            done = self.step / self.total_steps < refiner.switch_at
        else:
            timestep = torch.tensor(self.stage.inner.nearest_timestep(sigma))
            done = bool((999 - timestep) / 1000 < refiner.switch_at)
        if done:
            return
        self.stage = refiner.stage
        self.refiner = None
        self.switched_at_step = self.step

    def _rows(self, batch: int) -> _Rows:
        conds = self.stage.conds
        parts: list[list[tuple[int, float]]] = []
        cond_texts: list[TextCond] = []
        repeats: list[int] = []
        for prompt in conds.batch.cond:
            image_parts = []
            for schedule, weight in prompt.parts:
                image_parts.append((len(cond_texts), weight))
                cond_texts.append(scheduled_at(schedule, self.step))
            parts.append(image_parts)
            repeats.append(len(prompt.parts))
        if len(parts) != batch:
            raise ValueError(f"conditioning for {len(parts)} images but {batch} latents")
        uncond_texts = [scheduled_at(s, self.step) for s in conds.batch.uncond]
        image_cond_rows = None if self.image_cond is None else _repeat_rows(self.image_cond, repeats)
        cond = _text_rows(cond_texts, conds.cond_time_ids, image_cond_rows)
        uncond = _text_rows(uncond_texts, conds.uncond_time_ids, self.image_cond)
        return _Rows(parts, cond, uncond)

    def _evaluate(self, x: torch.Tensor, sigma: torch.Tensor, rows: _Rows) -> torch.Tensor:
        import torch

        repeats = [len(p) for p in rows.parts]
        x_in = torch.cat([_repeat_rows(x, repeats), x])
        sigma_in = torch.cat([_repeat_rows(sigma, repeats), sigma])
        inner = self.stage.inner
        n_cond = rows.cond.crossattn.shape[0]
        if rows.cond.crossattn.shape[1] == rows.uncond.crossattn.shape[1]:
            out: torch.Tensor = inner(x_in, sigma_in, _concat(rows.cond, rows.uncond))
            return out
        x_out = torch.zeros_like(x_in)
        chunk = 2 * x.shape[0]
        for a in range(0, n_cond, chunk):
            b = min(a + chunk, n_cond)
            x_out[a:b] = inner(x_in[a:b], sigma_in[a:b], rows.cond.rows(a, b))
        x_out[n_cond:] = inner(x_in[n_cond:], sigma_in[n_cond:], rows.uncond)
        return x_out

    @staticmethod
    def _combine(
        x_out: torch.Tensor, parts: list[list[tuple[int, float]]], batch: int, scale: float
    ) -> torch.Tensor:
        import torch

        uncond = x_out[-batch:]
        denoised = torch.clone(uncond)
        for i, image_parts in enumerate(parts):
            for row, weight in image_parts:
                denoised[i] += (x_out[row] - uncond[i]) * (weight * scale)
        return denoised


def _repeat_rows(t: torch.Tensor, repeats: Sequence[int]) -> torch.Tensor:
    import torch

    return torch.cat([torch.stack([t[i] for _ in range(n)]) for i, n in enumerate(repeats)])


def _concat(first: UNetBatch, second: UNetBatch) -> UNetBatch:
    import torch

    def cat(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None or b is None else torch.cat([a, b])

    return UNetBatch(
        torch.cat([first.crossattn, second.crossattn]),
        cat(first.text_embeds, second.text_embeds),
        cat(first.time_ids, second.time_ids),
        cat(first.image_cond, second.image_cond),
    )
