"""A reference of A1111 1.10's sampling, written for the tests and independent of
``stablenew_qt.engine.ksampling``.

- The k-diffusion samplers, ``CompVisDenoiser``/``CompVisVDenoiser`` and the Brownian tree come
  from k-diffusion 0.1.1.post1 itself (a test-only dependency, installed with ``--no-deps``; its
  ``sampling.py`` and ``external.py`` are byte-identical to commit ab527a9, the one A1111 1.10
  pins in ``modules/launch_utils.py``). They are loaded under a private package name without
  running k-diffusion's ``__init__`` (which imports its training stack).
- A1111's own parts are written out here from its source, as literally as is useful: the LDM
  ``alphas_cumprod``, the schedule functions (``sd_schedulers.py``), the CFG denoiser for one
  prompt per image (``sd_samplers_cfg_denoiser.py``), ``ImageRNG`` (``rng.py``), DDIM/PLMS/UniPC
  (``sd_samplers_timesteps*.py``, ``uni_pc.py``), Restart and LCM.

Everything runs the same diffusers UNet as the code under test: the model is shared, the math
around it is what is compared.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

KDIFF_MISSING = (
    "k-diffusion is not installed (test-only reference): "
    "pip install --no-deps k-diffusion==0.1.1.post1 torchdiffeq"
)


def load_k_diffusion() -> tuple[Any, Any] | None:
    """(sampling, external) modules of the installed k-diffusion, or None when it is missing."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        return None
    name = "_kdiffusion_reference"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[name] = package
    sampling = importlib.import_module(f"{name}.sampling")
    external = importlib.import_module(f"{name}.external")
    # A1111 (sd_schedulers.py) replaces to_d with a plain division by sigma.
    sampling.to_d = lambda x, sigma, denoised: (x - denoised) / sigma
    return sampling, external


# -- LDM / A1111 model side ----------------------------------------------------------------------


def ldm_alphas_cumprod(start: float = 0.00085, end: float = 0.012, n: int = 1000) -> torch.Tensor:
    """LDM ``make_beta_schedule('linear')`` -> np.cumprod in float64 -> float32 buffer."""
    betas = (torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2).numpy()
    return torch.tensor(np.cumprod(1.0 - betas, axis=0), dtype=torch.float32)


class LdmLikeModel:
    """What k-diffusion's CompVis wrappers expect of an LDM model: ``alphas_cumprod`` and
    ``apply_model(x, t, cond)``, here over a diffusers UNet. ``cond`` is A1111's dict with
    ``c_crossattn``, optionally ``vector`` parts (text_embeds, time_ids) and ``c_concat``."""

    def __init__(self, unet: Any, alphas_cumprod: torch.Tensor | None = None) -> None:
        self.unet = unet
        self.alphas_cumprod = ldm_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
        self.calls = 0

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        self.calls += 1
        if "c_concat" in cond:
            x = torch.cat([x, cond["c_concat"]], dim=1)
        added = None
        if "text_embeds" in cond:
            added = {"text_embeds": cond["text_embeds"], "time_ids": cond["time_ids"]}
        out = self.unet(x, t.float(), encoder_hidden_states=cond["c_crossattn"], added_cond_kwargs=added)
        return out.sample.float()

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        return self.apply_model(x, t, cond)


def cat_conds(cond: dict[str, torch.Tensor], uncond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([cond[k], uncond[k]]) for k in cond}


class ReferenceCFG:
    """A1111's CFGDenoiser for one prompt per image, cond and uncond of equal length (one batched
    call), no mask unless given; counts its calls like A1111's ``self.step``."""

    def __init__(
        self, inner: Any, cond: dict[str, Any], uncond: dict[str, Any], scale: float, eps_mode=False
    ):
        self.inner = inner
        self.cond, self.uncond, self.scale = cond, uncond, scale
        self.step = 0
        self.mask = self.nmask = self.init_latent = None
        self.eps_mode = eps_mode  # timestep samplers: blend the input, not the output
        self.scale_multiplier = 1.0
        self.last_noise_uncond = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
        if self.eps_mode and self.mask is not None:
            x = x * self.nmask + self.init_latent * self.mask
        batch = x.shape[0]
        x_in = torch.cat([torch.stack([x[i]]) for i in range(batch)] + [x])
        sigma_in = torch.cat([torch.stack([sigma[i]]) for i in range(batch)] + [sigma])
        x_out = self.inner(x_in, sigma_in, cond=cat_conds(self.cond, self.uncond))
        self.last_noise_uncond = torch.clone(x_out[-batch:])
        denoised_uncond = x_out[-batch:]
        denoised = torch.clone(denoised_uncond)
        for i in range(batch):
            denoised[i] += (x_out[i] - denoised_uncond[i]) * (1.0 * self.scale * self.scale_multiplier)
        if not self.eps_mode and self.mask is not None:
            denoised = denoised * self.nmask + self.init_latent * self.mask
        self.step += 1
        return denoised


class ReferenceImageRNG:
    """A1111's ImageRNG for the "GPU" source on a CPU device, without variation seeds."""

    def __init__(self, shape: tuple[int, ...], seeds: list[int], ensd: int = 0) -> None:
        self.shape, self.seeds, self.ensd = shape, seeds, ensd
        self.generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        self.is_first = True

    def next(self) -> torch.Tensor:
        xs = [torch.randn(self.shape, generator=g) for g in self.generators]
        if self.is_first:
            self.is_first = False
            if self.ensd:
                self.generators = [torch.Generator("cpu").manual_seed(int(s) + self.ensd) for s in self.seeds]
        return torch.stack(xs)


class TorchHijack:
    """A1111's TorchHijack: k-diffusion's ``torch.randn_like`` draws the images' next noise."""

    def __init__(self, rng: ReferenceImageRNG) -> None:
        self.rng = rng

    def __getattr__(self, item: str) -> Any:
        if item == "randn_like":
            return lambda x: self.rng.next()
        return getattr(torch, item)


# -- A1111 schedules (sd_schedulers.py), literal -----------------------------------------------


def a1111_sigmas(kd_sampling: Any, name: str, n: int, wrap: Any, is_sdxl: bool) -> torch.Tensor:
    sigma_min, sigma_max = wrap.sigmas[0].item(), wrap.sigmas[-1].item()
    if name in ("Automatic", "Uniform"):
        return wrap.get_sigmas(n)
    if name == "Karras":
        return kd_sampling.get_sigmas_karras(n=n, sigma_min=sigma_min, sigma_max=sigma_max, device="cpu")
    if name == "Exponential":
        return kd_sampling.get_sigmas_exponential(n=n, sigma_min=sigma_min, sigma_max=sigma_max, device="cpu")
    if name == "Polyexponential":
        return kd_sampling.get_sigmas_polyexponential(
            n=n, sigma_min=sigma_min, sigma_max=sigma_max, device="cpu"
        )
    if name in ("SGM Uniform", "Normal"):
        start = wrap.sigma_to_t(torch.tensor(sigma_max))
        end = wrap.sigma_to_t(torch.tensor(sigma_min))
        ts = (
            torch.linspace(start, end, n + 1)[:-1] if name == "SGM Uniform" else torch.linspace(start, end, n)
        )
        sigs = [wrap.t_to_sigma(t) for t in ts]
        sigs += [0.0]
        return torch.FloatTensor(sigs)
    if name == "KL Optimal":
        alpha_min = torch.arctan(torch.tensor(sigma_min))
        alpha_max = torch.arctan(torch.tensor(sigma_max))
        idx = torch.arange(n + 1)
        return torch.tan(idx / n * alpha_min + (1.0 - idx / n) * alpha_max)
    if name == "Align Your Steps":
        if is_sdxl:
            sigmas = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
        else:
            sigmas = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
        if n != len(sigmas):
            xs = np.linspace(0, 1, len(sigmas))
            ys = np.log(sigmas[::-1])
            new_ys = np.interp(np.linspace(0, 1, n), xs, ys)
            sigmas = np.append(np.exp(new_ys)[::-1].copy(), [0.0])
        else:
            sigmas.append(0.0)
        return torch.FloatTensor(sigmas)
    if name == "Simple":
        ss = len(wrap.sigmas) / n
        sigs = [float(wrap.sigmas[-(1 + int(x * ss))]) for x in range(n)] + [0.0]
        return torch.FloatTensor(sigs)
    if name == "DDIM":
        sigs, ss, x = [], max(len(wrap.sigmas) // n, 1), 1
        while x < len(wrap.sigmas):
            sigs += [float(wrap.sigmas[x])]
            x += ss
        return torch.FloatTensor([*sigs[::-1], 0.0])
    if name == "Beta":
        from scipy import stats

        timesteps = 1 - np.linspace(0, 1, n)
        timesteps = [stats.beta.ppf(x, 0.6, 0.6) for x in timesteps]
        sigmas = [sigma_min + (x * (sigma_max - sigma_min)) for x in timesteps] + [0.0]
        return torch.FloatTensor(sigmas)
    raise KeyError(name)


def a1111_get_sigmas(
    kd_sampling: Any, schedule: str | None, steps: int, wrap: Any, discard: bool, is_sdxl: bool
):
    """KDiffusionSampler.get_sigmas."""
    steps += 1 if discard else 0
    sigmas = (
        wrap.get_sigmas(steps)
        if schedule is None
        else a1111_sigmas(kd_sampling, schedule, steps, wrap, is_sdxl)
    )
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas


def restart_sampler(
    kd: Any, model: Any, x: torch.Tensor, sigmas: torch.Tensor, extra_args=None, callback=None, s_noise=1.0
):
    """A1111 sd_samplers_extra.restart_sampler (restart_list None)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    step_id = 0

    def heun_step(x, old_sigma, new_sigma):
        nonlocal step_id
        denoised = model(x, old_sigma * s_in, **extra_args)
        d = kd.to_d(x, old_sigma, denoised)
        dt = new_sigma - old_sigma
        if new_sigma == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, new_sigma * s_in, **extra_args)
            d_2 = kd.to_d(x_2, new_sigma, denoised_2)
            x = x + (d + d_2) / 2 * dt
        step_id += 1
        return x

    steps = sigmas.shape[0] - 1
    restart_list: dict = {}
    if steps >= 20:
        restart_steps, restart_times = 9, 1
        if steps >= 36:
            restart_steps, restart_times = steps // 4, 2
        sigmas = kd.get_sigmas_karras(
            steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item()
        )
        restart_list = {0.1: [restart_steps + 1, restart_times, 2]}
    restart_list = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restart_list.items()}
    step_list = []
    for i in range(len(sigmas) - 1):
        step_list.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in restart_list:
            restart_steps, restart_times, restart_max = restart_list[i + 1]
            min_idx = i + 1
            max_idx = int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if max_idx < min_idx:
                sigma_restart = kd.get_sigmas_karras(
                    restart_steps, sigmas[min_idx].item(), sigmas[max_idx].item()
                )[:-1]
                while restart_times > 0:
                    restart_times -= 1
                    step_list.extend(zip(sigma_restart[:-1], sigma_restart[1:], strict=True))  # noqa: RUF007
    last_sigma = None
    for old_sigma, new_sigma in step_list:
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            x = x + kd.torch.randn_like(x) * s_noise * (old_sigma**2 - last_sigma**2) ** 0.5
        x = heun_step(x, old_sigma, new_sigma)
        last_sigma = new_sigma
    return x


class ReferenceLCMDenoiser:
    """A1111 sd_samplers_lcm.LCMCompVisDenoiser, on k-diffusion's DiscreteEpsDDPMDenoiser."""

    def __new__(cls, external: Any, model: LdmLikeModel) -> Any:
        base = external.DiscreteEpsDDPMDenoiser

        class LCM(base):  # type: ignore[misc, valid-type]
            def __init__(self, model):
                timesteps, original = 1000, 50
                self.skip_steps = timesteps // original
                valid = torch.zeros((original), dtype=torch.float32)
                for x in range(original):
                    valid[original - 1 - x] = model.alphas_cumprod[timesteps - 1 - x * self.skip_steps]
                super().__init__(model, valid, quantize=None)

            def get_sigmas(self, n=None):
                start = self.sigma_to_t(self.sigma_max)
                end = self.sigma_to_t(self.sigma_min)
                t = torch.linspace(start, end, n)
                return torch.cat([self.t_to_sigma(t), torch.zeros(1)])

            def sigma_to_t(self, sigma, quantize=None):
                dists = sigma.log() - self.log_sigmas[:, None]
                return dists.abs().argmin(dim=0).view(sigma.shape) * self.skip_steps + (self.skip_steps - 1)

            def t_to_sigma(self, timestep):
                t = torch.clamp(
                    ((timestep - (self.skip_steps - 1)) / self.skip_steps).float(),
                    min=0,
                    max=(len(self.sigmas) - 1),
                )
                return super().t_to_sigma(t)

            def get_eps(self, *args, **kwargs):
                return self.inner_model.apply_model(*args, **kwargs)

            def forward(self, input, sigma, **kwargs):
                c_out, c_in = [external.utils.append_dims(x, input.ndim) for x in self.get_scalings(sigma)]
                eps = self.get_eps(input * c_in, self.sigma_to_t(sigma), **kwargs)
                output = input + eps * c_out
                sigma_data = 0.5
                st = external.utils.append_dims(self.sigma_to_t(sigma), output.ndim) * 10.0
                c_skip = sigma_data**2 / (st**2 + sigma_data**2)
                c_out2 = st / (st**2 + sigma_data**2) ** 0.5
                return c_out2 * output + c_skip * input

        return LCM(model)


def sample_lcm(kd: Any, model: Any, x: torch.Tensor, sigmas: torch.Tensor, extra_args=None):
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        x = denoised
        if sigmas[i + 1] > 0:
            x += sigmas[i + 1] * kd.torch.randn_like(x)
    return x


def ddpm_timesteps(steps: int) -> torch.Tensor:
    return torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)


class TimestepsWrapper:
    """A1111 CompVisTimestepsDenoiser."""

    def __init__(self, model: LdmLikeModel) -> None:
        self.inner_model = model

    def __call__(self, input, timesteps, cond):
        return self.inner_model.apply_model(input, timesteps, cond)


def ddim(model: ReferenceCFG, alphas_cumprod, x, timesteps, eta=0.0, cfgpp=False, randn=None):
    """A1111 1.10 sd_samplers_timesteps_impl.ddim / ddim_cfgpp."""
    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    sigmas = eta * np.sqrt(
        (1 - alphas_prev.cpu().numpy())
        / (1 - alphas.cpu()).numpy()
        * (1 - alphas.cpu().numpy() / alphas_prev.cpu().numpy())
    )
    if cfgpp:
        model.scale_multiplier = 1 / 12.5
    s_in = x.new_ones(x.shape[0])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * s_in)
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sigma_t = sigmas[index].item() * s_x
        sqrt_one_minus_at = sqrt_one_minus_alphas[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        direction = model.last_noise_uncond if cfgpp else e_t
        dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * direction
        noise = sigma_t * randn(x)
        x = a_prev.sqrt() * pred_x0 + dir_xt + noise
    return x


def plms(model: ReferenceCFG, alphas_cumprod, x, timesteps):
    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    s_in = x.new_ones([x.shape[0]])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    old_eps = []

    def get_x_prev_and_pred_x0(e_t, index):
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sqrt_one_minus_at = sqrt_one_minus_alphas[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = (1.0 - a_prev).sqrt() * e_t
        return a_prev.sqrt() * pred_x0 + dir_xt, pred_x0

    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        ts = timesteps[index].item() * s_in
        t_next = timesteps[max(index - 1, 0)].item() * s_in
        e_t = model(x, ts)
        if len(old_eps) == 0:
            x_prev, _ = get_x_prev_and_pred_x0(e_t, index)
            e_t_next = model(x_prev, t_next)
            e_t_prime = (e_t + e_t_next) / 2
        elif len(old_eps) == 1:
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x_prev, _ = get_x_prev_and_pred_x0(e_t_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        x = x_prev
    return x


def nearest(values: torch.Tensor, value: float) -> int:
    return int(torch.argmin(torch.abs(values - value)))


def path_of(module: Any) -> Path:
    return Path(module.__file__)


__all__ = ["math"]
