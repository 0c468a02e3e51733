"""Every A1111 sampler with the options A1111 attaches to it (``sd_samplers_kdiffusion.py``,
``sd_samplers_timesteps.py``, ``sd_samplers_lcm.py``, A1111 1.10).

``kind`` says how it is driven: ``"sigma"`` (a k-diffusion loop over a sigma grid), ``"dpm_solver"``
(DPM fast/adaptive: between two sigmas), ``"lcm"`` (sigma loop over the LCM denoiser),
``"timestep"`` (DDIM, DDIM CFG++, PLMS over A1111's DDPM grid) and ``"unipc"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import samplers_dpm_solver as dpm_solver
from . import samplers_dpmpp as dpmpp
from . import samplers_extra as extra
from . import samplers_karras as karras
from . import samplers_timesteps as timesteps
from . import unipc

SIGMA, DPM_SOLVER, LCM, TIMESTEP, UNIPC = "sigma", "dpm_solver", "lcm", "timestep", "unipc"


@dataclass(frozen=True)
class SamplerSpec:
    """One A1111 sampler.

    ``default_schedule``: the schedule "Automatic" means for it (None: the model's own grid).
    ``second_order``: A1111 expects two denoiser calls per step (prompt-editing schedules and the
    refiner's step ratio are counted over ``2 x steps``). ``discard_penultimate``: one step more is
    built and the next-to-last sigma dropped. ``noise``: ``"stream"`` (the images' RNG streams),
    ``"brownian"`` (the seeded Brownian tree) or None. ``eta``: the sampler takes A1111's eta
    (1.0 for k-diffusion samplers, 0.0 for DDIM). ``churn``/``s_noise``: which of A1111's sigma
    options reach it. ``uses_ensd``: A1111 writes ``ENSD`` into the infotext for it.
    """

    name: str
    kind: str
    function: Callable[..., Any]
    default_schedule: str | None = None
    second_order: bool = False
    discard_penultimate: bool = False
    noise: str | None = None
    eta: bool = False
    churn: bool = False
    s_noise: bool = False
    uses_ensd: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def total_steps(self, steps: int) -> int:
        """Denoiser calls A1111 expects for ``steps`` (its ``SamplerData.total_steps``)."""
        return steps * 2 if self.second_order else steps


_SPECS = (
    SamplerSpec("DPM++ 2M", SIGMA, dpmpp.sample_dpmpp_2m, "Karras"),
    SamplerSpec(
        "DPM++ SDE",
        SIGMA,
        dpmpp.sample_dpmpp_sde,
        "Karras",
        second_order=True,
        noise="brownian",
        eta=True,
        s_noise=True,
    ),
    SamplerSpec(
        "DPM++ 2M SDE",
        SIGMA,
        dpmpp.sample_dpmpp_2m_sde,
        "Exponential",
        noise="brownian",
        eta=True,
        s_noise=True,
    ),
    SamplerSpec(
        "DPM++ 2M SDE Heun",
        SIGMA,
        dpmpp.sample_dpmpp_2m_sde,
        "Exponential",
        noise="brownian",
        eta=True,
        s_noise=True,
        extra={"solver_type": "heun"},
    ),
    SamplerSpec(
        "DPM++ 2S a",
        SIGMA,
        dpmpp.sample_dpmpp_2s_ancestral,
        "Karras",
        second_order=True,
        noise="stream",
        eta=True,
        s_noise=True,
        uses_ensd=True,
    ),
    SamplerSpec(
        "DPM++ 3M SDE",
        SIGMA,
        dpmpp.sample_dpmpp_3m_sde,
        "Exponential",
        discard_penultimate=True,
        noise="brownian",
        eta=True,
        s_noise=True,
    ),
    # Euler a takes no s_noise from A1111 1.10 (it is not in its extra-parameter table).
    SamplerSpec("Euler a", SIGMA, karras.sample_euler_ancestral, noise="stream", eta=True, uses_ensd=True),
    SamplerSpec("Euler", SIGMA, karras.sample_euler, noise="stream", churn=True),
    SamplerSpec("LMS", SIGMA, karras.sample_lms),
    SamplerSpec("Heun", SIGMA, karras.sample_heun, second_order=True, noise="stream", churn=True),
    SamplerSpec(
        "DPM2",
        SIGMA,
        karras.sample_dpm_2,
        "Karras",
        second_order=True,
        discard_penultimate=True,
        noise="stream",
        churn=True,
    ),
    SamplerSpec(
        "DPM2 a",
        SIGMA,
        karras.sample_dpm_2_ancestral,
        "Karras",
        second_order=True,
        discard_penultimate=True,
        noise="stream",
        eta=True,
        s_noise=True,
        uses_ensd=True,
    ),
    SamplerSpec(
        "DPM fast",
        DPM_SOLVER,
        dpm_solver.sample_dpm_fast,
        noise="stream",
        eta=True,
        s_noise=True,
        uses_ensd=True,
    ),
    SamplerSpec(
        "DPM adaptive", DPM_SOLVER, dpm_solver.sample_dpm_adaptive, noise="stream", eta=True, uses_ensd=True
    ),
    SamplerSpec("Restart", SIGMA, extra.sample_restart, "Karras", second_order=True, noise="stream"),
    SamplerSpec("DDIM", TIMESTEP, timesteps.sample_ddim, noise="stream", eta=True),
    SamplerSpec("DDIM CFG++", TIMESTEP, timesteps.sample_ddim_cfgpp, noise="stream", eta=True),
    SamplerSpec("PLMS", TIMESTEP, timesteps.sample_plms),
    SamplerSpec("UniPC", UNIPC, unipc.sample_unipc),
    SamplerSpec("LCM", LCM, extra.sample_lcm, noise="stream"),
)

SAMPLERS: dict[str, SamplerSpec] = {spec.name: spec for spec in _SPECS}


def sampler_spec(name: str) -> SamplerSpec:
    """The spec of A1111 sampler ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; valid samplers: {', '.join(SAMPLERS)}") from None
