"""Which of A1111's sampler parameters (Settings > Sampler parameters) each sampler uses.

Pure data, read from A1111 1.10 (``modules/sd_samplers_kdiffusion.py``,
``modules/sd_samplers_timesteps.py``, ``modules/sd_samplers_common.py``); infotext writes a
parameter's key only when the sampler that ran takes it and its value is not the default, as A1111
does. Facts only, no A1111 code.
"""

from __future__ import annotations

#: Samplers that run on timesteps (A1111's CompVis samplers): their eta is ``Eta DDIM`` (default
#: 0), they never use the SGM noise multiplier, which only scales k-diffusion's starting noise.
TIMESTEP_SAMPLERS = frozenset({"DDIM", "DDIM CFG++", "PLMS", "UniPC"})

#: Samplers whose function takes ``eta`` (k-diffusion's ancestral and SDE samplers; DDIM's two).
ETA_SAMPLERS = frozenset(
    {
        "Euler a",
        "DPM2 a",
        "DPM fast",
        "DPM adaptive",
        "DPM++ 2S a",
        "DPM++ SDE",
        "DPM++ 2M SDE",
        "DPM++ 2M SDE Heun",
        "DPM++ 3M SDE",
        "DDIM",
        "DDIM CFG++",
    }
)

#: Samplers that take the churn parameters (``s_churn``, ``s_tmin``, ``s_tmax``; also ``s_noise``).
CHURN_SAMPLERS = frozenset({"Euler", "Heun", "DPM2"})

#: Samplers that take ``s_noise``.
S_NOISE_SAMPLERS = CHURN_SAMPLERS | frozenset(
    {
        "Euler a",
        "DPM fast",
        "DPM2 a",
        "DPM++ 2S a",
        "DPM++ SDE",
        "DPM++ 2M SDE",
        "DPM++ 2M SDE Heun",
        "DPM++ 3M SDE",
    }
)

#: Samplers that discard the penultimate sigma themselves (so the setting adds nothing to them).
DISCARDS_PENULTIMATE = frozenset({"DPM++ 3M SDE", "DPM2", "DPM2 a"})

#: Samplers whose extra noise is seeded with the eta noise seed delta (``ENSD``), when eta is not 0.
ENSD_SAMPLERS = frozenset({"Euler a", "DPM2 a", "DPM fast", "DPM adaptive", "DPM++ 2S a"})


def default_eta(sampler: str) -> float:
    """The eta a sampler uses when none is set: A1111's ``eta_ddim`` (0) or ``eta_ancestral`` (1)."""
    return 0.0 if sampler in TIMESTEP_SAMPLERS else 1.0


def eta_key(sampler: str) -> str:
    """The infotext key of this sampler's eta: ``Eta DDIM`` for DDIM's family, else ``Eta``."""
    return "Eta DDIM" if sampler in TIMESTEP_SAMPLERS else "Eta"
