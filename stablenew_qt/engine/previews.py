"""Live previews of the latents inside a diffusers run (spec §5.2).

Two ways, both reading the UNet-space latents a ``callback_on_step_end`` receives:

- :func:`latent_preview`: A1111's "Approx cheap", a fixed linear map from the 4 latent channels
  to RGB. Nearly free, needs no weights. The image has the latent size (1/8 of the output in each
  direction); the GUI scales it to its widget, which it must do for any preview anyway.
- :class:`TaesdPreviewer`: the Tiny AutoEncoder (``taesd`` for SD 1.x, ``taesdxl`` for SDXL) when
  its diffusers folder is under ``models/VAE-approx/``. Full output size, much closer to the VAE.

Neither changes the latents nor draws random numbers, so a preview never changes the image.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# A1111 sd_vae_approx "cheap" coefficients: rows are latent channels 0..3, columns R, G, B.
SD1_COEFFICIENTS: tuple[tuple[float, float, float], ...] = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
SDXL_COEFFICIENTS: tuple[tuple[float, float, float], ...] = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)

TAESD_DIR = "VAE-approx"


def coefficients_for(family: str) -> tuple[tuple[float, float, float], ...]:
    """The latent->RGB coefficients for a model family name (``"sd15"``, ``"sdxl-refiner"``, ...).

    Families starting ``"sdxl"`` use SDXL's, ``"sd1"``/``"sd2"`` SD 1.x's; others raise ``ValueError``.
    """
    if family.startswith("sdxl"):
        return SDXL_COEFFICIENTS
    if family.startswith(("sd1", "sd2")):
        return SD1_COEFFICIENTS
    raise ValueError(f"no latent preview for model family {family!r}; expected an sd15* or sdxl* family")


def latent_preview(latents: torch.Tensor, family: str) -> Image.Image:
    """A cheap RGB preview of the first image of a ``(batch, 4, h, w)`` latent batch, ``w`` x ``h`` px.

    rgb = sum over channels of latent[c] * coefficients[c], mapped from [-1, 1] to [0, 255].
    """
    import torch

    weights = coefficients_for(family)
    _check_latents(latents)
    with torch.no_grad():
        first = latents[0].detach().float()
        matrix = torch.tensor(weights, dtype=torch.float32, device=first.device)
        rgb = torch.einsum("chw,cr->hwr", first, matrix)
        return _to_image((rgb * 0.5 + 0.5).clamp(0.0, 1.0))


def taesd_folder(models_dir: Path, family: str) -> Path:
    """Where a family's TAESD weights live: ``models/VAE-approx/taesdxl`` for SDXL, else ``taesd``."""
    name = "taesdxl" if family.startswith("sdxl") else "taesd"
    return Path(models_dir) / TAESD_DIR / name


@dataclass
class TaesdPreviewer:
    """Previews with a Tiny AutoEncoder (``diffusers.AutoencoderTiny``) on the run's device."""

    model: Any
    device: Any
    dtype: Any

    @classmethod
    def load(cls, folder: Path, device: Any, dtype: Any) -> TaesdPreviewer | None:
        """The previewer for the diffusers ``AutoencoderTiny`` folder ``folder``, or None.

        None when the folder has no ``config.json``, or when loading fails (logged): previews are
        optional, so the caller falls back to :func:`latent_preview`.
        """
        if not (Path(folder) / "config.json").is_file():
            return None
        diffusers: Any = importlib.import_module("diffusers")  # untyped: mypy sees its dummy objects
        try:
            model = diffusers.AutoencoderTiny.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError, RuntimeError) as error:
            log.warning("TAESD previews off: could not load %s: %s", folder, error)
            return None
        return cls(model.to(device).eval(), device, dtype)

    def preview(self, latents: torch.Tensor) -> Image.Image:
        """The first image of a UNet-space latent batch, decoded to full size (8x the latents)."""
        import torch

        _check_latents(latents)
        with torch.no_grad():
            first = latents[:1].detach().to(device=self.device, dtype=self.dtype)
            # TAESD's scaling factor is 1.0 and it decodes to [-1, 1] (spec §5.2).
            decoded = self.model.decode(first).sample[0].float()
            return _to_image((decoded / 2 + 0.5).clamp(0.0, 1.0).permute(1, 2, 0))


def _check_latents(latents: torch.Tensor) -> None:
    if latents.ndim != 4 or latents.shape[1] != 4:
        raise ValueError(f"expected latents shaped (batch, 4, height, width), got {tuple(latents.shape)}")


def _to_image(rgb01: torch.Tensor) -> Image.Image:
    """An (h, w, 3) tensor in [0, 1] -> an RGB PIL image."""
    import torch

    array = rgb01.mul(255).round().to(dtype=torch.uint8).cpu().numpy()
    return Image.fromarray(array, "RGB")
