"""Where generators hide their settings in an image file, read with bounded time and memory.

PNG text chunks (tEXt, zTXt, iTXt: A1111, ComfyUI, InvokeAI, NovelAI, Fooocus, SwarmUI), the EXIF
UserComment of JPEG/WebP files (A1111, Fooocus, SwarmUI), EXIF Make/Model/ImageDescription
(ComfyUI's WebP writer stores ``prompt:{...}`` and ``workflow:{...}`` there), and, when none of
those holds settings, A1111's stealth metadata in the pixels' lowest bits (:mod:`.stealth`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..errors import ConfigError
from ..exif_comment import exif_user_comment
from ..images import lazy_image, open_image_file, shown_path
from .stealth import MAX_PIXELS, read_stealth

#: Text chunks longer than this are not read (a ComfyUI workflow is rarely over 1 MB).
MAX_CHUNK_CHARS = 8_000_000

#: Chunk names that hold generation settings; any other text chunk is only a hint.
SETTINGS_KEYS = frozenset(
    {
        "parameters",
        "stablenew_run_config",
        "prompt",
        "workflow",
        "invokeai_metadata",
        "invokeai",
        "sd-metadata",
        "Dream",
        "Comment",
        "sui_image_params",
    }
)

_EXIF_SOFTWARE = 0x0131
# IFD0 tags ComfyUI's WebP writer fills with "key:json" text: Model, Make, ImageDescription, ...
_COMFY_EXIF_TAGS = (0x0110, 0x010F, 0x010E, 0x010D, 0x010C)
_COMFY_EXIF_TEXT = re.compile(r"(?s)\s*(prompt|workflow)\s*:\s*([\[{].*)")


@dataclass(frozen=True)
class ImageSources:
    """The text an image carries, by chunk name, plus what is known about the image itself.

    ``origin`` says where ``chunks`` came from ("PNG text", "EXIF", "stealth alpha, compressed"...);
    ``skipped`` notes chunks that were too large to read.
    """

    chunks: Mapping[str, str]
    size: tuple[int, int] | None = None
    origin: str = ""
    skipped: tuple[str, ...] = field(default=())


def read_sources(path: str | Path) -> ImageSources:
    """Read every place an image may keep generation settings. Raises ConfigError only for a
    missing or unreadable file."""
    try:
        with open_image_file(path, "") as handle, lazy_image(handle) as image:
            return _sources_of(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        if isinstance(exc, ConfigError):  # not a regular file (a FIFO is never opened to read)
            raise
        if isinstance(exc, UnidentifiedImageError):  # its text names a file object, not the file
            reason = "not an image file this app can read (PNG, JPEG or WebP)"
        else:
            reason = str(exc)
        raise ConfigError(f"cannot read image metadata from {shown_path(path)}: {reason}") from None


def _sources_of(image: Image.Image) -> ImageSources:
    chunks: dict[str, str] = {}
    skipped: list[str] = []
    origin = "PNG text" if isinstance(image, PngImagePlugin.PngImageFile) else "EXIF"
    for key, value in _text_items(image):
        if len(value) > MAX_CHUNK_CHARS:
            skipped.append(f"the {key!r} text ({len(value):,} characters) is too large to read")
        else:
            chunks.setdefault(key, value)
    _add_exif(image, chunks)
    if not SETTINGS_KEYS & chunks.keys():
        stealth = read_stealth(image)
        if stealth is not None:
            chunks.update(stealth.chunks)
            origin = stealth.origin
    return ImageSources(chunks, image.size, origin, tuple(skipped))


def _text_items(image: Image.Image) -> list[tuple[str, str]]:
    """Text chunks of a PNG. Those before the pixel data (where generators write them) were read
    when the file was opened; ``image.text`` also finds later ones, but only by decoding the pixels,
    so it is the fallback."""
    items = [(str(k), str(v)) for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)]
    late_text_readable = image.width * image.height <= MAX_PIXELS  # reading it decodes every pixel
    if (
        isinstance(image, PngImagePlugin.PngImageFile)
        and late_text_readable
        and not SETTINGS_KEYS & {k for k, _ in items}
    ):
        items += [(str(k), str(v)) for k, v in image.text.items()]
    return items


def _add_exif(image: Image.Image, chunks: dict[str, str]) -> None:
    if isinstance(image, PngImagePlugin.PngImageFile) and "exif" not in image.info:
        return  # Pillow would decode every pixel to look for an eXIf chunk after them
    try:
        exif = image.getexif()
    except (OSError, ValueError, SyntaxError, EOFError):
        return  # a damaged EXIF block holds nothing we can use
    comment = exif_user_comment(exif)
    if comment and len(comment) <= MAX_CHUNK_CHARS:
        chunks.setdefault("parameters", comment)
    for tag in _COMFY_EXIF_TAGS:
        value = exif.get(tag)
        match = _COMFY_EXIF_TEXT.match(value) if isinstance(value, str) else None
        if match and len(match[2]) <= MAX_CHUNK_CHARS:
            chunks.setdefault(match[1], match[2])
    software = exif.get(_EXIF_SOFTWARE)
    if isinstance(software, str) and software.strip():
        chunks.setdefault("Software", software.strip()[:200])
    scheme = exif.get(0x927C)  # MakerNote: Fooocus writes its metadata scheme there
    if isinstance(scheme, str) and scheme in ("fooocus", "a1111"):
        chunks.setdefault("fooocus_scheme", scheme)


def parse_json(text: str) -> object:
    """JSON text as Python data, or None when it is not JSON (too deep, malformed, not text)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def json_object(text: str | None) -> dict[str, object] | None:
    """``text`` parsed as a JSON object; None when it is absent or anything else."""
    if text is None or not text.lstrip().startswith("{"):
        return None
    data = parse_json(text)
    return data if isinstance(data, dict) else None
