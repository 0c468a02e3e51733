"""Latent resizing for the hires fix: A1111's latent upscale modes and its centre crop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


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
