"""A1111's model wrappers: what a sampler calls with (latents, noise level, conditioning rows).

- :class:`KarrasDenoiser` is k-diffusion's ``CompVisDenoiser`` / ``CompVisVDenoiser`` (``external.py``):
  sigmas = sqrt((1 - alphas_cumprod) / alphas_cumprod), the UNet gets ``x * c_in`` at the
  *fractional* timestep interpolated in log-sigma (``sigma_to_t``), and the output is the denoised
  latent (eps: ``x - sigma * eps``; v: ``c_skip * x + c_out * v``).
- :class:`LCMDenoiser` is A1111's ``LCMCompVisDenoiser`` (``sd_samplers_lcm.py``): the 50 timesteps
  LCM was distilled on, quantized timesteps, and LCM's boundary-condition scalings.
- :class:`TimestepDenoiser` is A1111's ``CompVisTimestepsDenoiser`` / ``...VDenoiser``
  (``sd_samplers_timesteps.py``) for DDIM, PLMS and UniPC: the UNet at a DDPM timestep, returning eps.

Each also answers ``nearest_timestep(sigma)``, the discrete timestep A1111's refiner switch uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import V_PREDICTION, DenoiserModel, UNetBatch

if TYPE_CHECKING:
    import torch


def _append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v[(...,) + (None,) * (ndim - v.ndim)]


def _append_zero(x: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.cat([x, x.new_zeros([1])])


class KarrasDenoiser:
    """Denoised latents from latents at noise level sigma (k-diffusion's CompVis wrappers)."""

    kind = "sigma"

    def __init__(self, model: DenoiserModel, alphas_cumprod: torch.Tensor | None = None) -> None:
        self.model = model
        alphas = model.alphas_cumprod if alphas_cumprod is None else alphas_cumprod
        self.sigmas: torch.Tensor = ((1 - alphas) / alphas) ** 0.5
        self.log_sigmas: torch.Tensor = self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0].item())

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1].item())

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """The fractional timestep of ``sigma``: linear interpolation of the index in log-sigma."""
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        t = (1 - w) * low_idx + w * high_idx
        return t.view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """The sigma of a fractional timestep (log-sigma interpolated between its neighbours)."""
        t = t.float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp()

    def get_sigmas(self, n: int) -> torch.Tensor:
        """The model's own discretisation: ``n`` timesteps spaced linearly from the last to 0, then 0."""
        import torch

        t_max = len(self.sigmas) - 1
        t = torch.linspace(t_max, 0, n, device=self.sigmas.device)
        return _append_zero(self.t_to_sigma(t))

    def nearest_timestep(self, sigma: torch.Tensor) -> int:
        import torch

        return int(torch.argmin(torch.abs(self.sigmas.to(sigma.device) - torch.max(sigma))))

    def model_timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.sigma_to_t(sigma)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, batch: UNetBatch) -> torch.Tensor:
        sigma_data = 1.0
        c_in = _append_dims(1 / (sigma**2 + sigma_data**2) ** 0.5, x.ndim)
        out = self.model(x * c_in, self.model_timestep(sigma), batch)
        if self.model.prediction_type == V_PREDICTION:
            c_skip = _append_dims(sigma_data**2 / (sigma**2 + sigma_data**2), x.ndim)
            c_out_v = _append_dims(-sigma * sigma_data / (sigma**2 + sigma_data**2) ** 0.5, x.ndim)
            return out * c_out_v + x * c_skip
        c_out = _append_dims(-sigma, x.ndim)
        return x + out * c_out


class LCMDenoiser(KarrasDenoiser):
    """A1111's LCM wrapper: sigmas of the 50 distillation timesteps (19, 39, ..., 999), the UNet at
    the nearest of them, and LCM's skip/out scalings (sigma_data 0.5, timestep x 10) on the result."""

    original_steps = 50

    def __init__(self, model: DenoiserModel) -> None:
        import torch

        timesteps = len(model.alphas_cumprod)
        self.skip_steps = timesteps // self.original_steps
        index = torch.arange(self.original_steps, device=model.alphas_cumprod.device)
        # A1111: valid[49 - x] = alphas_cumprod[999 - 20 x], i.e. valid[k] = alphas_cumprod[19 + 20 k].
        picked = model.alphas_cumprod[timesteps - 1 - (self.original_steps - 1 - index) * self.skip_steps]
        super().__init__(model, picked.to(torch.float32))

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        index = dists.abs().argmin(dim=0).view(sigma.shape)
        return index * self.skip_steps + (self.skip_steps - 1)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        import torch

        index = torch.clamp(((t - (self.skip_steps - 1)) / self.skip_steps).float(), 0, len(self.sigmas) - 1)
        return super().t_to_sigma(index)

    def get_sigmas(self, n: int) -> torch.Tensor:
        import torch

        start = self.sigma_to_t(self.sigmas[-1])
        end = self.sigma_to_t(self.sigmas[0])
        t = torch.linspace(float(start), float(end), n, device=self.sigmas.device)
        return _append_zero(self.t_to_sigma(t))

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, batch: UNetBatch) -> torch.Tensor:
        # A1111 builds this on the eps wrapper (its LCM path has no v branch).
        c_in = _append_dims(1 / (sigma**2 + 1.0) ** 0.5, x.ndim)
        t = self.sigma_to_t(sigma)
        eps = self.model(x * c_in, t, batch)
        denoised = x + eps * _append_dims(-sigma, x.ndim)
        sigma_data = 0.5
        scaled_t = _append_dims(t, denoised.ndim) * 10.0
        c_skip = sigma_data**2 / (scaled_t**2 + sigma_data**2)
        c_out = scaled_t / (scaled_t**2 + sigma_data**2) ** 0.5
        return c_out * denoised + c_skip * x


class TimestepDenoiser:
    """eps from latents at DDPM timestep t (A1111's CompVisTimesteps(V)Denoiser): no input scaling;
    a v-model's output becomes eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t at the truncated t."""

    kind = "timestep"

    def __init__(self, model: DenoiserModel) -> None:
        import numpy as np
        import torch

        self.model = model
        self.alphas_cumprod = model.alphas_cumprod
        # LDM's buffers: sqrt in float64 of the float64 table, stored in float32.
        a64 = model.alphas_cumprod_f64
        self._sqrt_a = torch.tensor(np.sqrt(a64), dtype=torch.float32, device=model.device)
        self._sqrt_1ma = torch.tensor(np.sqrt(1.0 - a64), dtype=torch.float32, device=model.device)

    def nearest_timestep(self, t: torch.Tensor) -> int:
        import torch

        return int(torch.max(t).to(dtype=torch.int64))

    def __call__(self, x: torch.Tensor, t: torch.Tensor, batch: UNetBatch) -> torch.Tensor:
        import torch

        out = self.model(x, t, batch)
        if self.model.prediction_type != V_PREDICTION:
            return out
        index = t.to(torch.int)
        return self._sqrt_a[index, None, None, None] * out + self._sqrt_1ma[index, None, None, None] * x
