"""Write ``.safetensors`` files byte by byte (no torch): tensors are zeros of a dtype and shape."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path

_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "BOOL": 1}


def safetensors_bytes(
    tensors: Mapping[str, tuple[str, tuple[int, ...]]], metadata: Mapping[str, str] | None = None
) -> bytes:
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = dict(metadata)
    raw = json.dumps(header).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the reference writer pads the header to 8 bytes
    data = bytes(range(256)) * (offset // 256) + bytes(
        range(offset % 256)
    )  # non-zero, so hashes differ by content
    return struct.pack("<Q", len(raw)) + raw + data


def write_safetensors(
    path: Path, tensors: Mapping[str, tuple[str, tuple[int, ...]]], metadata: Mapping[str, str] | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes(tensors, metadata))
    return path


def lora_tensors(
    modules: Mapping[str, tuple[int, int]], rank: int = 4, *, conv: bool = False
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """kohya LoRA tensors for ``{module_key: (out, in)}`` (3x3 conv downs when ``conv``)."""
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for key, (out, inp) in modules.items():
        down = (rank, inp, 3, 3) if conv else (rank, inp)
        up = (out, rank, 1, 1) if conv else (out, rank)
        tensors[f"{key}.lora_down.weight"] = ("F16", down)
        tensors[f"{key}.lora_up.weight"] = ("F16", up)
        tensors[f"{key}.alpha"] = ("F32", ())
    return tensors


SD1_TE = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
SD1_ATTN2 = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
SDXL_TE1 = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"
SDXL_TE2 = "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"
SDXL_ATTN2 = "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k"


def sd1_lora() -> dict[str, tuple[str, tuple[int, ...]]]:
    return lora_tensors({SD1_TE: (768, 768), SD1_ATTN2: (320, 768)})


def sdxl_lora() -> dict[str, tuple[str, tuple[int, ...]]]:
    return lora_tensors({SDXL_TE1: (768, 768), SDXL_TE2: (1280, 1280), SDXL_ATTN2: (640, 2048)})
