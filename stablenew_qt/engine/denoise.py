"""What every stage's denoising pass needs, built from a RunConfig and a loaded model.

The stages call A1111's sampling loop (:func:`ksampling.sample`) and use the diffusers pipelines
only for their components (UNet, VAE, text encoders, image processor). This module builds the
loop's inputs the same way for every stage:

- :func:`denoiser_for`: the UNet with A1111's noise schedule, on the pipeline's execution device
  (accelerate's offload hooks stay in charge of moving the weights);
- :func:`noise_for`: A1111's per-image noise (seed, variation seed ``subseed + i``, seed resize,
  RNG source, ENSD) at a pass's latent size;
- :func:`sampler_options`: Settings > Sampler parameters;
- :func:`conds_for`: the prompt encoder's :class:`BatchCond` plus SDXL's time ids as A1111 builds
  them (original size = target size = the pass's size, crop (0, 0); the refiner's aesthetic
  scores 6.0 for the prompt and 2.5 for the negative);
- :func:`vae_encode` / :func:`vae_decode`: pixels <-> UNet latents (scaling factor, the SDXL
  fp16 VAE upcast diffusers does);
- :func:`run_pass`: one ``sample`` call with progress, previews (the step's x0 estimate) and
  cancellation (checked before every UNet call) bridged to the stage's :class:`StepReporter`.

VAE encoding takes the posterior's mean. A1111 draws a sample from it with the global torch RNG
(not seeded per image); the mean keeps every run reproducible and differs from such a draw by the
posterior's standard deviation (about 1e-3 of the latents' for the SD VAEs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..core.config import RunConfig, SamplerSettings
from ..core.prompt_chunks import Emphasis
from ..core.runner import image_seeds
from .conditioning import ConditioningOptions
from .ksampling import (
    DenoiserModel,
    ImageNoise,
    NoiseSpec,
    RefinerSwitch,
    SamplerOptions,
    SamplingConds,
    StepReport,
    alphas_cumprod_from_config,
    sample,
    sampler_spec,
)
from .ksampling.schedules import img2img_steps
from .progress import StepReporter

if TYPE_CHECKING:
    import torch

    from .context import EngineContext
    from .pipelines import LoadedModel

#: A1111's "SDXL refiner high/low aesthetic score" defaults (prompt / negative prompt).
REFINER_AESTHETIC_SCORE = 6.0
REFINER_NEGATIVE_AESTHETIC_SCORE = 2.5
LATENT_CHANNELS = 4


# -- the model --------------------------------------------------------------------------------------


class _Tracked(DenoiserModel):
    """A refiner's DenoiserModel that remembers it has been called (the progress label switches)."""

    called = False

    def __call__(self, x: torch.Tensor, t: torch.Tensor, batch: Any) -> torch.Tensor:
        self.called = True
        return super().__call__(x, t, batch)


def execution_device(pipe: Any) -> torch.device:
    """Where the pipeline computes: its UNet's device, or, when accelerate's offload hooks manage
    the weights, the device they move them to. (diffusers' ``_execution_device`` walks every
    module's hooks, and so does ``ModelMixin.device``: about 4 ms a call, a quarter of a small
    img2img pass, so only when hooked.)"""
    import torch

    unet = pipe.unet
    if not hasattr(unet, "_hf_hook"):
        device = next(unet.parameters()).device  # ModelMixin.device walks the modules too
        if device.type != "meta":
            return torch.device(device)
    return torch.device(pipe._execution_device)


def denoiser_for(loaded: LoadedModel, *, refiner: bool = False) -> DenoiserModel:
    """The model's UNet with A1111's schedule, from the model's own scheduler config (never from
    ``pipe.scheduler``, which an earlier job may have replaced). ``refiner``: a model that
    remembers its first call, so :func:`run_pass` labels the steps after the switch "refiner"."""
    pipe = loaded.pipe
    config = loaded.scheduler_config or dict(pipe.scheduler.config)
    model = (_Tracked if refiner else DenoiserModel)(pipe.unet, config)
    device = execution_device(pipe)
    if model.device != device:  # offloaded: the hooks move the UNet, the loop works on `device`
        model.device = device
        model.alphas_cumprod = alphas_cumprod_from_config(config)[0].to(device)  # not from meta
    return model


def latent_shape(loaded: LoadedModel, width: int, height: int) -> tuple[int, int, int]:
    """(C, H, W) of the latents of a ``width`` x ``height`` image."""
    vae = loaded.pipe.vae
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    channels = int(getattr(vae.config, "latent_channels", LATENT_CHANNELS))
    return (channels, height // factor, width // factor)


# -- seeds and sampler settings ---------------------------------------------------------------------


def variation_seeds(config: RunConfig, count: int) -> tuple[int, ...]:
    """A1111's per-image variation seeds ``subseed + i``; none when strength is 0."""
    return image_seeds(config.subseed, count) if config.subseed_strength > 0 else ()


def noise_spec(config: RunConfig, seeds: Sequence[int], subseeds: Sequence[int] | None = None) -> NoiseSpec:
    """The batch's noise settings; ``subseeds`` default to :func:`variation_seeds`."""
    return NoiseSpec(
        seeds=tuple(int(s) for s in seeds),
        subseeds=tuple(subseeds) if subseeds is not None else variation_seeds(config, len(seeds)),
        subseed_strength=config.subseed_strength,
        seed_resize_from=(config.seed_resize_from_w, config.seed_resize_from_h),
        source=config.rng_source,
        eta_noise_seed_delta=config.eta_noise_seed_delta,
    )


def noise_for(
    config: RunConfig,
    loaded: LoadedModel,
    seeds: Sequence[int],
    size: tuple[int, int],
    subseeds: Sequence[int] | None = None,
) -> ImageNoise:
    """Fresh noise streams for one pass at ``size`` = (width, height) pixels (A1111 re-seeds every
    pass, the hires pass included)."""
    shape = latent_shape(loaded, *size)
    return ImageNoise(noise_spec(config, seeds, subseeds), shape, execution_device(loaded.pipe))


def sampler_options(settings: SamplerSettings) -> SamplerOptions:
    """A1111's Settings > Sampler parameters as the loop takes them."""
    return SamplerOptions(
        eta=settings.eta,
        s_churn=settings.s_churn,
        s_tmin=settings.s_tmin,
        s_tmax=settings.s_tmax,
        s_noise=settings.s_noise,
        always_discard_next_to_last_sigma=settings.always_discard_next_to_last_sigma,
        sgm_noise_multiplier=settings.sgm_noise_multiplier,
    )


def schedule_steps(sampler: str, steps: int) -> int:
    """The step count prompt-editing schedules are built over (A1111's ``total_steps``: denoiser
    calls, doubled for second-order samplers)."""
    return sampler_spec(sampler).total_steps(steps)


def img2img_step_count(steps: int, denoise: float, fixed_steps: bool = False) -> int:
    """Sampling steps an img2img pass runs (A1111: ``int(min(denoise, 0.999) * steps) + 1``, or
    exactly ``steps`` for the hires pass); 0 when ``denoise`` is 0 (nothing is sampled)."""
    if denoise <= 0:
        return 0
    return img2img_steps(steps, denoise, fixed_steps)[1] + 1


# -- conditioning -----------------------------------------------------------------------------------


def conditioning_options(config: RunConfig, clip_skip: int) -> ConditioningOptions:
    return ConditioningOptions(clip_skip=clip_skip, emphasis=Emphasis(config.emphasis))


def conds_for(
    ctx: EngineContext,
    loaded: LoadedModel,
    options: ConditioningOptions,
    prompts: Sequence[str],
    negatives: Sequence[str],
    size: tuple[int, int],
    steps: int,
    hires_steps: int | None = None,
) -> SamplingConds:
    """A1111's ``c``/``uc`` for one model and pass: texts through the context's prompt encoder,
    SDXL's time ids for ``size`` = (width, height). ``steps``/``hires_steps`` as
    :meth:`PromptEncoder.encode_batch` takes them (already A1111's total steps)."""
    encoder = ctx.prompt_encoder(loaded, options)
    batch = encoder.encode_batch(list(prompts), list(negatives), steps, hires_steps)
    cond_ids, uncond_ids = time_ids(loaded, size)
    return SamplingConds(batch, cond_time_ids=cond_ids, uncond_time_ids=uncond_ids)


def time_ids(loaded: LoadedModel, size: tuple[int, int]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """SDXL's added time ids (prompt, negative): base ``(h, w, 0, 0, h, w)``, refiner
    ``(h, w, 0, 0, aesthetic score)``; None for SD 1.x."""
    import torch

    from .family import ModelFamily

    width, height = size
    if not loaded.is_sdxl:
        return None, None
    if loaded.family is ModelFamily.SDXL_REFINER:
        return (
            torch.tensor([height, width, 0, 0, REFINER_AESTHETIC_SCORE], dtype=torch.float32),
            torch.tensor([height, width, 0, 0, REFINER_NEGATIVE_AESTHETIC_SCORE], dtype=torch.float32),
        )
    ids = torch.tensor([height, width, 0, 0, height, width], dtype=torch.float32)
    return ids, ids


# -- the VAE ----------------------------------------------------------------------------------------


@contextmanager
def _vae_precision(vae: Any) -> Iterator[Any]:
    """An fp16 VAE whose config says ``force_upcast`` (the SDXL VAE overflows in fp16) runs in
    float32 for the call and goes back afterwards, as diffusers' SDXL pipelines do."""
    import torch

    upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        yield torch.float32 if upcast else vae.dtype
    finally:
        if upcast:
            vae.to(dtype=torch.float16)


def _latent_stats(vae: Any, latents: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    import torch

    mean = getattr(vae.config, "latents_mean", None)
    std = getattr(vae.config, "latents_std", None)
    if mean is None or std is None:
        return None, None
    shape = (1, len(mean), 1, 1)
    return (
        torch.tensor(mean).view(shape).to(latents.device, latents.dtype),
        torch.tensor(std).view(shape).to(latents.device, latents.dtype),
    )


def pixels_to_tensor(pipe: Any, images: Sequence[Image.Image], size: tuple[int, int]) -> torch.Tensor:
    """RGB images as ``[B, 3, h, w]`` in [-1, 1] at ``size`` = (width, height)."""
    width, height = size
    rgb = [im.convert("RGB") for im in images]
    tensor: torch.Tensor = pipe.image_processor.preprocess(rgb, height=height, width=width)
    return tensor


def vae_encode_tensor(pipe: Any, pixels: torch.Tensor) -> torch.Tensor:
    """``[B, 3, h, w]`` pixels in [-1, 1] -> UNet-space latents (float32, posterior mean)."""
    import torch

    vae = pipe.vae
    device = execution_device(pipe)
    with torch.no_grad(), _vae_precision(vae) as dtype:
        dist = vae.encode(pixels.to(device, dtype)).latent_dist
        latents: torch.Tensor = dist.mean.float()
    scaling = float(vae.config.scaling_factor)
    mean, std = _latent_stats(vae, latents)
    if mean is not None and std is not None:
        return (latents - mean) * scaling / std
    return latents * scaling


def vae_encode(pipe: Any, images: Sequence[Image.Image], size: tuple[int, int]) -> torch.Tensor:
    """Images -> UNet-space latents at ``size`` = (width, height) (a multiple of 8)."""
    return vae_encode_tensor(pipe, pixels_to_tensor(pipe, images, size))


def vae_decode(pipe: Any, latents: torch.Tensor) -> list[Image.Image]:
    """UNet-space latents -> RGB images, as diffusers' pipelines decode them."""
    import torch

    vae = pipe.vae
    latents = latents.float()
    mean, std = _latent_stats(vae, latents)
    scaling = float(vae.config.scaling_factor)
    latents = latents * std / scaling + mean if mean is not None and std is not None else latents / scaling
    with torch.no_grad(), _vae_precision(vae) as dtype:
        decoded = vae.decode(latents.to(execution_device(pipe), dtype), return_dict=False)[0]
    images: list[Image.Image] = pipe.image_processor.postprocess(decoded.float(), output_type="pil")
    return images


# -- one pass ---------------------------------------------------------------------------------------


def step_bridge(
    reporter: StepReporter, label: str, refiner: RefinerSwitch | None = None
) -> Callable[[StepReport], None]:
    """The loop's step callback: counts the step, previews the x0 estimate every few steps."""

    def on_step(report: StepReport) -> None:
        if reporter.token.cancelled:
            return
        name = "refiner" if refiner is not None and getattr(refiner.model, "called", False) else label
        reporter.sampler_step(name, report.denoised)

    return on_step


def run_pass(
    model: DenoiserModel,
    config: RunConfig,
    sampler: str,
    schedule: str,
    steps: int,
    conds: SamplingConds,
    noise: ImageNoise,
    *,
    cfg_scale: float,
    reporter: StepReporter,
    label: str,
    refiner: RefinerSwitch | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """One ``ksampling.sample`` call with the run's sampler settings, progress and cancel.

    ``kwargs`` are ``sample``'s img2img/inpaint arguments (``init_latents``, ``denoise``,
    ``fixed_steps``, ``noise_multiplier``, ``mask``, ``image_conditioning``).
    """
    latents = sample(
        model,
        sampler,
        schedule,
        steps,
        conds,
        noise,
        cfg_scale=cfg_scale,
        refiner=refiner,
        options=sampler_options(config.sampler_settings),
        callback=step_bridge(reporter, label, refiner),
        cancel=reporter.check,
        **kwargs,
    )
    reporter.check()
    return latents
