"""Reading input images: any PIL-readable file, converted to 8-bit RGB, with clear errors.

An input image is refused, with a :class:`ConfigError` naming it, before any pixel is decoded
when it is not a regular file (a folder, a FIFO, a device: checked with ``stat``, never opened
for reading), when its file is over :data:`MAX_INPUT_FILE_BYTES`, and when the size its header
declares is over :data:`MAX_INPUT_SIDE` on a side. Pillow's own decompression-bomb limit (which
raises ``DecompressionBombError`` from ``Image.open``) is caught too, so no Pillow exception or
warning escapes. img2img as the first stage also needs :data:`MIN_IMG2IMG_SIDE` pixels a side.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

from .errors import ConfigError, shorten
from .files import FileRefused, open_regular_file, user_path

log = logging.getLogger(__name__)

#: The largest side an input image may have. It is the largest side this app writes (hires fix
#: resizes to at most 8192), so any image it made can be fed back in; 8192² RGB is 192 MiB in
#: memory, and stays under Pillow's decompression-bomb warning (89.5 million pixels).
MAX_INPUT_SIDE = 8192
#: Input image files larger than this are refused unread: an 8192² PNG is at most ~200 MB
#: (16-bit RGBA without compression: 512 MiB).
MAX_INPUT_FILE_BYTES = 1024**3
#: The smallest side img2img starts from. A1111 resizes an img2img input to the chosen width and
#: height (64 at least); our img2img works at the input's own size, and below 64 pixels the
#: latent image is a few cells or none (diffusers fails with "height and width must be > 0").
MIN_IMG2IMG_SIDE = 64


def shown_path(path: str | Path) -> str:
    """A path as error messages show it: quoted, and shortened when it is huge."""
    return repr(shorten(str(path)))


def open_image_file(path: str | Path, field: str = "input_image_path") -> BinaryIO:
    """The file of an image a user named, opened for binary reading after the file checks (a
    regular file of at most :data:`MAX_INPUT_FILE_BYTES`); ConfigError on ``field`` otherwise."""
    try:
        return open_regular_file(user_path(path), MAX_INPUT_FILE_BYTES)
    except FileRefused as exc:
        raise ConfigError(
            f"{shown_path(path)}: {exc}; choose an image file (PNG, JPEG, WebP)", field
        ) from None


def lazy_image(handle: BinaryIO) -> Image.Image:
    """``Image.open`` on an open file: reads the header only. Pillow's decompression-bomb
    *warning* is silenced (callers compare the size with their own limits); its error, for more
    than twice ``Image.MAX_IMAGE_PIXELS``, is raised as ``Image.DecompressionBombError``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(handle)


@contextmanager
def _open_image(path: str | Path, field: str) -> Iterator[Image.Image]:
    """Open an input image lazily (header only), after the file checks; see the module doc."""
    with open_image_file(path, field) as handle:
        try:
            image = lazy_image(handle)
        except Image.DecompressionBombError:
            raise ConfigError(
                f"{shown_path(path)} declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels; "
                f"input images may be at most {MAX_INPUT_SIDE}×{MAX_INPUT_SIDE}: scale it down first",
                field,
            ) from None
        except Exception as exc:
            log.debug("cannot open %s as an image", path, exc_info=True)
            raise ConfigError(
                f"{shown_path(path)} is not a readable image ({type(exc).__name__}); "
                "use a PNG, JPEG or WebP file",
                field,
            ) from None
        with image:
            yield image


def _check_size(image: Image.Image, path: str | Path, field: str, min_side: int) -> None:
    width, height = image.size
    if width > MAX_INPUT_SIDE or height > MAX_INPUT_SIDE:
        raise ConfigError(
            f"{shown_path(path)} is {width}×{height} pixels; input images may be at most "
            f"{MAX_INPUT_SIDE} pixels on each side: scale it down first",
            field,
        )
    if width < min_side or height < min_side:
        raise ConfigError(
            f"{shown_path(path)} is {width}×{height} pixels; img2img needs at least {min_side} pixels "
            "on each side: use a larger image, or upscale it first",
            field,
        )


def check_input_image(path: str | Path, field: str = "input_image_path", *, min_side: int = 1) -> Path:
    """Raise ConfigError unless ``path`` names a readable image of an accepted size.

    Reads the header and checks the file's structure (``verify``) without decoding pixels.
    ``min_side`` is the smallest side accepted (img2img as first stage: :data:`MIN_IMG2IMG_SIDE`).
    """
    with _open_image(path, field) as image:
        _check_size(image, path, field, min_side)
        try:
            image.verify()
        except Exception as exc:
            raise ConfigError(
                f"{shown_path(path)} is not a readable image ({exc}); use a PNG, JPEG or WebP file", field
            ) from None
    return user_path(path)


def input_image_size(path: str | Path, field: str = "input_image_path") -> tuple[int, int]:
    """(width, height) of an input image from its header; ConfigError as :func:`check_input_image`."""
    with _open_image(path, field) as image:
        _check_size(image, path, field, 1)
        return image.size


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (RGBA, LA, P, CMYK, I;16, F ...) to RGB. Transparency becomes white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale (Pillow may widen it to "I"): map 0..65535 to 0..255 instead of clipping.
        image = image.convert("I").point(lambda v: v / 257).convert("L")
    elif image.mode == "F":
        # Float images are 0..1 by convention when they fit, else treated as 0..255.
        extrema = image.getextrema()
        top = float(extrema[1]) if isinstance(extrema[1], int | float) else 255.0
        image = image.point(lambda v: v * 255.0 if top <= 1.0 else v).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def has_transparency(image: Image.Image) -> bool:
    """True when the image has an alpha channel or a transparent palette entry."""
    return "A" in image.getbands() or "transparency" in image.info


def load_input_image(
    path: str | Path, field: str = "input_image_path", *, min_side: int = 1, keep_alpha: bool = False
) -> Image.Image:
    """Load an input image fully into memory as RGB, honouring EXIF orientation.

    ``keep_alpha``: an image with transparency comes back as RGBA instead (the img2img stage takes
    an inpaint mask from its alpha, ``img2img.mask_from_alpha``, and flattens it on white itself).
    The file and size checks of :func:`check_input_image` run again first (the file may have
    changed since the plan was made), before any pixel is decoded.
    """
    with _open_image(path, field) as image:
        _check_size(image, path, field, min_side)
        try:
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            if keep_alpha and has_transparency(upright):
                return upright.convert("RGBA")
            return to_rgb(upright).copy()
        except Exception as exc:
            log.debug("cannot decode %s", path, exc_info=True)
            raise ConfigError(
                f"{shown_path(path)} could not be decoded ({type(exc).__name__}: {shorten(exc)}); "
                "the file may be truncated or damaged",
                field,
            ) from None
