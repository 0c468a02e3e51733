"""DPM fast and DPM adaptive: k-diffusion's DPM-Solver (Lu et al. 2022, arXiv:2206.00927).

Both solve in t = -log(sigma) on the eps prediction, between the model's sigma_max and sigma_min
(txt2img; an img2img pass uses its own first and next-to-last sigma), not on a schedule grid.
A1111 passes eta = 1 (its "Eta for k-diffusion samplers"), so both add ancestral noise.

- fast: ``n`` model evaluations in steps of order 3 (last ones 2/1), equal in t.
- adaptive: embedded order 2/3 pairs with a PID step-size controller (rtol 0.05, atol 0.0078,
  h_init 0.05, I-control); the number of evaluations is its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .common import Denoise, NoiseSampler, StepCallback, StepState, ancestral_step

if TYPE_CHECKING:
    import torch

_Cache = dict[str, "torch.Tensor"]


class _PIDController:
    """Step-size control for the adaptive solver (k-diffusion's PIDStepSizeController)."""

    def __init__(
        self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float, accept_safety: float
    ):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = 1e-8
        self.errs: list[float] = []

    def propose_step(self, error: Any) -> bool:
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2] = self.errs[1]
            self.errs[1] = self.errs[0]
        self.h *= factor
        return accept


class _DPMSolver:
    def __init__(self, model: Denoise, report: Callable[[int, torch.Tensor, Any, torch.Tensor], None]):
        self.model = model
        self.report = report

    @staticmethod
    def t(sigma: Any) -> Any:
        return -sigma.log()

    @staticmethod
    def sigma(t: Any) -> Any:
        return t.neg().exp()

    def eps(self, cache: _Cache, key: str, x: torch.Tensor, t: Any) -> tuple[torch.Tensor, _Cache]:
        if key in cache:
            return cache[key], cache
        sigma = self.sigma(t) * x.new_ones([x.shape[0]])
        eps = (x - self.model(x, sigma)) / self.sigma(t)
        return eps, {key: eps, **cache}

    def step_1(self, x: torch.Tensor, t: Any, t_next: Any, cache: _Cache) -> tuple[torch.Tensor, _Cache]:
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        return x - self.sigma(t_next) * h.expm1() * eps, cache

    def step_2(
        self, x: torch.Tensor, t: Any, t_next: Any, cache: _Cache, r1: float = 1 / 2
    ) -> tuple[torch.Tensor, _Cache]:
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1, cache = self.eps(cache, "eps_r1", u1, s1)
        x_2 = (
            x
            - self.sigma(t_next) * h.expm1() * eps
            - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
        )
        return x_2, cache

    def step_3(self, x: torch.Tensor, t: Any, t_next: Any, cache: _Cache) -> tuple[torch.Tensor, _Cache]:
        r1, r2 = 1 / 3, 2 / 3
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        s2 = t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1, cache = self.eps(cache, "eps_r1", u1, s1)
        u2 = (
            x
            - self.sigma(s2) * (r2 * h).expm1() * eps
            - self.sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        )
        eps_r2, cache = self.eps(cache, "eps_r2", u2, s2)
        x_3 = (
            x
            - self.sigma(t_next) * h.expm1() * eps
            - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)
        )
        return x_3, cache

    def step(self, order: int, x: torch.Tensor, t: Any, t_next: Any, cache: _Cache) -> torch.Tensor:
        if order == 1:
            return self.step_1(x, t, t_next, cache)[0]
        if order == 2:
            return self.step_2(x, t, t_next, cache)[0]
        return self.step_3(x, t, t_next, cache)[0]

    def ancestral_target(self, t: Any, t_next: Any, t_end: Any, eta: float) -> tuple[Any, Any]:
        import torch

        if not eta:
            return t_next, 0.0
        sd, _ = ancestral_step(self.sigma(t), self.sigma(t_next), eta)
        t_next_ = torch.minimum(t_end, self.t(sd))
        return t_next_, (self.sigma(t_next) ** 2 - self.sigma(t_next_) ** 2) ** 0.5


def _solver(model: Denoise, callback: StepCallback | None) -> _DPMSolver:
    def report(i: int, x: torch.Tensor, t: Any, denoised: torch.Tensor) -> None:
        if callback is not None:
            callback(StepState(i, x, t.neg().exp(), denoised))

    return _DPMSolver(model, report)


def sample_dpm_fast(
    model: Denoise,
    x: torch.Tensor,
    sigma_min: float,
    sigma_max: float,
    n: int,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """DPM-Solver-fast with ``n`` model evaluations from sigma_max to sigma_min."""
    import torch

    assert noise is not None
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    solver = _solver(model, callback)
    t_start, t_end = solver.t(torch.tensor(sigma_max)), solver.t(torch.tensor(sigma_min))
    if not t_end > t_start and eta:
        raise ValueError("eta must be 0 for reverse sampling")
    m = math.floor(n / 3) + 1
    ts = torch.linspace(t_start, t_end, m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if n % 3 == 0 else [3] * (m - 1) + [n % 3]
    for i, order in enumerate(orders):
        cache: _Cache = {}
        t, t_next = ts[i], ts[i + 1]
        t_next_, su = solver.ancestral_target(t, t_next, t_end, eta)
        eps, cache = solver.eps(cache, "eps", x, t)
        solver.report(i, x, ts[i], x - solver.sigma(t) * eps)
        x = solver.step(order, x, t, t_next_, cache)
        x = x + su * s_noise * noise(solver.sigma(t), solver.sigma(t_next))
    return x


def sample_dpm_adaptive(
    model: Denoise,
    x: torch.Tensor,
    sigma_min: float,
    sigma_max: float,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    order: int = 3,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.05,
    accept_safety: float = 0.81,
) -> torch.Tensor:
    """DPM-Solver-12/23 with adaptive steps from sigma_max to sigma_min."""
    import torch

    assert noise is not None
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    if order not in (2, 3):
        raise ValueError("order should be 2 or 3")
    solver = _solver(model, callback)
    t_start, t_end = solver.t(torch.tensor(sigma_max)), solver.t(torch.tensor(sigma_min))
    forward = t_end > t_start
    if not forward and eta:
        raise ValueError("eta must be 0 for reverse sampling")
    h_init = abs(h_init) * (1 if forward else -1)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    s, x_prev = t_start, x
    pid = _PIDController(h_init, 0.0, 1.0, 0.0, 1.5 if eta else order, accept_safety)
    steps = 0
    while s < t_end - 1e-5 if forward else s > t_end + 1e-5:
        cache: _Cache = {}
        t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
        t_, su = solver.ancestral_target(s, t, t_end, eta)
        eps, cache = solver.eps(cache, "eps", x, s)
        denoised = x - solver.sigma(s) * eps
        if order == 2:
            x_low, cache = solver.step_1(x, s, t_, cache)
            x_high, cache = solver.step_2(x, s, t_, cache)
        else:
            x_low, cache = solver.step_2(x, s, t_, cache, r1=1 / 3)
            x_high, cache = solver.step_3(x, s, t_, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if pid.propose_step(error):
            x_prev = x_low
            x = x_high + su * s_noise * noise(solver.sigma(s), solver.sigma(t))
            s = t
        steps += 1
        solver.report(steps - 1, x, s, denoised)
    return x
