"""Euler, Euler a, Heun, DPM2, DPM2 a and LMS, as k-diffusion 0.0.16 defines them (A1111 calls
``sample_euler`` ... ``sample_lms`` with their defaults: churn 0, s_noise 1, eta 1).

Each loop step: 1. evaluate the denoiser at sigma_i (with churn: at a raised sigma_hat); 2. report;
3. take the step to sigma_{i+1} (second-order methods evaluate once more at the target or midpoint;
ancestral ones step down to sigma_down and add sigma_up worth of fresh noise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import Denoise, NoiseSampler, StepCallback, ancestral_step, batch_sigma, report, to_d

if TYPE_CHECKING:
    import torch


def _churned(
    x: torch.Tensor,
    sigmas: torch.Tensor,
    i: int,
    noise: NoiseSampler | None,
    churn: tuple[float, float, float, float],
) -> tuple[torch.Tensor, Any]:
    """Karras' "churn": raise sigma_i to sigma_hat by adding noise (a no-op at A1111's default 0)."""
    s_churn, s_tmin, s_tmax, s_noise = churn
    if s_churn <= 0:
        return x, sigmas[i] * 1.0
    gamma = min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0
    assert noise is not None
    # k-diffusion draws every step, even where gamma is 0, so the stream stays aligned.
    eps = noise(sigmas[i], sigmas[i + 1]) * s_noise
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def sample_euler(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    churn: tuple[float, float, float, float] = (0.0, 0.0, float("inf"), 1.0),
) -> torch.Tensor:
    """Euler steps (Karras et al. 2022, algorithm 2 without the Heun correction)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise, churn)
        denoised = model(x, batch_sigma(x, sigma_hat))
        d = to_d(x, sigma_hat, denoised)
        report(callback, i, x, sigmas[i], denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


def sample_euler_ancestral(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """Euler down to sigma_down, then fresh noise up to sigma_{i+1}."""
    assert noise is not None
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, i, x, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        x = x + d * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def sample_heun(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    churn: tuple[float, float, float, float] = (0.0, 0.0, float("inf"), 1.0),
) -> torch.Tensor:
    """Heun's method (two evaluations a step; Euler for the last step to 0)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise, churn)
        denoised = model(x, batch_sigma(x, sigma_hat))
        d = to_d(x, sigma_hat, denoised)
        report(callback, i, x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        denoised_2 = model(x_2, batch_sigma(x, sigmas[i + 1]))
        d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
        x = x + (d + d_2) / 2 * dt
    return x


def sample_dpm_2(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    churn: tuple[float, float, float, float] = (0.0, 0.0, float("inf"), 1.0),
) -> torch.Tensor:
    """DPM-Solver-2 flavoured steps: Euler to the log-sigma midpoint, then the full step with the
    midpoint's derivative."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise, churn)
        denoised = model(x, batch_sigma(x, sigma_hat))
        d = to_d(x, sigma_hat, denoised)
        report(callback, i, x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
            continue
        sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
        x_2 = x + d * (sigma_mid - sigma_hat)
        denoised_2 = model(x_2, batch_sigma(x, sigma_mid))
        d_2 = to_d(x_2, sigma_mid, denoised_2)
        x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


def sample_dpm_2_ancestral(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """DPM2 down to sigma_down, then fresh noise (none after a plain Euler step to 0)."""
    assert noise is not None
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, i, x, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
            continue
        sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
        x_2 = x + d * (sigma_mid - sigmas[i])
        denoised_2 = model(x_2, batch_sigma(x, sigma_mid))
        d_2 = to_d(x_2, sigma_mid, denoised_2)
        x = x + d_2 * (sigma_down - sigmas[i])
        x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def lms_coefficient(order: int, t: Any, i: int, j: int) -> float:
    """Integral over [t_i, t_{i+1}] of the j-th Lagrange basis polynomial through t_i ... t_{i-order+1}
    (scipy's adaptive quadrature at relative tolerance 1e-4, as k-diffusion integrates it)."""
    from scipy import integrate

    if order - 1 > i:
        raise ValueError(f"Order {order} too high for step {i}")

    def basis(tau: float) -> Any:
        prod: Any = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return float(integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0])


def sample_lms(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    order: int = 4,
) -> torch.Tensor:
    """Linear multistep (4th order) on the derivatives of the last steps."""
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        report(callback, i, x, sigmas[i], denoised)
        cur_order = min(i + 1, order)
        coeffs = [lms_coefficient(cur_order, sigmas_cpu, i, j) for j in range(cur_order)]
        x = x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds), strict=True))
    return x
