"""A1111 "stealth" metadata: settings hidden in the lowest bit of the pixels.

Format (the stealth-pnginfo extension; NovelAI writes the same in the alpha channel): a bit
stream read column by column (x outer, y inner), either one bit per pixel from the alpha channel
or three per pixel from red, green and blue. It holds a 15-byte signature (``stealth_pnginfo``,
``stealth_pngcomp``, ``stealth_rgbinfo`` or ``stealth_rgbcomp``; "comp" means gzip), a 32-bit
big-endian length *in bits*, then the payload: A1111 ``parameters`` text, or (NovelAI) a JSON
object of PNG text chunks. Bytes are most significant bit first.

Only the columns the stream occupies are converted, and images above :data:`MAX_PIXELS` or
payloads above :data:`MAX_PAYLOAD_BYTES` are not read, so time and memory stay bounded.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass

from PIL import Image

MAX_PIXELS = 40_000_000
MAX_PAYLOAD_BYTES = 4_000_000
#: Most a gzip payload may inflate to.
MAX_TEXT_BYTES = 16_000_000

_SIGNATURES = {
    b"stealth_pnginfo": ("alpha", False),
    b"stealth_pngcomp": ("alpha", True),
    b"stealth_rgbinfo": ("rgb", False),
    b"stealth_rgbcomp": ("rgb", True),
}
_SIGNATURE_BITS = 15 * 8
_HEADER_BITS = _SIGNATURE_BITS + 32
# byte -> ASCII "0"/"1" of its lowest bit, so bits come out as a string int() reads in base 2.
_LSB_TABLE = bytes(48 + (value & 1) for value in range(256))


@dataclass(frozen=True)
class StealthPayload:
    """What stealth metadata held, as PNG-style text chunks, and where it was found."""

    chunks: dict[str, str]
    origin: str


def read_stealth(image: Image.Image) -> StealthPayload | None:
    """The stealth metadata of ``image``, or None when it has none (or too much to read)."""
    width, height = image.size
    if image.mode not in ("RGB", "RGBA") or width * height > MAX_PIXELS or height == 0:
        return None
    streams = ("alpha", "rgb") if image.mode == "RGBA" else ("rgb",)
    for stream in streams:
        payload = _read_stream(image, stream)
        if payload is not None:
            return payload
    return None


def _read_stream(image: Image.Image, stream: str) -> StealthPayload | None:
    per_pixel = 1 if stream == "alpha" else 3
    header = _bits(image, stream, _HEADER_BITS, per_pixel)
    if header is None:
        return None
    found = _SIGNATURES.get(_to_bytes(header[:_SIGNATURE_BITS]))
    if found is None or found[0] != stream:
        return None
    length = int(header[_SIGNATURE_BITS:_HEADER_BITS], 2)
    if length == 0 or length % 8 or length > MAX_PAYLOAD_BYTES * 8:
        return None
    bits = _bits(image, stream, _HEADER_BITS + length, per_pixel)
    if bits is None:
        return None
    data = _to_bytes(bits[_HEADER_BITS:])
    compressed = found[1]
    text = _gunzip(data) if compressed else data.decode("utf-8", errors="replace")
    if text is None:
        return None
    origin = f"stealth metadata in the {'alpha channel' if stream == 'alpha' else 'RGB'} bits"
    return StealthPayload(_as_chunks(text), origin + (", compressed" if compressed else ""))


def _bits(image: Image.Image, stream: str, count: int, per_pixel: int) -> bytes | None:
    """The first ``count`` bits of a stream, as ASCII ``0``/``1``; None if the image is too small."""
    width, height = image.size
    pixels = math.ceil(count / per_pixel)
    if pixels > width * height:
        return None
    strip = image.crop((0, 0, math.ceil(pixels / height), height))
    strip = strip.getchannel("A") if stream == "alpha" else strip.convert("RGB")
    # Transposed, the strip's rows are the image's columns: tobytes() gives column-major order.
    raw = strip.transpose(Image.Transpose.TRANSPOSE).tobytes()
    return raw.translate(_LSB_TABLE)[:count]


def _to_bytes(bits: bytes) -> bytes:
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def _gunzip(data: bytes) -> str | None:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, MAX_TEXT_BYTES)
    except zlib.error:
        return None
    if inflater.unconsumed_tail:
        return None  # inflates past MAX_TEXT_BYTES: a bomb, not metadata
    return out.decode("utf-8", errors="replace")


def _as_chunks(text: str) -> dict[str, str]:
    """NovelAI stores a JSON object of its text chunks; A1111 stores the parameters text."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and ("Comment" in data or "Software" in data):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return {"parameters": text}
