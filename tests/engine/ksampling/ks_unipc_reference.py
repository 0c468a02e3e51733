"""A reference UniPC for the tests, written from the UniPC paper (Zhao et al. 2023, B(h) variants)
and A1111's facts (``sd_samplers_timesteps_impl.unipc``, ``uni_pc.py``): discrete VP schedule with
log(alpha) piecewise linear in t = (n + 1) / N, model time (t - 1/N) * 1000, data prediction,
time-uniform steps from t = 1 (img2img: timesteps[-1] / 1000 + 1/1000) to 1/N, multistep with
lower order at the start and the end, no corrector after the last step.

Deliberately not the same code as the implementation: the schedule uses ``np.interp`` in float64
and the coefficients are solved in float64, so agreement is up to float rounding, not bitwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


class _Schedule:
    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.n = len(alphas_cumprod)
        self.ts = np.linspace(0.0, 1.0, self.n + 1)[1:]
        self.log_alpha = 0.5 * np.log(alphas_cumprod.double().numpy())

    def log_alpha_at(self, t: float) -> float:
        return float(np.interp(t, self.ts, self.log_alpha))

    def alpha(self, t: float) -> float:
        return math.exp(self.log_alpha_at(t))

    def std(self, t: float) -> float:
        return math.sqrt(1.0 - math.exp(2.0 * self.log_alpha_at(t)))

    def lam(self, t: float) -> float:
        la = self.log_alpha_at(t)
        return la - 0.5 * math.log(1.0 - math.exp(2.0 * la))


def _coefficients(rks: list[float], hh: float, order: int, variant: str) -> tuple[np.ndarray, float]:
    """R (Vandermonde in rk) and b_k = phi_{k+1}(h) * k! / B(h), B = h (bh1) or e^h - 1 (bh2)."""
    b_h = hh if variant == "bh1" else math.expm1(hh)
    phi = math.expm1(hh) / hh - 1  # h * phi_2(h) / h ... the recursion the paper defines
    factorial = 1
    b = []
    for i in range(1, order + 1):
        b.append(phi * factorial / b_h)
        factorial *= i + 1
        phi = phi / hh - 1 / factorial
    return np.array(b), b_h


def unipc_reference(
    eps_model: Any,
    alphas_cumprod: torch.Tensor,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    is_img2img: bool = False,
    order: int = 3,
    variant: str = "bh1",
) -> torch.Tensor:
    ns = _Schedule(alphas_cumprod)
    steps = len(timesteps)
    t_T = float(timesteps[-1]) / 1000 + 1 / 1000 if is_img2img else 1.0
    grid = torch.linspace(t_T, 1.0 / ns.n, steps + 1).tolist()

    def data(x: torch.Tensor, t: float) -> torch.Tensor:
        t_model = (torch.full((x.shape[0],), t) - 1.0 / ns.n) * 1000.0
        return (x - ns.std(t) * eps_model(x, t_model)) / ns.alpha(t)

    models = [data(x, grid[0])]
    ts = [grid[0]]
    for step in range(1, steps + 1):
        t = grid[step]
        p = min(order, step, steps + 1 - step)
        lam_prev, lam_t = ns.lam(ts[-1]), ns.lam(t)
        h = lam_t - lam_prev
        rks = [(ns.lam(ts[-(i + 1)]) - lam_prev) / h for i in range(1, p)]
        d1s = [(models[-(i + 1)] - models[-1]) / rk for i, rk in zip(range(1, p), rks, strict=True)]
        hh = -h
        b, b_h = _coefficients(rks, hh, p, variant)
        rk_all = np.array([*rks, 1.0])
        r_mat = np.stack([rk_all ** (i - 1) for i in range(1, p + 1)])
        base = ns.std(t) / ns.std(ts[-1]) * x - ns.alpha(t) * math.expm1(hh) * models[-1]
        pred = 0
        if d1s:
            rhos_p = [0.5] if p == 2 else list(np.linalg.solve(r_mat[:-1, :-1], b[:-1]))
            pred = sum(float(r) * d for r, d in zip(rhos_p, d1s, strict=True))
        x_pred = base - ns.alpha(t) * b_h * pred
        if step == steps:
            x = x_pred
            break
        model_t = data(x_pred, t)
        rhos_c = [0.5] if p == 1 else list(np.linalg.solve(r_mat, b))
        corr = sum(float(r) * d for r, d in zip(rhos_c[:-1], d1s, strict=True)) if d1s else 0
        x = base - ns.alpha(t) * b_h * (corr + float(rhos_c[-1]) * (model_t - models[-1]))
        models.append(model_t)
        ts.append(t)
        if len(models) > order:
            models.pop(0)
            ts.pop(0)
    return x
