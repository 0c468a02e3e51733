"""A strict, bounded reader of ``.safetensors`` headers, in pure Python (no torch, no safetensors).

The format: an 8-byte little-endian header length N, then N bytes of JSON, then the tensor data.
The JSON object maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets relative to the data block) and may hold ``"__metadata__"``, a string-to-string map
(kohya's ``ss_*`` training keys, ``modelspec.*``, ``sshs_model_hash``).

Hostile files cost bounded time and memory: the header length is capped before anything is read,
duplicate keys, nesting bombs, oversized numbers and inconsistent offsets are refused, and every
failure is a :class:`HeaderError` whose message names the file and the problem (never a traceback).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["MAX_HEADER_BYTES", "HeaderError", "SafetensorsHeader", "TensorInfo", "read_header"]

#: The largest header accepted. Real LoRA headers are well under 1 MiB; kohya's cover images
#: (``ssmd_cover_images``, base64) can reach a few MiB.
MAX_HEADER_BYTES = 32 * 1024 * 1024

#: Bytes per element of every dtype the safetensors format defines.
DTYPE_SIZES: Mapping[str, float] = MappingProxyType(
    {
        "BOOL": 1,
        "U8": 1,
        "I8": 1,
        "F8_E5M2": 1,
        "F8_E4M3": 1,
        "F8_E8M0": 1,
        "F4": 0.5,
        "I16": 2,
        "U16": 2,
        "F16": 2,
        "BF16": 2,
        "I32": 4,
        "U32": 4,
        "F32": 4,
        "I64": 8,
        "U64": 8,
        "F64": 8,
        "C64": 8,
    }
)
_MAX_DIMS = 8


class HeaderError(ValueError):
    """A file is not a readable ``.safetensors`` file; the message names the file and the problem."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's dtype and shape, as the header declares them."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Number of elements (1 for a scalar)."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """What a ``.safetensors`` header says, validated.

    ``data_offset`` is where the tensor data starts (8 + header length): the A1111/kohya LoRA
    hash is the SHA-256 of the file's bytes from there to the end.
    """

    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str]
    data_offset: int
    file_size: int


def read_header(path: Path, *, max_header_bytes: int = MAX_HEADER_BYTES) -> SafetensorsHeader:
    """Read and validate the header of the ``.safetensors`` file ``path`` (no tensor data is read).

    Raises :class:`HeaderError` for a missing or unreadable file, a header larger than
    ``max_header_bytes`` or than the file, invalid JSON, unknown dtypes, bad shapes, offsets that
    do not tile the data block exactly, or a ``__metadata__`` that is not strings to strings.
    """
    name = path.name
    try:
        with path.open("rb") as stream:
            file_size = _file_size(stream)
            prefix = stream.read(8)
            if len(prefix) < 8:
                raise HeaderError(f"{name} is not a safetensors file: it is only {len(prefix)} bytes long")
            (length,) = struct.unpack("<Q", prefix)
            if length > max_header_bytes:
                raise HeaderError(
                    f"{name} is not a usable safetensors file: its header claims {length} bytes "
                    f"(the limit is {max_header_bytes}); the file is damaged or not a safetensors file"
                )
            if length < 2 or 8 + length > file_size:
                raise HeaderError(
                    f"{name} is not a usable safetensors file: the header length {length} does not fit "
                    f"the file's {file_size} bytes (damaged or incomplete download?)"
                )
            raw = stream.read(length)
    except OSError as exc:
        raise HeaderError(f"cannot read {path}: {exc.strerror or exc}") from exc
    parsed = _parse_json(name, raw)
    tensors, metadata = _validate(name, parsed, file_size - 8 - length)
    return SafetensorsHeader(
        MappingProxyType(tensors), MappingProxyType(metadata), data_offset=8 + length, file_size=file_size
    )


def _file_size(stream: Any) -> int:
    stream.seek(0, 2)
    size = int(stream.tell())
    stream.seek(0)
    return size


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise HeaderError(f"the key {key!r} appears twice")
        result[key] = value
    return result


def _parse_json(name: str, raw: bytes) -> dict[str, Any]:
    bad = f"{name} is not a usable safetensors file: the header is not valid JSON"
    if raw.lstrip()[:1] != b"{":
        raise HeaderError(f"{bad} (it does not start with '{{')")
    try:
        text = raw.decode("utf-8")
        parsed = json.loads(text, object_pairs_hook=_no_duplicates)
    except HeaderError as exc:
        raise HeaderError(f"{bad}: {exc}") from None
    except UnicodeDecodeError:
        raise HeaderError(f"{bad} (it is not UTF-8)") from None
    except RecursionError:
        raise HeaderError(f"{bad} (it is nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and ints past Python's digit limit
        raise HeaderError(f"{bad} ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(parsed, dict):
        raise HeaderError(f"{bad} (it is not a JSON object)")
    return parsed


def _validate(
    name: str, parsed: dict[str, Any], data_size: int
) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    bad = f"{name} is not a usable safetensors file"
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise HeaderError(f"{bad}: __metadata__ must map strings to strings")
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for key, entry in parsed.items():
        info, span = _tensor_entry(bad, key, entry)
        tensors[key] = info
        spans.append((*span, key))
    _check_tiling(bad, spans, data_size)
    return tensors, dict(metadata)


def _tensor_entry(bad: str, key: str, entry: Any) -> tuple[TensorInfo, tuple[int, int]]:
    where = f"{bad}: tensor {key[:120]!r}"
    if not isinstance(entry, dict):
        raise HeaderError(f"{where} is not described by an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise HeaderError(f"{where} has an unknown dtype {str(dtype)[:20]!r}")
    if not isinstance(shape, list) or len(shape) > _MAX_DIMS or not all(_is_count(n) for n in shape):
        raise HeaderError(f"{where} has an invalid shape")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(n) for n in offsets):
        raise HeaderError(f"{where} has invalid data_offsets")
    begin, end = offsets
    info = TensorInfo(dtype, tuple(shape))
    if end < begin or (end - begin) != math.ceil(info.numel * DTYPE_SIZES[dtype]):
        raise HeaderError(f"{where} declares {end - begin} bytes, which does not match its dtype and shape")
    return info, (begin, end)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _check_tiling(bad: str, spans: list[tuple[int, int, str]], data_size: int) -> None:
    """The tensors must cover the data block exactly, without gaps or overlaps (as safetensors checks)."""
    position = 0
    for begin, end, key in sorted(spans):
        if begin != position:
            raise HeaderError(f"{bad}: tensor {key[:120]!r} does not start where the previous one ends")
        position = end
    if position != data_size:
        raise HeaderError(
            f"{bad}: the tensors take {position} bytes but the file holds {data_size} bytes of data "
            "(damaged or incomplete download?)"
        )
