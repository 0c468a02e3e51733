"""Image-size arithmetic shared by the engine, the fake executor and the GUI's size readouts."""

from __future__ import annotations

from .config import Txt2ImgConfig


def hires_target_size(t2i: Txt2ImgConfig) -> tuple[int, int]:
    """Final (width, height) of a hires-fix pass, A1111 ``calculate_target_resolution`` (spec §2.2).

    With both resize values 0 the first-pass size is scaled by ``hires_upscale_factor``; with one
    set the other follows the aspect ratio; with both set the image covers the box and is centre
    cropped to it. The result is floored to a multiple of 8, as the latent grid forces.
    """
    w, h = t2i.width, t2i.height
    rx, ry = t2i.hires_resize_width, t2i.hires_resize_height
    if rx == 0 and ry == 0:
        tw, th = int(w * t2i.hires_upscale_factor), int(h * t2i.hires_upscale_factor)
    elif ry == 0:
        tw, th = rx, rx * h // w
    elif rx == 0:
        tw, th = ry * w // h, ry
    else:
        tw, th = rx, ry  # "cover" then centre-crop back to exactly the requested box
    return tw // 8 * 8, th // 8 * 8


def hires_cover_size(t2i: Txt2ImgConfig) -> tuple[int, int]:
    """The size the first pass is upscaled to before the centre crop when both resize values are set."""
    w, h = t2i.width, t2i.height
    rx, ry = t2i.hires_resize_width, t2i.hires_resize_height
    if rx == 0 or ry == 0:
        return hires_target_size(t2i)
    if w / h < rx / ry:
        return rx, rx * h // w
    return ry * w // h, ry


def txt2img_output_size(t2i: Txt2ImgConfig) -> tuple[int, int]:
    """Size of the images the txt2img stage hands on (after hires fix when it is on)."""
    return hires_target_size(t2i) if t2i.hires_enabled else (t2i.width, t2i.height)


def upscaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """A1111 Extras "Scale by": each side ``floor(side * factor / 8) * 8`` (spec §4), at least 8."""
    return max(8, int(width * factor) // 8 * 8), max(8, int(height * factor) // 8 * 8)
