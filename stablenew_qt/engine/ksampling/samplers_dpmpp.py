"""The DPM-Solver++ family as k-diffusion 0.0.16 defines it: 2S a, SDE, 2M, 2M SDE (midpoint or
Heun), 3M SDE. All work in t = -log(sigma) and on the denoised (data) prediction; A1111 passes
eta 1 and s_noise 1, and gives the SDE ones the Brownian-tree noise.

Each loop step: 1. denoise at sigma_i; 2. report; 3. the exponential-integrator step to sigma_{i+1},
corrected with earlier denoised values (multistep) or a midpoint evaluation (single-step);
4. for the stochastic ones, noise scaled to what the step removed. A step to sigma 0 returns the
plain Euler / denoised result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import Denoise, NoiseSampler, StepCallback, ancestral_step, batch_sigma, report, to_d

if TYPE_CHECKING:
    import torch


def _sigma_of(t: Any) -> Any:
    return t.neg().exp()


def _t_of(sigma: Any) -> Any:
    return sigma.log().neg()


def sample_dpmpp_2s_ancestral(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """DPM-Solver++(2S) to sigma_down via the log-sigma midpoint, then ancestral noise."""
    assert noise is not None
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, i, x, sigmas[i], denoised)
        if sigma_down == 0:
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigma_down - sigmas[i])
        else:
            t, t_next = _t_of(sigmas[i]), _t_of(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (_sigma_of(s) / _sigma_of(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = model(x_2, batch_sigma(x, _sigma_of(s)))
            x = (_sigma_of(t_next) / _sigma_of(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def sample_dpmpp_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 1 / 2,
) -> torch.Tensor:
    """Stochastic DPM-Solver++ (two evaluations a step, noise at the midpoint and the end)."""
    assert noise is not None
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        report(callback, i, x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t_of(sigmas[i]), _t_of(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        # 1. to the midpoint s (ancestral split between t and s)
        sd, su = ancestral_step(_sigma_of(t), _sigma_of(s), eta)
        s_ = _t_of(sd)
        x_2 = (_sigma_of(s_) / _sigma_of(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(_sigma_of(t), _sigma_of(s)) * s_noise * su
        denoised_2 = model(x_2, batch_sigma(x, _sigma_of(s)))
        # 2. the full step with the blended prediction
        sd, su = ancestral_step(_sigma_of(t), _sigma_of(t_next), eta)
        t_next_ = _t_of(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma_of(t_next_) / _sigma_of(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise(_sigma_of(t), _sigma_of(t_next)) * s_noise * su
    return x


def sample_dpmpp_2m(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M): second order from the previous denoised value (first order at the ends)."""
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        report(callback, i, x, sigmas[i], denoised)
        t, t_next = _t_of(sigmas[i]), _t_of(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (_sigma_of(t_next) / _sigma_of(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - _t_of(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma_of(t_next) / _sigma_of(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def sample_dpmpp_2m_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE; ``solver_type`` "midpoint" (DPM++ 2M SDE) or "heun" (... SDE Heun)."""
    if solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    assert noise is not None
    old_denoised = None
    h_last: Any = None
    h: Any = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        report(callback, i, x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (
                        denoised - old_denoised
                    )
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                # k-diffusion's multiplication order (noise first), for identical rounding
                x = (
                    x
                    + noise(sigmas[i], sigmas[i + 1])
                    * sigmas[i + 1]
                    * (-2 * eta_h).expm1().neg().sqrt()
                    * s_noise
                )
        old_denoised = denoised
        h_last = h
    return x


def sample_dpmpp_3m_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """DPM-Solver++(3M) SDE: third order from the two previous denoised values."""
    assert noise is not None
    denoised_1: torch.Tensor | None = None
    denoised_2: torch.Tensor | None = None
    h_1: Any = None
    h_2: Any = None
    h: Any = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, batch_sigma(x, sigmas[i]))
        report(callback, i, x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = (-h_eta).exp() * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                assert denoised_1 is not None and denoised_2 is not None
                r0 = h_1 / h
                r1 = h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                assert denoised_1 is not None
                r = h_1 / h
                d = (denoised - denoised_1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * d
            if eta:
                x = (
                    x
                    + noise(sigmas[i], sigmas[i + 1])
                    * sigmas[i + 1]
                    * (-2 * h * eta).expm1().neg().sqrt()
                    * s_noise
                )
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x
