"""A1111's own k-diffusion-style samplers: Restart (``sd_samplers_extra.py``) and LCM
(``sd_samplers_lcm.py``).

Restart (Xu et al. 2023): Heun steps, plus, from 20 steps on, jumps back up from sigma ~0.1 to
sigma ~2 with fresh noise and re-descends on a Karras grid. A1111 then *replaces* the schedule by
a Karras grid of ``steps - restart_steps * restart_times`` steps between the schedule's last
positive sigma and its first (whatever the schedule type), with 9 restart steps once (20-35 steps)
or ``steps // 4`` steps twice (36+).

LCM: at each step take the model's x0 estimate and re-noise it to the next sigma with fresh noise.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from .common import Denoise, NoiseSampler, StepCallback, batch_sigma, report, to_d
from .schedules import karras

if TYPE_CHECKING:
    import torch


def _restart_plan(sigmas: torch.Tensor) -> tuple[torch.Tensor, dict[int, tuple[int, int, float]]]:
    """(base grid, {index: (restart steps, times, max sigma)}) as A1111 chooses them."""
    import torch

    steps = sigmas.shape[0] - 1
    restarts: dict[float, tuple[int, int, float]] = {}
    if steps >= 20:
        restart_steps, restart_times = 9, 1
        if steps >= 36:
            restart_steps, restart_times = steps // 4, 2
        sigmas = karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item()).to(
            sigmas.device
        )
        restarts = {0.1: (restart_steps + 1, restart_times, 2.0)}
    by_index = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restarts.items()}
    return sigmas, by_index


def _step_list(sigmas: torch.Tensor, restarts: dict[int, tuple[int, int, float]]) -> list[tuple[Any, Any]]:
    import torch

    steps: list[tuple[Any, Any]] = []
    for i in range(len(sigmas) - 1):
        steps.append((sigmas[i], sigmas[i + 1]))
        if i + 1 not in restarts:
            continue
        restart_steps, restart_times, restart_max = restarts[i + 1]
        min_idx = i + 1
        max_idx = int(torch.argmin(abs(sigmas - restart_max), dim=0))
        if max_idx < min_idx:
            grid = karras(restart_steps, sigmas[min_idx].item(), sigmas[max_idx].item()).to(sigmas.device)[
                :-1
            ]
            for _ in range(restart_times):
                steps.extend(itertools.pairwise(grid))
    return steps


def sample_restart(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """Restart sampling with A1111's automatic restart list."""
    assert noise is not None
    base, restarts = _restart_plan(sigmas)
    last_sigma = None
    for step_id, (old_sigma, new_sigma) in enumerate(_step_list(base, restarts)):
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            # a restart: back up from last_sigma to old_sigma with fresh noise
            x = x + noise(old_sigma, new_sigma) * s_noise * (old_sigma**2 - last_sigma**2) ** 0.5
        x = _heun_step(model, x, old_sigma, new_sigma, step_id, callback)
        last_sigma = new_sigma
    return x


def _heun_step(
    model: Denoise,
    x: torch.Tensor,
    old_sigma: Any,
    new_sigma: Any,
    step_id: int,
    callback: StepCallback | None,
) -> torch.Tensor:
    denoised = model(x, batch_sigma(x, old_sigma))
    d = to_d(x, old_sigma, denoised)
    # A1111 reports the target sigma here (its callback's 'sigma' is new_sigma).
    report(callback, step_id, x, new_sigma, denoised)
    dt = new_sigma - old_sigma
    if new_sigma == 0:
        euler: torch.Tensor = x + d * dt
        return euler
    x_2 = x + d * dt
    denoised_2 = model(x_2, batch_sigma(x, new_sigma))
    d_2 = to_d(x_2, new_sigma, denoised_2)
    heun: torch.Tensor = x + (d + d_2) / 2 * dt
    return heun


def sample_lcm(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
) -> torch.Tensor:
    """LCM multistep sampling on the LCM denoiser's grid."""
    assert noise is not None
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        report(callback, i, x, sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(sigmas[i], sigmas[i + 1])
    return x
