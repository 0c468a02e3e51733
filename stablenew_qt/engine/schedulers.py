"""A1111 sampler and schedule-type names -> a configured diffusers scheduler (spec §6.2).

Every name in ``core.samplers.SAMPLERS`` and ``SCHEDULERS`` maps to a scheduler class plus config
overrides, applied with ``Cls.from_config(model_config, **overrides)`` so the model's own training
schedule (betas, prediction type) is kept. ``docs/samplers.md`` has the full table, marking which
pairs are exact and why the others are the closest diffusers offers.

Rules, following A1111 1.9+:

- k-diffusion samplers follow the schedule type. "Automatic" means the sampler's A1111 default
  (``AUTOMATIC_SCHEDULE``) or else the model's own discretisation, which for k-diffusion is t spaced
  linearly from 999 to 0 (diffusers' ``timestep_spacing="linspace"``).
- A1111's timestep samplers (DDIM, DDIM CFG++, PLMS) ignore the schedule type and use the model's
  own discretisation (SD/SDXL configs: "leading" with offset 1, as A1111); UniPC, LCM, DPM fast and
  DPM adaptive use their own fixed grids, as in A1111.
- A schedule option a class does not have is not passed; the class's own spacing is used instead
  (except Euler a, which switches to the equivalent first-order SDE DPM-Solver++ to get the sigmas).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.samplers import SAMPLERS, SCHEDULERS, resolve_schedule, split_legacy_sampler

if TYPE_CHECKING:
    from diffusers import SchedulerMixin

# How a rule treats the user's schedule type.
FOLLOW = "follow"  # apply the schedule type
MODEL = "model"  # ignore it: the model config's own discretisation

SIGMA_OPTIONS: dict[str, str] = {
    "karras": "use_karras_sigmas",
    "exponential": "use_exponential_sigmas",
    "beta": "use_beta_sigmas",
}


@dataclass(frozen=True)
class SchedulerRule:
    """One sampler's diffusers scheduler: class name, fixed overrides, and how schedules apply.

    ``schedule`` is :data:`FOLLOW`, :data:`MODEL`, or a schedule name the sampler always uses.
    ``sigma_substitute`` replaces the rule when the schedule needs sigma options the class lacks.
    """

    class_name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    schedule: str = FOLLOW
    sigma_substitute: SchedulerRule | None = None


@dataclass(frozen=True)
class ClassCapabilities:
    """Which schedule options a scheduler class accepts (checked against diffusers by the tests)."""

    timestep_spacing: bool
    sigmas: frozenset[str]


_ALL_SIGMAS = frozenset(SIGMA_OPTIONS)
CAPABILITIES: dict[str, ClassCapabilities] = {
    "EulerDiscreteScheduler": ClassCapabilities(True, _ALL_SIGMAS),
    "EulerAncestralDiscreteScheduler": ClassCapabilities(True, frozenset()),
    "DPMSolverMultistepScheduler": ClassCapabilities(True, _ALL_SIGMAS),
    # Singlestep always spaces timesteps linearly (it has no timestep_spacing option).
    "DPMSolverSinglestepScheduler": ClassCapabilities(False, _ALL_SIGMAS),
    "KDPM2DiscreteScheduler": ClassCapabilities(True, _ALL_SIGMAS),
    "KDPM2AncestralDiscreteScheduler": ClassCapabilities(True, _ALL_SIGMAS),
    "HeunDiscreteScheduler": ClassCapabilities(True, _ALL_SIGMAS),
    "LMSDiscreteScheduler": ClassCapabilities(True, _ALL_SIGMAS),
    "UniPCMultistepScheduler": ClassCapabilities(True, _ALL_SIGMAS),
    "DDIMScheduler": ClassCapabilities(True, frozenset()),
    "PNDMScheduler": ClassCapabilities(True, frozenset()),
    "LCMScheduler": ClassCapabilities(True, frozenset()),
}

# Schedule type -> (timestep_spacing, sigma kind or None). See docs/samplers.md for the closest
# choices (KL Optimal, Align Your Steps: nearest in log-sigma over 10-30 steps).
SCHEDULE_OPTIONS: dict[str, tuple[str, str | None]] = {
    "Uniform": ("linspace", None),
    "Normal": ("linspace", None),
    "Karras": ("linspace", "karras"),
    "Exponential": ("linspace", "exponential"),
    "Polyexponential": ("linspace", "exponential"),  # A1111's rho=1 makes it exactly exponential
    "SGM Uniform": ("trailing", None),
    "Simple": ("trailing", None),
    "DDIM": ("leading", None),
    "Beta": ("linspace", "beta"),
    "KL Optimal": ("linspace", None),
    "Align Your Steps": ("linspace", None),
}

_DPM_SINGLE = "DPMSolverSinglestepScheduler"
_SDE = "sde-dpmsolver++"
# Singlestep defaults to lower_order_final=False, which it must reset (with a warning) for a zero
# final sigma; ask for it up front.
_SINGLE_SDE = {"algorithm_type": _SDE, "solver_order": 2, "lower_order_final": True}
_SINGLE_ODE3 = {"algorithm_type": "dpmsolver++", "solver_order": 3, "lower_order_final": True}


def _multistep(algorithm: str, order: int, solver_type: str = "midpoint") -> SchedulerRule:
    """DPMSolverMultistep; like k-diffusion its last step (to sigma 0) returns the x0 estimate."""
    options = {"algorithm_type": algorithm, "solver_order": order, "solver_type": solver_type}
    return SchedulerRule("DPMSolverMultistepScheduler", {**options, "euler_at_final": True})


# First-order SDE DPM-Solver++ is algebraically ancestral Euler (eta 1) and takes any sigmas.
_EULER_A_WITH_SIGMAS = _multistep(_SDE, 1)
# Without scipy diffusers has no LMS; a deterministic 3rd-order multistep ODE solver is closest.
_LMS_WITHOUT_SCIPY = _multistep("dpmsolver++", 3)

RULES: dict[str, SchedulerRule] = {
    "DPM++ 2M": _multistep("dpmsolver++", 2),
    "DPM++ SDE": SchedulerRule(_DPM_SINGLE, _SINGLE_SDE),
    "DPM++ 2M SDE": _multistep(_SDE, 2),
    "DPM++ 2M SDE Heun": _multistep(_SDE, 2, "heun"),
    "DPM++ 2S a": SchedulerRule(_DPM_SINGLE, _SINGLE_SDE),
    "DPM++ 3M SDE": _multistep(_SDE, 3),
    "Euler a": SchedulerRule("EulerAncestralDiscreteScheduler", sigma_substitute=_EULER_A_WITH_SIGMAS),
    "Euler": SchedulerRule("EulerDiscreteScheduler"),
    "LMS": SchedulerRule("LMSDiscreteScheduler"),
    "Heun": SchedulerRule("HeunDiscreteScheduler"),
    "DPM2": SchedulerRule("KDPM2DiscreteScheduler"),
    "DPM2 a": SchedulerRule("KDPM2AncestralDiscreteScheduler"),
    "DPM fast": SchedulerRule(_DPM_SINGLE, _SINGLE_ODE3, schedule="Exponential"),
    "DPM adaptive": SchedulerRule(_DPM_SINGLE, _SINGLE_ODE3, schedule="Exponential"),
    "Restart": SchedulerRule("HeunDiscreteScheduler"),
    "DDIM": SchedulerRule("DDIMScheduler", schedule=MODEL),
    "DDIM CFG++": SchedulerRule("DDIMScheduler", schedule=MODEL),
    "PLMS": SchedulerRule("PNDMScheduler", {"skip_prk_steps": True}, schedule=MODEL),
    "UniPC": SchedulerRule(
        "UniPCMultistepScheduler",
        # bh1 with a zero final sigma gives NaN in diffusers; A1111's UniPC also stops at sigma_min.
        {
            "solver_order": 3,
            "solver_type": "bh1",
            "lower_order_final": True,
            "final_sigmas_type": "sigma_min",
        },
        schedule="Uniform",
    ),
    "LCM": SchedulerRule("LCMScheduler", schedule=MODEL),
}


def scipy_available() -> bool:
    """diffusers needs scipy for LMS and for beta sigmas; without it those fall back (see docs)."""
    return importlib.util.find_spec("scipy") is not None


def make_scheduler(base_config: Mapping[str, Any], sampler: str, schedule: str) -> SchedulerMixin:
    """A diffusers scheduler for A1111 ``sampler`` and ``schedule`` names, built on ``base_config``.

    ``base_config`` is the model's scheduler config (``pipe.scheduler.config``); its training
    schedule and prediction type are kept. Raises ``ValueError`` naming the valid names when
    either name is unknown.
    """
    import diffusers

    rule, overrides = scheduler_rule(sampler, schedule)
    scheduler_class = getattr(diffusers, rule.class_name)
    scheduler: SchedulerMixin = scheduler_class.from_config(dict(base_config), **overrides)
    return scheduler


def scheduler_rule(sampler: str, schedule: str) -> tuple[SchedulerRule, dict[str, Any]]:
    """The rule and the exact ``from_config`` overrides :func:`make_scheduler` would use."""
    _check_names(sampler, schedule)
    rule = RULES[sampler]
    if sampler == "LMS" and not scipy_available():
        rule = _LMS_WITHOUT_SCIPY
    if rule.schedule == MODEL:
        return rule, dict(rule.options)
    effective = rule.schedule if rule.schedule != FOLLOW else _effective_schedule(sampler, schedule)
    spacing, sigma_kind = SCHEDULE_OPTIONS[effective]
    if sigma_kind == "beta" and not scipy_available():
        sigma_kind = None  # diffusers' beta sigmas need scipy; linspace is the closest (docs)
    caps = CAPABILITIES[rule.class_name]
    if sigma_kind is not None and sigma_kind not in caps.sigmas and rule.sigma_substitute is not None:
        rule = rule.sigma_substitute
        caps = CAPABILITIES[rule.class_name]
    overrides = dict(rule.options)
    if caps.timestep_spacing:
        overrides["timestep_spacing"] = spacing
        if spacing == "leading":
            overrides["steps_offset"] = 1  # A1111's DDIM schedule starts at t=1
    # Set every sigma flag the class has, so a model config that enables one cannot leak through.
    for kind in sorted(caps.sigmas):
        overrides[SIGMA_OPTIONS[kind]] = kind == sigma_kind
    return rule, overrides


def scheduler_label(sampler: str, schedule: str) -> tuple[str, str]:
    """The (Sampler, Schedule type) pair A1111 writes into infotext, e.g. ``("DPM++ 2M", "Karras")``
    for ``("DPM++ 2M", "Automatic")``. Raises ``ValueError`` for unknown names."""
    _check_names(sampler, schedule)
    return sampler, resolve_schedule(sampler, schedule)


def _effective_schedule(sampler: str, schedule: str) -> str:
    resolved = resolve_schedule(sampler, schedule)
    return "Uniform" if resolved == "Automatic" else resolved


def _check_names(sampler: str, schedule: str) -> None:
    if sampler not in RULES:
        hint = ""
        plain, legacy_schedule = split_legacy_sampler(sampler)
        if legacy_schedule is not None:
            hint = f" (an old combined name: use sampler {plain!r} with schedule {legacy_schedule!r})"
        raise ValueError(f"unknown sampler {sampler!r}{hint}; valid samplers: {', '.join(SAMPLERS)}")
    if schedule not in SCHEDULERS:
        raise ValueError(f"unknown schedule type {schedule!r}; valid schedule types: {', '.join(SCHEDULERS)}")
