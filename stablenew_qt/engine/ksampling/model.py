"""The diffusion model as A1111 sees it: a diffusers UNet plus the training noise schedule.

A1111 never uses a diffusers scheduler. It takes the model's ``alphas_cumprod`` (computed by LDM in
float64 from the betas, stored in float32) and wraps the UNet in k-diffusion's CompVis denoisers.
:func:`alphas_cumprod_from_config` rebuilds that exact float32 table from a diffusers scheduler
config; :class:`DenoiserModel` runs the diffusers UNet on one batch of rows (latents, fractional
timesteps, text conditioning, SDXL's added conditioning, an inpainting model's image conditioning).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

EPSILON = "epsilon"
V_PREDICTION = "v_prediction"
# Channels of a Stable Diffusion latent; an inpainting UNet takes 4 + 1 (mask) + 4 (masked image).
LATENT_CHANNELS = 4


def betas_from_config(config: Mapping[str, Any]) -> np.ndarray:
    """The training betas in float64, as LDM's ``make_beta_schedule`` computes them.

    diffusers' ``scaled_linear`` is LDM's ``linear`` (a square of a linspace of square roots, which
    LDM computes in float64; diffusers computes it in float32, which shifts sigmas by ~1e-7).
    diffusers' ``linear`` is LDM's ``sqrt_linear``. ``squaredcos_cap_v2`` follows diffusers' own
    formula in float64 (no A1111 model uses it). ``trained_betas`` are taken as given.
    """
    import math

    import numpy as np
    import torch

    n = int(config.get("num_train_timesteps", 1000))
    trained = config.get("trained_betas")
    if trained is not None:
        return np.asarray(trained, dtype=np.float64)
    start = float(config.get("beta_start", 0.00085))
    end = float(config.get("beta_end", 0.012))
    schedule = config.get("beta_schedule", "scaled_linear")
    if schedule == "scaled_linear":
        return (torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2).numpy()
    if schedule == "linear":
        return torch.linspace(start, end, n, dtype=torch.float64).numpy()
    if schedule == "squaredcos_cap_v2":

        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)])
    raise ValueError(
        f"beta_schedule {schedule!r} is not supported by the A1111 sampler; "
        "supported: scaled_linear, linear, squaredcos_cap_v2 or trained_betas"
    )


def alphas_cumprod_from_config(config: Mapping[str, Any]) -> tuple[torch.Tensor, np.ndarray]:
    """(float32 tensor, float64 array) of the cumulative alphas, exactly as A1111 holds them.

    LDM computes ``np.cumprod(1 - betas)`` in float64 and registers the buffer in float32; the float64
    values also feed LDM's ``sqrt_alphas_cumprod`` buffers (used for v-prediction with DDIM/PLMS/UniPC).
    """
    import numpy as np
    import torch

    alphas_cumprod = np.cumprod(1.0 - betas_from_config(config), axis=0)
    return torch.tensor(alphas_cumprod, dtype=torch.float32), alphas_cumprod


@dataclass(frozen=True)
class UNetBatch:
    """The conditioning rows of one UNet call, one row per latent in the batch.

    ``crossattn`` is ``[rows, tokens, dim]``. SDXL adds ``text_embeds`` (pooled, ``[rows, dim]``) and
    ``time_ids`` (``[rows, 6]`` for the base: original size, crop, target size; ``[rows, 5]`` for the
    refiner: original size, crop, aesthetic score). ``image_cond`` is an inpainting model's
    ``[rows, 5, h, w]`` mask + masked-image latents (A1111's ``c_concat``); ignored by 4-channel UNets.
    """

    crossattn: torch.Tensor
    text_embeds: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None
    image_cond: torch.Tensor | None = None

    def rows(self, start: int, stop: int) -> UNetBatch:
        """The rows ``start:stop`` of every field."""
        return UNetBatch(
            self.crossattn[start:stop],
            None if self.text_embeds is None else self.text_embeds[start:stop],
            None if self.time_ids is None else self.time_ids[start:stop],
            None if self.image_cond is None else self.image_cond[start:stop],
        )


class DenoiserModel:
    """A diffusers UNet with A1111's view of its noise schedule.

    ``alphas_cumprod`` (float32, on the UNet's device) is what A1111's samplers read;
    ``prediction_type`` is ``"epsilon"`` or ``"v_prediction"``; ``is_sdxl`` picks Align Your Steps'
    SDXL list (A1111's ``sd_model.is_sdxl``, true for the refiner too).
    """

    def __init__(self, unet: Any, scheduler_config: Mapping[str, Any]) -> None:
        prediction = scheduler_config.get("prediction_type", EPSILON)
        if prediction not in (EPSILON, V_PREDICTION):
            raise ValueError(
                f"prediction_type {prediction!r} is not supported; A1111 samples eps and v models only"
            )
        self.unet = unet
        self.prediction_type: str = prediction
        self.device = unet.device
        self.dtype = unet.dtype
        alphas, alphas64 = alphas_cumprod_from_config(scheduler_config)
        self.alphas_cumprod: torch.Tensor = alphas.to(self.device)
        self.alphas_cumprod_f64: np.ndarray = alphas64
        config = unet.config
        self.is_sdxl: bool = getattr(config, "addition_embed_type", None) == "text_time"
        self.in_channels: int = int(config.in_channels)

    @classmethod
    def from_pipeline(cls, pipe: Any) -> DenoiserModel:
        """The denoiser of a loaded diffusers pipeline (its UNet and scheduler config)."""
        return cls(pipe.unet, pipe.scheduler.config)

    @property
    def needs_image_cond(self) -> bool:
        """True for inpainting UNets (9 input channels): every call needs ``UNetBatch.image_cond``."""
        return self.in_channels > LATENT_CHANNELS

    def __call__(self, x: torch.Tensor, t: torch.Tensor, batch: UNetBatch) -> torch.Tensor:
        """The UNet output (eps or v) in float32 for latents ``x`` (already scaled by c_in) at
        timesteps ``t`` (float, fractional allowed: the UNet embeds them like any float)."""
        import torch

        sample = x
        if self.needs_image_cond:
            if batch.image_cond is None:
                raise ValueError(
                    "this is an inpainting model (9-channel UNet): pass image_conditioning "
                    "(mask + masked-image latents, as A1111's inpainting_image_conditioning makes them)"
                )
            sample = torch.cat([x, batch.image_cond.to(x)], dim=1)
        added: dict[str, torch.Tensor] | None = None
        if self.is_sdxl:
            if batch.text_embeds is None or batch.time_ids is None:
                raise ValueError("an SDXL UNet needs pooled text embeddings and time ids for every row")
            added = {
                "text_embeds": batch.text_embeds.to(self.device, self.dtype),
                "time_ids": batch.time_ids.to(self.device, self.dtype),
            }
        out = self.unet(
            sample.to(self.dtype),
            t.to(self.device, torch.float32),
            encoder_hidden_states=batch.crossattn.to(self.device, self.dtype),
            added_cond_kwargs=added,
            return_dict=False,
        )[0]
        result: torch.Tensor = out.float()
        return result
