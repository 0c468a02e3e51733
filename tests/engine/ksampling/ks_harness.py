"""Runs one sampling pass twice on the same demo UNet, inputs and noise: through
``stablenew_qt.engine.ksampling.sample`` and through the A1111 reference (``ks_reference``), and
measures the distance. Used by the reference tests and by ``tests/benchmarks/sampler_distance.py``.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import torch
from ks_reference import (
    LdmLikeModel,
    ReferenceCFG,
    ReferenceImageRNG,
    ReferenceLCMDenoiser,
    TimestepsWrapper,
    TorchHijack,
    a1111_get_sigmas,
    ddim,
    ddpm_timesteps,
    load_k_diffusion,
    plms,
    restart_sampler,
    sample_lcm,
)
from ks_unipc_reference import unipc_reference

from stablenew_qt.engine.conds import BatchCond, PromptCond, ScheduledCond, TextCond

# A1111 1.10 sd_samplers_kdiffusion.samplers_k_diffusion, as a literal table for the reference:
# (k-diffusion function, default scheduler, discard_next_to_last_sigma, brownian noise, extra).
A1111_K_SAMPLERS: dict[str, tuple[str, str | None, bool, bool, dict[str, Any]]] = {
    "DPM++ 2M": ("sample_dpmpp_2m", "Karras", False, False, {}),
    "DPM++ SDE": ("sample_dpmpp_sde", "Karras", False, True, {}),
    "DPM++ 2M SDE": ("sample_dpmpp_2m_sde", "Exponential", False, True, {}),
    "DPM++ 2M SDE Heun": ("sample_dpmpp_2m_sde", "Exponential", False, True, {"solver_type": "heun"}),
    "DPM++ 2S a": ("sample_dpmpp_2s_ancestral", "Karras", False, False, {}),
    "DPM++ 3M SDE": ("sample_dpmpp_3m_sde", "Exponential", True, True, {}),
    "Euler a": ("sample_euler_ancestral", None, False, False, {}),
    "Euler": ("sample_euler", None, False, False, {}),
    "LMS": ("sample_lms", None, False, False, {}),
    "Heun": ("sample_heun", None, False, False, {}),
    "DPM2": ("sample_dpm_2", "Karras", True, False, {}),
    "DPM2 a": ("sample_dpm_2_ancestral", "Karras", True, False, {}),
    "DPM fast": ("sample_dpm_fast", None, False, False, {}),
    "DPM adaptive": ("sample_dpm_adaptive", None, False, False, {}),
    "Restart": ("restart", "Karras", False, False, {}),
    "LCM": ("lcm", None, False, False, {}),
}
TIMESTEP_SAMPLERS = ("DDIM", "DDIM CFG++", "PLMS", "UniPC")
ALL_SAMPLERS = (*A1111_K_SAMPLERS, *TIMESTEP_SAMPLERS)
SCHEDULES = (
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
)
CFG_SCALE = 7.0
SIZE = 64  # pixels; latents 8 x 8


@dataclass
class Inputs:
    family: str
    unet: Any
    pipe: Any
    cond_ref: dict[str, torch.Tensor]
    uncond_ref: dict[str, torch.Tensor]
    batch: BatchCond
    time_ids: torch.Tensor | None

    @property
    def is_sdxl(self) -> bool:
        return self.family == "sdxl"


@cache
def demo_inputs(demo_dir: str, family: str) -> Inputs:
    """The demo model's UNet and real prompt embeddings (positive and negative)."""
    import diffusers

    folder = Path(demo_dir) / ("demo-tiny-sdxl" if family == "sdxl" else "demo-tiny-sd15")
    cls = diffusers.StableDiffusionXLPipeline if family == "sdxl" else diffusers.StableDiffusionPipeline
    pipe = cls.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        if family == "sdxl":
            pe, ne, pp, npool = pipe.encode_prompt(
                "a lighthouse at dusk, oil painting", negative_prompt="blurry, grey", device="cpu"
            )
            time_ids = torch.tensor([SIZE, SIZE, 0, 0, SIZE, SIZE], dtype=torch.float32)
            cond = {"c_crossattn": pe, "text_embeds": pp, "time_ids": time_ids[None]}
            uncond = {"c_crossattn": ne, "text_embeds": npool, "time_ids": time_ids[None]}
            pooled, npooled = pp[0], npool[0]
        else:
            pe, ne = pipe.encode_prompt("a lighthouse at dusk, oil painting", "cpu", 1, True, "blurry, grey")
            cond, uncond = {"c_crossattn": pe}, {"c_crossattn": ne}
            time_ids, pooled, npooled = None, None, None
    batch = BatchCond(
        cond=(PromptCond(((ScheduledCond(((10_000, TextCond(pe[0], pooled)),)), 1.0),)),),
        uncond=(ScheduledCond(((10_000, TextCond(ne[0], npooled)),)),),
    )
    return Inputs(family, pipe.unet, pipe, cond, uncond, batch, time_ids)


@dataclass
class Pass:
    sampler: str
    schedule: str
    steps: int
    seeds: tuple[int, ...] = (1234,)
    init: torch.Tensor | None = None
    denoise: float | None = None
    fixed_steps: bool = False


def run_ours(inputs: Inputs, p: Pass) -> tuple[torch.Tensor, int]:
    """(latents, UNet calls) from the implementation under test."""
    from stablenew_qt.engine.ksampling import DenoiserModel, ImageNoise, NoiseSpec, SamplingConds, sample

    model = DenoiserModel(inputs.unet, inputs.pipe.scheduler.config)
    calls = _count_calls(inputs.unet)
    noise = ImageNoise(NoiseSpec(seeds=p.seeds), (4, SIZE // 8, SIZE // 8), "cpu")
    n = len(p.seeds)
    batch = BatchCond(cond=inputs.batch.cond * n, uncond=inputs.batch.uncond * n)
    conds = SamplingConds(batch, inputs.time_ids, inputs.time_ids)
    with torch.no_grad():
        out = sample(
            model,
            p.sampler,
            p.schedule,
            p.steps,
            conds,
            noise,
            cfg_scale=CFG_SCALE,
            init_latents=p.init,
            denoise=p.denoise,
            fixed_steps=p.fixed_steps,
        )
    return out, calls.stop()


class _count_calls:
    def __init__(self, unet: Any) -> None:
        self.count = 0
        self.handle = unet.register_forward_pre_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.count += 1

    def stop(self) -> int:
        self.handle.remove()
        return self.count


def _img2img_steps(p: Pass) -> tuple[int, int]:
    """A1111 setup_img2img_steps."""
    assert p.denoise is not None
    if p.fixed_steps:
        return int(p.steps / min(p.denoise, 0.999)), p.steps - 1
    return p.steps, int(min(p.denoise, 0.999) * p.steps)


def run_reference(inputs: Inputs, p: Pass) -> tuple[torch.Tensor, int]:
    """(latents, UNet calls) from A1111's math (k-diffusion itself for the k samplers)."""
    loaded = load_k_diffusion()
    assert loaded is not None
    kd, ext = loaded
    model = LdmLikeModel(inputs.unet)
    rng = ReferenceImageRNG((4, SIZE // 8, SIZE // 8), list(p.seeds))
    kd.torch = TorchHijack(rng)
    n = len(p.seeds)
    inputs = replace(
        inputs,
        cond_ref={k: torch.cat([v] * n) for k, v in inputs.cond_ref.items()},
        uncond_ref={k: torch.cat([v] * n) for k, v in inputs.uncond_ref.items()},
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)  # torchsde
        if p.sampler in TIMESTEP_SAMPLERS:
            out = _reference_timesteps(kd, model, inputs, p, rng)
        else:
            out = _reference_k(kd, ext, model, inputs, p, rng)
    return out, model.calls


def _reference_k(
    kd: Any, ext: Any, model: LdmLikeModel, inputs: Inputs, p: Pass, rng: ReferenceImageRNG
) -> torch.Tensor:
    funcname, default, discard, brownian, extra = A1111_K_SAMPLERS[p.sampler]
    wrap = ReferenceLCMDenoiser(ext, model) if p.sampler == "LCM" else ext.CompVisDenoiser(model)
    cfg = ReferenceCFG(wrap, inputs.cond_ref, inputs.uncond_ref, CFG_SCALE)
    schedule = default if p.schedule == "Automatic" else p.schedule
    func: Any = {
        "restart": lambda *a, **k: restart_sampler(kd, *a, **k),
        "lcm": lambda *a, **k: sample_lcm(kd, *a, **k),
    }.get(funcname) or getattr(kd, funcname)
    if p.init is None:
        steps = p.steps
        sigmas = a1111_get_sigmas(kd, schedule, steps, wrap, discard, inputs.is_sdxl)
        x = rng.next() * sigmas[0]
        run_sigmas = sigmas
        n, smin, smax = steps, wrap.sigmas[0].item(), wrap.sigmas[-1].item()
    else:
        steps, t_enc = _img2img_steps(p)
        sigmas = a1111_get_sigmas(kd, schedule, steps, wrap, discard, inputs.is_sdxl)
        run_sigmas = sigmas[steps - t_enc - 1 :]
        x = p.init + rng.next() * run_sigmas[0]
        n, smin, smax = len(run_sigmas) - 1, float(run_sigmas[-2]), float(run_sigmas[0])
    kwargs: dict[str, Any] = dict(extra)
    params = inspect.signature(func).parameters if funcname not in ("restart", "lcm") else {}
    if "eta" in params:
        kwargs["eta"] = 1.0
    if brownian:
        kwargs["noise_sampler"] = kd.BrownianTreeNoiseSampler(
            x, sigmas[sigmas > 0].min(), sigmas.max(), seed=list(p.seeds)
        )
    if funcname in ("sample_dpm_fast", "sample_dpm_adaptive"):
        kwargs.update(sigma_min=smin, sigma_max=smax)
        if funcname == "sample_dpm_fast":
            kwargs["n"] = n
        return func(cfg, x, extra_args={}, disable=True, **kwargs)
    if funcname in ("restart", "lcm"):
        return func(cfg, x, run_sigmas)
    return func(cfg, x, run_sigmas, extra_args={}, disable=True, **kwargs)


def _reference_timesteps(
    kd: Any, model: LdmLikeModel, inputs: Inputs, p: Pass, rng: ReferenceImageRNG
) -> torch.Tensor:
    cfg = ReferenceCFG(TimestepsWrapper(model), inputs.cond_ref, inputs.uncond_ref, CFG_SCALE, eps_mode=True)
    ac = model.alphas_cumprod
    if p.init is None:
        timesteps = ddpm_timesteps(p.steps)
        x = rng.next()
        is_img2img = False
    else:
        steps, t_enc = _img2img_steps(p)
        full = ddpm_timesteps(steps)
        timesteps = full[:t_enc]
        x = p.init * torch.sqrt(ac[full[t_enc]]) + rng.next() * torch.sqrt(1 - ac[full[t_enc]])
        is_img2img = True
    if p.sampler in ("DDIM", "DDIM CFG++"):
        return ddim(cfg, ac, x, timesteps, cfgpp=p.sampler == "DDIM CFG++", randn=kd.torch.randn_like)
    if p.sampler == "PLMS":
        return plms(cfg, ac, x, timesteps)
    return unipc_reference(cfg, ac, x, timesteps, is_img2img=is_img2img)


def distance(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / std(ref): the measure docs/samplers.md reports."""
    return float((ours - ref).abs().max() / ref.std())
