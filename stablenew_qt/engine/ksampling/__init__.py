"""A1111's sampling, step for step, on diffusers components.

The stages stop calling diffusers pipelines for denoising and call :func:`sample` instead. It
computes what A1111 1.10 computes: its k-diffusion wrapper (fractional timesteps interpolated in
log-sigma, noise scaled by sigma_max), its sigma grids for every schedule type, its CFG denoiser
(prompt editing per denoiser step, ``AND`` parts, inpaint blending on the denoised latent, the
refiner switch inside the run), its samplers with their defaults, and its seeds (RNG sources GPU,
CPU and NV, variation seeds, seed resize, ENSD, the SDE samplers' Brownian tree).
``docs/samplers.md`` has the measured distance to A1111 for every sampler and schedule.

Interface for the stages::

    from stablenew_qt.engine.ksampling import (
        DenoiserModel, ImageNoise, NoiseSpec, RefinerSwitch, SamplingConds, sample)

    model = DenoiserModel.from_pipeline(pipe)           # UNet + A1111's alphas_cumprod
    noise = ImageNoise(NoiseSpec(seeds=(1234,), source="GPU"), (4, h // 8, w // 8), model.device)
    conds = SamplingConds(batch_cond, cond_time_ids=..., uncond_time_ids=...)   # time ids: SDXL only
    latents = sample(model, "DPM++ 2M", "Automatic", 20, conds, noise, cfg_scale=7.0,
                     callback=on_step, cancel=reporter.check)

- txt2img: as above; the result is in the UNet's latent space (divide by the VAE scaling factor
  to decode).
- img2img: ``init_latents=`` (VAE-encoded, scaled), ``denoise=``, optionally
  ``noise_multiplier=`` (A1111's img2img "Noise multiplier"; not applied in the hires pass).
  A1111 runs ``int(min(denoise, 0.999) * steps) + 1`` steps of a ``steps`` schedule.
- hires pass: a fresh :class:`ImageNoise` with the same seeds at the hires latent shape,
  ``init_latents=`` the upscaled latents, ``denoise=``, ``fixed_steps=True`` and
  ``steps = hires steps or steps`` (A1111 builds ``int(steps / min(denoise, 0.999))`` and runs
  the last ``steps``), sampler and schedule of the hires pass.
- inpaint: ``mask=`` A1111's latent mask (1 = repaint), ``init_latents=`` the (filled) original
  latents; 9-channel models also need ``image_conditioning=`` (mask + masked-image latents).
- refiner: ``refiner=RefinerSwitch(refiner_model, refiner_conds, switch_at)``; the switch happens
  inside the run at the first denoiser call whose completed ratio reaches ``switch_at``.

Conditioning steps: a ``ScheduledCond`` is looked up with A1111's *denoiser-call* counter, which
starts at 0 in every pass and advances once per model evaluation (twice a step for second-order
samplers). Prompt-editing schedules must therefore be built over ``SamplerSpec.total_steps(steps)``
(A1111 does so), with ``steps`` the pass's nominal steps.
"""

from __future__ import annotations

from .cfg import SamplingConds
from .common import StepState
from .loop import RefinerSwitch, SamplerOptions, StepReport, resolve_schedule, sample
from .model import DenoiserModel, UNetBatch, alphas_cumprod_from_config
from .noise import RNG_SOURCES, ImageNoise, NoiseSpec
from .registry import SAMPLERS, SamplerSpec, sampler_spec

__all__ = [
    "RNG_SOURCES",
    "SAMPLERS",
    "DenoiserModel",
    "ImageNoise",
    "NoiseSpec",
    "RefinerSwitch",
    "SamplerOptions",
    "SamplerSpec",
    "SamplingConds",
    "StepReport",
    "StepState",
    "UNetBatch",
    "alphas_cumprod_from_config",
    "resolve_schedule",
    "sample",
    "sampler_spec",
]
