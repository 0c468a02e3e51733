"""A1111's timestep samplers DDIM, DDIM CFG++ and PLMS (``sd_samplers_timesteps_impl.py``).

They step on DDPM timesteps (A1111's grid ``range(0, 1000, 1000 // steps) + 1``) with an eps model,
and make ``len(timesteps) - 1`` steps: the grid's lowest timestep is the last target, never
evaluated (so "20 steps" is 19 model evaluations for DDIM, 20 for PLMS, whose first step is a
two-evaluation improved Euler). DDIM's eta is 0 by default (A1111 "Eta for DDIM").

CFG++ (Chung et al. 2024) moves along the *unconditional* eps instead of the guided one, with the
guidance scale divided by 12.5; the CFG denoiser keeps the last unconditional eps for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .common import Denoise, NoiseSampler, StepCallback, report

if TYPE_CHECKING:
    import torch


class CFGPlusPlusModel(Protocol):
    """The CFG denoiser as DDIM CFG++ uses it: eps calls plus the last unconditional eps."""

    cond_scale_multiplier: float
    keep_uncond: bool
    last_uncond: torch.Tensor | None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


def _ddim_tables(
    alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, eta: float
) -> tuple[Any, Any, Any, Any]:
    """(abar_t, abar_prev, sqrt(1 - abar_t), sigma_t) per grid index, in A1111's dtypes."""
    import numpy as np
    import torch

    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    prev = alphas_prev.cpu().numpy()
    current = alphas.cpu().numpy()
    # A1111 mixes numpy float64 and torch float32 here: 1 - abar_t is rounded to float32 first.
    one_minus = (1 - current).astype(np.float64)
    sigmas = eta * np.sqrt((1 - prev) / one_minus * (1 - current.astype(np.float64) / prev))
    return alphas, alphas_prev, sqrt_one_minus_alphas, sigmas


def _ddim_loop(
    model: Denoise,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    eta: float,
    noise: NoiseSampler | None,
    callback: StepCallback | None,
    direction: Any = None,
) -> torch.Tensor:
    alphas, alphas_prev, sqrt_one_minus, sigmas = _ddim_tables(alphas_cumprod, timesteps, eta)
    s_in = x.new_ones([x.shape[0]])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * s_in)
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sigma_t = float(sigmas[index]) * s_x
        sqrt_one_minus_at = sqrt_one_minus[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        eps_direction = e_t if direction is None else direction()
        dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * eps_direction
        x = a_prev.sqrt() * pred_x0 + dir_xt
        if float(sigmas[index]) != 0:  # eta 0 adds exactly nothing (A1111 still draws; unused)
            assert noise is not None
            x = x + sigma_t * noise(0, 0)
        report(callback, i, x, 0, pred_x0)
    return x


def sample_ddim(
    model: Denoise,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM (Song et al. 2020) over the grid, top first."""
    return _ddim_loop(model, x, timesteps, alphas_cumprod, eta, noise, callback)


def sample_ddim_cfgpp(
    model: CFGPlusPlusModel,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM with CFG++: guidance / 12.5, re-noising along the unconditional eps."""
    model.cond_scale_multiplier = 1 / 12.5
    model.keep_uncond = True

    def unconditional() -> torch.Tensor:
        assert model.last_uncond is not None
        return model.last_uncond

    return _ddim_loop(model, x, timesteps, alphas_cumprod, eta, noise, callback, unconditional)


def sample_plms(
    model: Denoise,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
) -> torch.Tensor:
    """Pseudo linear multistep (Liu et al. 2022): improved Euler first, then Adams-Bashforth 2-4."""
    alphas, alphas_prev, sqrt_one_minus, _ = _ddim_tables(alphas_cumprod, timesteps, 0.0)
    s_in = x.new_ones([x.shape[0]])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    old_eps: list[torch.Tensor] = []

    def x_prev_and_pred_x0(
        x: torch.Tensor, e_t: torch.Tensor, index: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sqrt_one_minus_at = sqrt_one_minus[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = (1.0 - a_prev).sqrt() * e_t
        return a_prev.sqrt() * pred_x0 + dir_xt, pred_x0

    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        ts = timesteps[index].item() * s_in
        t_next = timesteps[max(index - 1, 0)].item() * s_in
        e_t = model(x, ts)
        if not old_eps:
            x_prev, _ = x_prev_and_pred_x0(x, e_t, index)
            e_t_prime = (e_t + model(x_prev, t_next)) / 2
        elif len(old_eps) == 1:
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x_prev, pred_x0 = x_prev_and_pred_x0(x, e_t_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        x = x_prev
        report(callback, i, x, 0, pred_x0)
    return x
