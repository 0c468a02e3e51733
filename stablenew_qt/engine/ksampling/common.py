"""What every sampler function shares: the denoiser and noise call shapes, the step report, and the
two formulas k-diffusion's samplers are built from (the ODE derivative and the ancestral split).

A sampler function takes ``(model, x, sigmas, *, callback, noise, ...)``: ``model(x, sigma)`` is the
CFG denoiser (denoised latents, or eps for the timestep samplers), ``noise(sigma, sigma_next)``
the next noise draw (an image stream for ancestral samplers, the Brownian tree for SDE samplers),
and ``callback`` receives a :class:`StepState` after each model evaluation a step reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


class Denoise(Protocol):
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


class NoiseSampler(Protocol):
    def __call__(self, sigma: Any, sigma_next: Any) -> torch.Tensor: ...


@dataclass(frozen=True)
class StepState:
    """One reported sampler step: 0-based index ``i``, the latents ``x`` it started from, its noise
    level ``sigma`` (0 for the timestep samplers, as A1111 reports) and the x0 estimate ``denoised``."""

    i: int
    x: torch.Tensor
    sigma: Any
    denoised: torch.Tensor


StepCallback = Callable[[StepState], None]


def report(
    callback: StepCallback | None, i: int, x: torch.Tensor, sigma: Any, denoised: torch.Tensor
) -> None:
    if callback is not None:
        callback(StepState(i, x, sigma, denoised))


def to_d(x: torch.Tensor, sigma: Any, denoised: torch.Tensor) -> torch.Tensor:
    """Karras' ODE derivative dx/dsigma (A1111 divides by sigma directly)."""
    d: torch.Tensor = (x - denoised) / sigma
    return d


def ancestral_step(sigma_from: Any, sigma_to: Any, eta: float = 1.0) -> tuple[Any, Any]:
    """(sigma_down, sigma_up): where the deterministic step lands and how much fresh noise is added,
    so that sigma_down**2 + sigma_up**2 = sigma_to**2."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def batch_sigma(x: torch.Tensor, sigma: Any) -> torch.Tensor:
    """``sigma`` as one value per latent in the batch (k-diffusion's ``sigma * s_in``)."""
    s_in = x.new_ones([x.shape[0]])
    result: torch.Tensor = sigma * s_in
    return result
