"""Small pieces every stage shares: seeds, step parity with A1111, schedulers, latent resizing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# Keeps float flooring in diffusers' int(N * strength) from dropping a step (spec §1.4, §2.4).
_EPSILON = 1e-6

LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded with that image's seed.

    CPU generators make the same seed give the same image on any device (the noise is drawn on
    the CPU and moved); A1111's default draws on the GPU, so pixels differ from A1111's.
    """
    import torch

    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]


def diffusers_clip_skip(a1111_clip_skip: int) -> int | None:
    """A1111 counts the last layer as 1 ("no skip"); diffusers counts layers skipped."""
    return a1111_clip_skip - 1 if a1111_clip_skip > 1 else None


def negative_or_none(negative: str) -> str | None:
    """An empty negative prompt is passed as None so SDXL zeroes it, as A1111 does (spec §3.2)."""
    return negative if negative.strip() else None


def img2img_schedule(steps: int, denoise: float) -> tuple[int, float]:
    """(num_inference_steps, strength) that make diffusers run A1111's img2img steps (spec §1.4).

    A1111 builds a ``steps`` schedule and runs its last ``int(min(denoise, 0.999) * steps) + 1``
    steps; diffusers runs ``int(N * strength)`` from index ``N - int(N * strength)``.
    """
    t_enc = int(min(denoise, 0.999) * steps)
    return steps, min(1.0, (t_enc + 1) / steps + _EPSILON)


def hires_schedule(hires_steps: int, denoise: float) -> tuple[int, float]:
    """(num_inference_steps, strength) for the hires pass (spec §2.3 step 7 and §2.4).

    With explicit steps A1111 builds ``int(hires_steps / min(denoise, 0.999))`` steps and runs the
    last ``hires_steps`` of them.
    """
    total = max(hires_steps, int(hires_steps / min(denoise, 0.999)))
    return total, min(1.0, hires_steps / total + _EPSILON)


def expected_steps(num_inference_steps: int, strength: float) -> int:
    """How many denoising steps a diffusers img2img call with these arguments runs."""
    return min(int(num_inference_steps * strength), num_inference_steps)


def upscale_latents(latents: torch.Tensor, mode: str, size: tuple[int, int]) -> torch.Tensor:
    """Resize UNet-space latents to ``size`` = (height, width) in latent pixels (spec §2.3 3a)."""
    import torch.nn.functional as F

    interpolation, antialias = LATENT_MODES[mode]
    kwargs: dict[str, Any] = {"mode": interpolation}
    if interpolation in ("bilinear", "bicubic"):
        kwargs.update(align_corners=False, antialias=antialias)
    return F.interpolate(latents, size=size, **kwargs)


def centre_crop_latents(latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop covering latents to ``width`` x ``height`` pixels, A1111's truncate rule (spec §2.2)."""
    truncate_x = (latents.shape[3] * 8 - width) // 8
    truncate_y = (latents.shape[2] * 8 - height) // 8
    if truncate_x <= 0 and truncate_y <= 0:
        return latents
    x0, x1 = truncate_x // 2, latents.shape[3] - (truncate_x + 1) // 2
    y0, y1 = truncate_y // 2, latents.shape[2] - (truncate_y + 1) // 2
    return latents[:, :, y0:y1, x0:x1]
