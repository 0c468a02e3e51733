"""What the txt2img card's collapsed sections say, and each model family's default size.

A collapsed section still says whether it is on: "Hires fix: ×1.5 → 960×672", "Refiner: off"
(issue 17, item 11). Switching the checkpoint between SD 1.5 and SDXL offers that family's size
(512×512, 1024×1024) when the size shown is the other family's default.
"""

from __future__ import annotations

import re

from ..core.config import Txt2ImgConfig
from ..core.sizes import hires_target_size

#: Default (width, height) per model family.
FAMILY_SIZES: dict[str, tuple[int, int]] = {"SD 1.5": (512, 512), "SDXL": (1024, 1024)}
#: A fresh window's step count: A1111's default for every family (RunConfig's own default, 30,
#: stays for configs and the CLI).
FIRST_STEPS = 20
_SDXL = re.compile(r"sdxl|xl(?![a-z])|pony|illustrious|noobai|playground", re.IGNORECASE)


def family_of(checkpoint: str) -> str:
    """ "SDXL" when the checkpoint's name says so (sdxl, XL, Pony, Illustrious, …), else "SD 1.5"."""
    return "SDXL" if _SDXL.search(checkpoint or "") else "SD 1.5"


def family_size_after(
    old_checkpoint: str, new_checkpoint: str, size: tuple[int, int]
) -> tuple[int, int] | None:
    """The size to switch to when the checkpoint changes family, or None to keep ``size``: only a
    size that is the old family's default is replaced (a size the user chose stays)."""
    old, new = family_of(old_checkpoint), family_of(new_checkpoint)
    if old == new or size != FAMILY_SIZES[old]:
        return None
    return FAMILY_SIZES[new]


def hires_title(t2i: Txt2ImgConfig) -> str:
    """ "Hires fix: ×1.5 → 960×672" or "Hires fix: off"."""
    if not t2i.hires_enabled:
        return "Hires fix: off"
    width, height = hires_target_size(t2i)
    if t2i.hires_resize_width or t2i.hires_resize_height:
        return f"Hires fix: → {width}×{height}"
    return f"Hires fix: ×{t2i.hires_upscale_factor:g} → {width}×{height}"


def refiner_title(t2i: Txt2ImgConfig) -> str:
    """ "Refiner: off" or "Refiner: <model> from 80 %"."""
    if not t2i.refiner_enabled:
        return "Refiner: off"
    name = t2i.refiner_model_name or "(choose a model)"
    return f"Refiner: {name} from {round(t2i.refiner_switch_at * 100)} %"
