"""A1111's schedule types (``modules/sd_schedulers.py`` and k-diffusion's ``get_sigmas_*``).

Every function returns the float32 sigma grid for ``n`` steps, ending in 0 except KL Optimal
(which ends at sigma_min, as in A1111). ``sigma_min``/``sigma_max`` are the model's smallest and
largest training sigmas (A1111's default; its "sigma min/max" and "rho" overrides are not wired).
Functions that need the model's own discretisation take the denoiser (``sigmas``, ``sigma_to_t``,
``t_to_sigma``, ``get_sigmas``); A1111 evaluates some of them element by element, and so do we,
so that the grids agree bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# Align Your Steps (NVIDIA's published 10-step lists, as A1111 holds them).
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)
BETA_ALPHA = 0.6  # A1111 options beta_dist_alpha / beta_dist_beta
BETA_BETA = 0.6


def _append_zero(x: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.cat([x, x.new_zeros([1])])


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): rho-th roots spaced linearly between sigma_max and sigma_min."""
    import torch

    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Log-sigma spaced linearly."""
    import torch

    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """A polynomial in log-sigma; A1111's default rho 1 is the exponential curve (computed this way)."""
    import torch

    ramp = torch.linspace(1, 0, n) ** rho
    log_min = math.log(sigma_min)
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - log_min) + log_min))


def uniform(n: int, denoiser: Any) -> torch.Tensor:
    """The model's own discretisation (A1111 "Uniform" and k-diffusion's ``get_sigmas``)."""
    sigmas: torch.Tensor = denoiser.get_sigmas(n)
    return sigmas


def _timestep_grid(
    n: int, sigma_min: float, sigma_max: float, denoiser: Any, drop_last: bool
) -> torch.Tensor:
    import torch

    start = denoiser.sigma_to_t(torch.tensor(sigma_max))
    end = denoiser.sigma_to_t(torch.tensor(sigma_min))
    timesteps = torch.linspace(start, end, n + 1)[:-1] if drop_last else torch.linspace(start, end, n)
    values = [float(denoiser.t_to_sigma(ts)) for ts in timesteps]
    return torch.tensor([*values, 0.0], dtype=torch.float32)


def normal(n: int, sigma_min: float, sigma_max: float, denoiser: Any) -> torch.Tensor:
    """t spaced linearly between the timesteps of sigma_max and sigma_min (both included)."""
    return _timestep_grid(n, sigma_min, sigma_max, denoiser, drop_last=False)


def sgm_uniform(n: int, sigma_min: float, sigma_max: float, denoiser: Any) -> torch.Tensor:
    """As Normal over n + 1 points with the last (sigma_min) dropped, then 0."""
    return _timestep_grid(n, sigma_min, sigma_max, denoiser, drop_last=True)


def simple(n: int, denoiser: Any) -> torch.Tensor:
    """Every (len/n)-th training sigma from the top, index truncated (not rounded)."""
    import torch

    sigmas = denoiser.sigmas
    stride = len(sigmas) / n
    values = [float(sigmas[-(1 + int(x * stride))]) for x in range(n)]
    return torch.tensor([*values, 0.0], dtype=torch.float32)


def ddim_uniform(n: int, denoiser: Any) -> torch.Tensor:
    """Training sigmas at t = 1, 1 + len//n, ... below len, top first (may be more than n steps)."""
    import torch

    sigmas = denoiser.sigmas
    stride = max(len(sigmas) // n, 1)
    values = [float(sigmas[x]) for x in range(1, len(sigmas), stride)]
    return torch.tensor([*values[::-1], 0.0], dtype=torch.float32)


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """tan of arctan(sigma) spaced linearly; the grid ends at sigma_min, not 0 (as in A1111)."""
    import torch

    alpha_min = torch.arctan(torch.tensor(sigma_min))
    alpha_max = torch.arctan(torch.tensor(sigma_max))
    step = torch.arange(n + 1)
    return torch.tan(step / n * alpha_min + (1.0 - step / n) * alpha_max)


def loglinear_interp(values: tuple[float, ...], num_steps: int) -> Any:
    """NVIDIA's log-linear resampling of a decreasing list to ``num_steps`` values (float64)."""
    import numpy as np

    xs = np.linspace(0, 1, len(values))
    ys = np.log(values[::-1])
    new_ys = np.interp(np.linspace(0, 1, num_steps), xs, ys)
    return np.exp(new_ys)[::-1].copy()


def align_your_steps(n: int, is_sdxl: bool) -> torch.Tensor:
    """Align Your Steps: the family's 11-value list as is for ``n`` = 11 (A1111 compares ``n`` with
    the list's length), otherwise resampled log-linearly to ``n`` values; then 0."""
    import numpy as np
    import torch

    table = AYS_SDXL if is_sdxl else AYS_SD15
    resampled = n != len(table)
    values = np.append(loglinear_interp(table, n), [0.0]) if resampled else np.array([*table, 0.0])
    return torch.tensor(values, dtype=torch.float32)


def beta(
    n: int, sigma_min: float, sigma_max: float, a: float = BETA_ALPHA, b: float = BETA_BETA
) -> torch.Tensor:
    """ "Beta Sampling is All You Need" (Lee et al. 2024): sigma at Beta(a, b) quantiles of 1 - t."""
    import numpy as np
    import torch
    from scipy import stats

    timesteps = 1 - np.linspace(0, 1, n)
    quantiles = [stats.beta.ppf(x, a, b) for x in timesteps]
    values = [sigma_min + (q * (sigma_max - sigma_min)) for q in quantiles]
    return torch.tensor([*values, 0.0], dtype=torch.float32)


@dataclass(frozen=True)
class ScheduleType:
    """One A1111 schedule type: its label and how to build its grid from (n, sigma_min, sigma_max,
    denoiser, is_sdxl)."""

    label: str
    build: Callable[[int, float, float, Any, bool], torch.Tensor]


SCHEDULE_TYPES: dict[str, ScheduleType] = {
    s.label: s
    for s in (
        ScheduleType("Uniform", lambda n, lo, hi, d, xl: uniform(n, d)),
        ScheduleType("Karras", lambda n, lo, hi, d, xl: karras(n, lo, hi)),
        ScheduleType("Exponential", lambda n, lo, hi, d, xl: exponential(n, lo, hi)),
        ScheduleType("Polyexponential", lambda n, lo, hi, d, xl: polyexponential(n, lo, hi)),
        ScheduleType("SGM Uniform", lambda n, lo, hi, d, xl: sgm_uniform(n, lo, hi, d)),
        ScheduleType("KL Optimal", lambda n, lo, hi, d, xl: kl_optimal(n, lo, hi)),
        ScheduleType("Align Your Steps", lambda n, lo, hi, d, xl: align_your_steps(n, xl)),
        ScheduleType("Simple", lambda n, lo, hi, d, xl: simple(n, d)),
        ScheduleType("Normal", lambda n, lo, hi, d, xl: normal(n, lo, hi, d)),
        ScheduleType("DDIM", lambda n, lo, hi, d, xl: ddim_uniform(n, d)),
        ScheduleType("Beta", lambda n, lo, hi, d, xl: beta(n, lo, hi)),
    )
}


def build_sigmas(
    schedule: str | None, steps: int, denoiser: Any, is_sdxl: bool, discard_penultimate: bool
) -> torch.Tensor:
    """A1111's ``KDiffusionSampler.get_sigmas`` for a resolved schedule label.

    ``schedule`` None (Automatic for a sampler without a default) is the denoiser's own grid. With
    ``discard_penultimate`` (DPM2, DPM2 a, DPM++ 3M SDE, or the "always discard" option) one step
    more is built and the next-to-last sigma dropped.
    """
    import torch

    n = steps + 1 if discard_penultimate else steps
    if schedule is None:
        sigmas = denoiser.get_sigmas(n)
    else:
        if schedule not in SCHEDULE_TYPES:
            raise ValueError(f"unknown schedule type {schedule!r}; valid: {', '.join(SCHEDULE_TYPES)}")
        sigmas = SCHEDULE_TYPES[schedule].build(n, denoiser.sigma_min, denoiser.sigma_max, denoiser, is_sdxl)
    if discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    result: torch.Tensor = sigmas.cpu()
    return result


def img2img_steps(steps: int, denoise: float, fixed_steps: bool) -> tuple[int, int]:
    """(schedule steps, t_enc) of A1111's ``setup_img2img_steps``; the pass runs ``t_enc + 1`` steps.

    ``fixed_steps`` (the hires pass, or A1111's "img2img_fix_steps" option): build
    ``int(steps / min(denoise, 0.999))`` steps and run the last ``steps``. Otherwise build ``steps``
    and run ``int(min(denoise, 0.999) * steps) + 1``.
    """
    if denoise <= 0:
        raise ValueError("denoising strength must be > 0 for an img2img pass")
    if fixed_steps:
        return int(steps / min(denoise, 0.999)), steps - 1
    return steps, int(min(denoise, 0.999) * steps)


def img2img_sigmas(sigmas: torch.Tensor, schedule_steps: int, t_enc: int) -> torch.Tensor:
    """The tail A1111 runs: ``sigmas[steps - t_enc - 1:]`` (t_enc + 1 steps)."""
    return sigmas[schedule_steps - t_enc - 1 :]


def ddpm_timesteps(steps: int, discard_penultimate: bool = False) -> torch.Tensor:
    """A1111's DDIM/PLMS/UniPC grid: ``range(0, 1000, 1000 // steps) + 1`` clipped to 999 (so 15 or 30
    steps give one point more than asked); discard adds one step, as for the sigma grids."""
    import torch

    n = steps + 1 if discard_penultimate else steps
    return torch.clip(torch.asarray(list(range(0, 1000, 1000 // n))) + 1, 0, 999)
