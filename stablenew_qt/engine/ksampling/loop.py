"""``sample()``: one A1111 sampling pass (txt2img, img2img, hires or inpaint), start to end.

1. Resolve the sampler, its denoiser (CompVis, LCM or timestep wrapper) and the schedule label.
2. Build the grid (sigmas or DDPM timesteps) and, for img2img, A1111's tail of it.
3. Make the starting latents: noise x sigma_max (txt2img), init + noise x sigma_start (img2img),
   or the DDPM noising for the timestep samplers.
4. Wrap the model in the CFG denoiser (conds per step, inpaint blend, refiner switch, cancel).
5. Pick the noise source (image streams, or the Brownian tree for SDE samplers) and run.
6. Inpaint: blend the result with the original latents, as A1111 does after sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .brownian import BrownianTreeNoise
from .cfg import CFGDenoiser, InpaintBlend, ModelStage, PendingRefiner, SamplingConds
from .common import StepState
from .denoisers import KarrasDenoiser, LCMDenoiser, TimestepDenoiser
from .model import DenoiserModel
from .noise import ImageNoise
from .registry import DPM_SOLVER, LCM, TIMESTEP, UNIPC, SamplerSpec, sampler_spec
from .schedules import SCHEDULE_TYPES, build_sigmas, ddpm_timesteps, img2img_sigmas, img2img_steps

if TYPE_CHECKING:
    import torch

AUTOMATIC = "Automatic"


@dataclass(frozen=True)
class SamplerOptions:
    """A1111's sampler settings (Settings > Sampler parameters), defaults as shipped.

    ``eta`` None means A1111's default for the sampler (1.0, or 0.0 for DDIM). ``s_tmax`` 0 means
    infinity, as in A1111. The churn options reach Euler, Heun and DPM2 only; ``s_noise`` reaches
    the samplers A1111 passes it to (see ``SamplerSpec.s_noise``).
    """

    eta: float | None = None
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = 0.0
    s_noise: float = 1.0
    always_discard_next_to_last_sigma: bool = False
    sgm_noise_multiplier: bool = False
    uni_pc_variant: str = "bh1"
    uni_pc_skip_type: str = "time_uniform"
    uni_pc_order: int = 3
    uni_pc_lower_order_final: bool = True


@dataclass(frozen=True)
class RefinerSwitch:
    """Continue the same sampler run on ``model`` with ``conds`` once the completed ratio reaches
    ``switch_at`` (A1111's "Switch at"); ``by_sample_steps`` is A1111's option
    ``refiner_switch_by_sample_steps`` (ratio = denoiser steps done / expected)."""

    model: DenoiserModel
    conds: SamplingConds
    switch_at: float
    by_sample_steps: bool = False


@dataclass(frozen=True)
class StepReport:
    """A sampler step for progress and previews: ``step`` of ``total`` (A1111's sampling steps;
    Restart and DPM adaptive can report more), ``denoised`` the x0 estimate, ``x`` the latents."""

    step: int
    total: int
    x: torch.Tensor
    denoised: torch.Tensor


def resolve_schedule(spec: SamplerSpec, schedule: str) -> str | None:
    """The schedule label a k-diffusion sampler uses; None = the denoiser's own grid."""
    if schedule == AUTOMATIC:
        return spec.default_schedule
    if schedule not in SCHEDULE_TYPES:
        raise ValueError(
            f"unknown schedule type {schedule!r}; valid: {', '.join((AUTOMATIC, *SCHEDULE_TYPES))}"
        )
    return schedule


def make_denoiser(spec: SamplerSpec, model: DenoiserModel) -> Any:
    """The model wrapper a sampler calls (A1111's CompVis / LCM / timestep denoisers)."""
    if spec.kind in (TIMESTEP, UNIPC):
        return TimestepDenoiser(model)
    if spec.kind == LCM:
        return LCMDenoiser(model)
    return KarrasDenoiser(model)


@dataclass
class _Pass:
    """What a sampler run needs besides the CFG denoiser."""

    x: torch.Tensor
    grid: torch.Tensor  # sigmas (the pass's tail) or DDPM timesteps
    full_sigmas: torch.Tensor | None  # the whole schedule (the Brownian tree's interval)
    launched: int  # A1111's sampling steps for this pass
    kwargs: dict[str, Any]


def sample(
    model: DenoiserModel,
    sampler: str,
    schedule: str,
    steps: int,
    conds: SamplingConds,
    noise: ImageNoise,
    *,
    cfg_scale: float,
    init_latents: torch.Tensor | None = None,
    denoise: float | None = None,
    fixed_steps: bool = False,
    noise_multiplier: float = 1.0,
    mask: torch.Tensor | None = None,
    image_conditioning: torch.Tensor | None = None,
    refiner: RefinerSwitch | None = None,
    options: SamplerOptions | None = None,
    callback: Callable[[StepReport], None] | None = None,
    cancel: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Run one A1111 sampling pass and return the final latents (float32, UNet latent space).

    txt2img: no ``init_latents``. img2img / hires: ``init_latents`` and ``denoise``; ``fixed_steps``
    for the hires pass (A1111 runs exactly ``steps`` steps of a longer schedule), and
    ``noise_multiplier`` for the img2img tab's "Noise multiplier". Inpaint: ``mask`` is A1111's
    latent ``latmask`` (1 = repaint, latent size, broadcastable to the latents); a 9-channel model
    also needs ``image_conditioning`` ([batch, 5, h, w]). ``cancel`` is called before every model
    call and stops the run by raising. Runs without autograd, as A1111's samplers do.
    """
    import torch

    with torch.no_grad():
        return _sample(
            model, sampler, schedule, steps, conds, noise, cfg_scale, init_latents, denoise, fixed_steps,
            noise_multiplier, mask, image_conditioning, refiner, options or SamplerOptions(),
            callback, cancel,
        )  # fmt: skip


def _sample(
    model: DenoiserModel,
    sampler: str,
    schedule: str,
    steps: int,
    conds: SamplingConds,
    noise: ImageNoise,
    cfg_scale: float,
    init_latents: torch.Tensor | None,
    denoise: float | None,
    fixed_steps: bool,
    noise_multiplier: float,
    mask: torch.Tensor | None,
    image_conditioning: torch.Tensor | None,
    refiner: RefinerSwitch | None,
    options: SamplerOptions,
    callback: Callable[[StepReport], None] | None,
    cancel: Callable[[], None] | None,
) -> torch.Tensor:
    spec = sampler_spec(sampler)
    # 1. the denoiser; 2.-3. the grid and the starting latents
    inner = make_denoiser(spec, model)
    if init_latents is None:
        run = _txt2img_pass(spec, inner, model, schedule, steps, noise, options)
    else:
        if denoise is None:
            raise ValueError("img2img needs a denoising strength")
        run = _img2img_pass(
            spec,
            inner,
            model,
            schedule,
            steps,
            noise,
            options,
            init_latents,
            denoise,
            fixed_steps,
            noise_multiplier,
        )
    # 4. the CFG denoiser
    blend = None
    if mask is not None:
        if init_latents is None:
            raise ValueError("a mask needs init_latents (inpainting is an img2img pass)")
        nmask = mask.to(init_latents)
        blend = InpaintBlend(init_latents, 1.0 - nmask, nmask)
    pending = None
    if refiner is not None:
        stage = ModelStage(make_denoiser(spec, refiner.model), refiner.conds)
        pending = PendingRefiner(stage, refiner.switch_at, refiner.by_sample_steps)
    cfg = CFGDenoiser(
        ModelStage(inner, conds),
        cfg_scale,
        image_cond=image_conditioning,
        inpaint=blend,
        refiner=pending,
        total_steps=spec.total_steps(run.launched),
        check_cancel=cancel,
    )
    # 5. noise and the run
    result = _run(spec, cfg, run, noise, options, _reporter(callback, run.launched))
    # 6. A1111 pastes the kept region back after sampling
    return blend.apply(result) if blend is not None else result


def _reporter(
    callback: Callable[[StepReport], None] | None, total: int
) -> Callable[[StepState], None] | None:
    if callback is None:
        return None

    def on_step(state: StepState) -> None:
        callback(StepReport(state.i, total, state.x, state.denoised))

    return on_step


def _eta(spec: SamplerSpec, options: SamplerOptions) -> float:
    if options.eta is not None:
        return options.eta
    return 0.0 if spec.kind == TIMESTEP else 1.0


def _txt2img_pass(
    spec: SamplerSpec,
    inner: Any,
    model: DenoiserModel,
    schedule: str,
    steps: int,
    noise: ImageNoise,
    options: SamplerOptions,
) -> _Pass:
    import torch

    discard = spec.discard_penultimate or options.always_discard_next_to_last_sigma
    x = noise.next()
    if spec.kind in (TIMESTEP, UNIPC):
        return _Pass(x, ddpm_timesteps(steps, discard).to(x.device), None, steps, {})
    sigmas = build_sigmas(resolve_schedule(spec, schedule), steps, inner, model.is_sdxl, discard).to(x.device)
    x = x * torch.sqrt(1.0 + sigmas[0] ** 2.0) if options.sgm_noise_multiplier else x * sigmas[0]
    kwargs: dict[str, Any] = {}
    if spec.kind == DPM_SOLVER:
        kwargs = {"sigma_min": inner.sigma_min, "sigma_max": inner.sigma_max}
        if spec.name == "DPM fast":
            kwargs["n"] = steps
    return _Pass(x, sigmas, sigmas, steps, kwargs)


def _img2img_pass(
    spec: SamplerSpec,
    inner: Any,
    model: DenoiserModel,
    schedule: str,
    steps: int,
    noise: ImageNoise,
    options: SamplerOptions,
    init: torch.Tensor,
    denoise: float,
    fixed_steps: bool,
    noise_multiplier: float,
) -> _Pass:
    import torch

    discard = spec.discard_penultimate or options.always_discard_next_to_last_sigma
    schedule_steps, t_enc = img2img_steps(steps, denoise, fixed_steps)
    x_noise = noise.next()
    if noise_multiplier != 1.0:
        x_noise = x_noise * noise_multiplier
    init = init.to(x_noise)
    if spec.kind in (TIMESTEP, UNIPC):
        grid = ddpm_timesteps(schedule_steps, discard).to(init.device)
        abar = model.alphas_cumprod[grid[t_enc]]
        x = init * torch.sqrt(abar) + x_noise * torch.sqrt(1 - abar)
        return _Pass(x, grid[:t_enc], None, t_enc + 1, {"is_img2img": True} if spec.kind == UNIPC else {})
    sigmas = build_sigmas(resolve_schedule(spec, schedule), schedule_steps, inner, model.is_sdxl, discard).to(
        init.device
    )
    tail = img2img_sigmas(sigmas, schedule_steps, t_enc)
    x = init + x_noise * tail[0]
    kwargs: dict[str, Any] = {}
    if spec.kind == DPM_SOLVER:
        kwargs = {"sigma_min": float(tail[-2]), "sigma_max": float(tail[0])}
        if spec.name == "DPM fast":
            kwargs["n"] = len(tail) - 1
    return _Pass(x, tail, sigmas, t_enc + 1, kwargs)


def _run(
    spec: SamplerSpec,
    cfg: CFGDenoiser,
    run: _Pass,
    noise: ImageNoise,
    options: SamplerOptions,
    on_step: Callable[[StepState], None] | None,
) -> torch.Tensor:
    kwargs = dict(run.kwargs)
    kwargs.update(spec.extra)
    if spec.eta:
        kwargs["eta"] = _eta(spec, options)
    if spec.churn:
        s_tmax = options.s_tmax or float("inf")
        kwargs["churn"] = (options.s_churn, options.s_tmin, s_tmax, options.s_noise)
    if spec.s_noise:
        kwargs["s_noise"] = options.s_noise
    if spec.noise == "brownian":
        assert run.full_sigmas is not None
        kwargs["noise"] = BrownianTreeNoise(run.x, run.full_sigmas, noise.seeds, noise.tree_randn)
    elif spec.noise == "stream":
        kwargs["noise"] = lambda sigma, sigma_next: noise.next()
    if spec.kind in (TIMESTEP, UNIPC):
        kwargs["alphas_cumprod"] = cfg.stage.inner.alphas_cumprod
    if spec.kind == UNIPC:
        kwargs.update(
            variant=options.uni_pc_variant,
            skip_type=options.uni_pc_skip_type,
            order=options.uni_pc_order,
            lower_order_final=options.uni_pc_lower_order_final,
        )
    if spec.kind == DPM_SOLVER:
        result: torch.Tensor = spec.function(cfg, run.x, callback=on_step, **kwargs)
        return result
    result = spec.function(cfg, run.x, run.grid, callback=on_step, **kwargs)
    return result
