"""The "inpaint only masked" crop, resize and paste-back, shared with img2img inpainting.

The code lives in :mod:`stablenew_qt.core.img2img_geometry` (pure Pillow, one copy for ADetailer
and the img2img stage); this module keeps the names ADetailer imports.
"""

from __future__ import annotations

from ...core.img2img_geometry import (
    Region,
    crop_region,
    expand_to_aspect,
    paste_back,
    resize_crop,
    resize_fill,
)

__all__ = ["Region", "crop_region", "expand_to_aspect", "paste_back", "resize_crop", "resize_fill"]
