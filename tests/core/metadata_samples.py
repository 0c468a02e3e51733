"""Sample image files in each generator's documented metadata layout, built in the test (no
downloaded images): PNG text chunks, EXIF UserComment, and A1111 stealth bits.

The stealth writer follows the stealth-pnginfo extension's format independently of our reader:
signature, 32-bit bit count, payload, written column by column into the alpha or RGB LSBs.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo


def png(path: Path, chunks: dict[str, str], size: tuple[int, int] = (64, 64)) -> Path:
    """A PNG holding ``chunks`` as text chunks (Pillow writes tEXt, or iTXt for non-Latin-1)."""
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", size, (90, 120, 150)).save(path, pnginfo=info)
    return path


def json_png(path: Path, chunks: dict[str, Any], size: tuple[int, int] = (64, 64)) -> Path:
    """A PNG whose chunks are JSON-encoded (dicts and lists) or kept as text."""
    return png(path, {k: v if isinstance(v, str) else json.dumps(v) for k, v in chunks.items()}, size)


def jpeg_with_comment(path: Path, comment: bytes | str, *, ifd0: bool = False, **ifd0_tags: Any) -> Path:
    """A JPEG (or WebP, by suffix) with an EXIF UserComment in the Exif IFD or, like Fooocus, IFD0."""
    exif = Image.Exif()
    if ifd0:
        exif[0x9286] = comment
    else:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = comment
    for tag, value in ifd0_tags.items():
        exif[int(tag.removeprefix("tag_"), 16)] = value
    Image.new("RGB", (16, 16)).save(path, exif=exif)
    return path


def stealth_png(
    path: Path,
    payload: str,
    *,
    mode: str = "alpha",
    compressed: bool = True,
    size: tuple[int, int] = (64, 64),
) -> Path:
    """A PNG with ``payload`` in the stealth-pnginfo format and no text chunks."""
    signature = f"stealth_{'png' if mode == 'alpha' else 'rgb'}{'comp' if compressed else 'info'}"
    data = gzip.compress(payload.encode("utf-8")) if compressed else payload.encode("utf-8")
    bits = "".join(f"{b:08b}" for b in signature.encode()) + f"{len(data) * 8:032b}"
    bits += "".join(f"{b:08b}" for b in data)
    width, height = size
    image = Image.new("RGBA" if mode == "alpha" else "RGB", size, (200, 100, 50, 255))
    pixels = image.load()
    assert pixels is not None
    index = 0
    for x in range(width):
        for y in range(height):
            if index >= len(bits):
                break
            values = list(pixels[x, y])  # type: ignore[arg-type]
            channels = [3] if mode == "alpha" else [0, 1, 2]
            for channel in channels:
                if index < len(bits):
                    values[channel] = (values[channel] & ~1) | int(bits[index])
                    index += 1
            pixels[x, y] = tuple(values)
    assert index >= len(bits), "image too small for the payload"
    image.save(path)
    return path


# -- ComfyUI API graphs -------------------------------------------------------------------------


def comfy_txt2img(**sampler: Any) -> dict[str, Any]:
    """ComfyUI's default workflow as an API graph (checkpoint, two prompts, empty latent, KSampler)."""
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 42,
                "steps": 20,
                "cfg": 8.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
                **sampler,
            },
        },
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
        },
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in the snow", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, watermark", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }
