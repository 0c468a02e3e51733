"""A1111 sampler and schedule-type names (A1111 1.9+), and the legacy combined names.

Pure data: the engine maps these names to diffusers schedulers. See stage-semantics §6.2.
"""

from __future__ import annotations

SAMPLERS: tuple[str, ...] = (
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 2S a",
    "DPM++ 3M SDE",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM fast",
    "DPM adaptive",
    "Restart",
    "DDIM",
    "DDIM CFG++",
    "PLMS",
    "UniPC",
    "LCM",
)

SCHEDULERS: tuple[str, ...] = (
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

# Schedule used when "Automatic" is chosen (A1111's per-sampler default); others use the model's own.
AUTOMATIC_SCHEDULE: dict[str, str] = {
    "DPM++ 2M": "Karras",
    "DPM++ SDE": "Karras",
    "DPM++ 2S a": "Karras",
    "DPM2": "Karras",
    "DPM2 a": "Karras",
    "Restart": "Karras",
    "DPM++ 2M SDE": "Exponential",
    "DPM++ 2M SDE Heun": "Exponential",
    "DPM++ 3M SDE": "Exponential",
}

LATENT_UPSCALERS: tuple[str, ...] = (
    "Latent",
    "Latent (antialiased)",
    "Latent (bicubic)",
    "Latent (bicubic antialiased)",
    "Latent (nearest)",
    "Latent (nearest-exact)",
)

# Pixel upscalers that need no model file; any other name must be a model installed under models/ESRGAN.
BUILTIN_PIXEL_UPSCALERS: tuple[str, ...] = ("None", "Lanczos", "Nearest")


def split_legacy_sampler(name: str) -> tuple[str, str | None]:
    """Split an old combined name like ``"DPM++ 2M Karras"`` into ``("DPM++ 2M", "Karras")``.

    Names that are already plain samplers come back with ``None`` as the schedule. Surrounding and
    repeated whitespace is normalised; unknown names come back otherwise unchanged for the caller
    to report.
    """
    name = " ".join(name.split())
    if name in SAMPLERS:
        return name, None
    for schedule in sorted(SCHEDULERS, key=len, reverse=True):
        suffix = " " + schedule
        if name.endswith(suffix) and name[: -len(suffix)] in SAMPLERS:
            return name[: -len(suffix)], schedule
    return name, None


def resolve_schedule(sampler: str, schedule: str) -> str:
    """The schedule label A1111 writes into infotext for this sampler/schedule pair."""
    if schedule != "Automatic":
        return schedule
    return AUTOMATIC_SCHEDULE.get(sampler, "Automatic")
