"""Reading input images: any PIL-readable file, converted to 8-bit RGB, with clear errors."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ConfigError


def check_input_image(path: str | Path, field: str = "input_image_path") -> Path:
    """Raise ConfigError unless ``path`` names a readable image file. Reads only the header."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"{str(p)!r} does not exist; choose an existing image file", field)
    if not p.is_file():
        raise ConfigError(f"{str(p)!r} is not a file; choose an image file", field)
    try:
        with Image.open(p) as im:
            im.verify()
    except (UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ConfigError(
            f"{str(p)!r} is not a readable image ({exc}); use a PNG, JPEG or WebP file", field
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {str(p)!r}: {exc.strerror or exc}", field) from None
    return p


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


def load_input_image(path: str | Path, field: str = "input_image_path") -> Image.Image:
    """Load an input image fully into memory as RGB, honouring EXIF orientation."""
    p = check_input_image(path, field)
    try:
        with Image.open(p) as im:
            im.load()
            image = ImageOps.exif_transpose(im) or im
            return to_rgb(image).copy()
    except OSError as exc:
        raise ConfigError(
            f"{str(p)!r} could not be decoded ({exc}); the file may be truncated", field
        ) from None
