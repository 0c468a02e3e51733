"""Strict readers for what model files declare, run before diffusers or safetensors see a file.

A model file comes from anywhere (model sites, shared drives). What it declares is checked here
in bounded time and memory, and anything malformed is an :class:`UnreadableModelError` naming the
file and saying what to do, instead of a ValueError, RecursionError or hang deep in a library:

* a ``.safetensors`` header (:func:`read_safetensors_header`): a regular file; the declared header
  length at most :data:`MAX_HEADER_BYTES` and inside the file; UTF-8 JSON, an object; each tensor
  a known dtype, a shape of non-negative whole numbers and data offsets that tile the data part of
  the file exactly, without gaps or overlaps (the rules the safetensors library applies);
* a diffusers ``config.json``/``model_index.json``/``scheduler_config.json``
  (:func:`read_config_json`): a regular file of at most :data:`MAX_CONFIG_BYTES`, a JSON object
  nested at most :data:`MAX_CONFIG_DEPTH` deep, whose size-like keys (``in_channels``,
  ``hidden_size``, ...) are whole numbers from 1 to :data:`MAX_CONFIG_NUMBER`;
* a diffusers folder (:func:`check_model_folder`): every file in it and in its component folders
  is a regular file (a FIFO or device would block or flood the loader) and every config and
  header among them passes the checks above.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import shorten
from ..core.files import FileRefused, file_kind, open_regular_file, os_reason, read_regular_file
from .errors import UnreadableModelError

#: The largest safetensors header read. Real ones are far smaller (SDXL: about 0.3 MB); the
#: safetensors library allows 100 MB, but parsing adversarial JSON of that size would take
#: gigabytes of memory (about 24 bytes per input byte for a header of empty objects).
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: The largest diffusers config read (real ones are 1-5 KB).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_DEPTH = 16
#: The largest value a size-like config key may have: no SD component has a dimension near it,
#: and a larger one would make torch allocate gigabytes for a single layer.
MAX_CONFIG_NUMBER = 1 << 20
CONFIG_NAMES = frozenset({"config.json", "model_index.json", "scheduler_config.json"})

_DTYPE_BITS = {
    **dict.fromkeys(("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0"), 8),
    **dict.fromkeys(("I16", "U16", "F16", "BF16"), 16),
    **dict.fromkeys(("I32", "U32", "F32"), 32),
    **dict.fromkeys(("I64", "U64", "F64", "C64"), 64),
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
_SIZE_KEYS = frozenset(
    {
        "in_channels",
        "out_channels",
        "latent_channels",
        "sample_size",
        "cross_attention_dim",
        "block_out_channels",
        "layers_per_block",
        "attention_head_dim",
        "norm_num_groups",
        "transformer_layers_per_block",
        "addition_time_embed_dim",
        "projection_class_embeddings_input_dim",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_hidden_layers",
        "max_position_embeddings",
        "vocab_size",
        "projection_dim",
        "num_train_timesteps",
    }
)
_NUMBER_KEYS = frozenset({"scaling_factor", "shift_factor", "beta_start", "beta_end"})
_FIX = "re-download it, or remove it from the models folder"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors header: dtype name, shape, byte offsets in the data part."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


def _bad(path: Path, reason: str, label: str | None = None) -> UnreadableModelError:
    name = shorten(label or path.name)
    return UnreadableModelError(f"{name} is not a valid model file: {reason}; {_FIX}")


def read_safetensors_header(path: Path, label: str | None = None) -> dict[str, TensorInfo]:
    """The tensors a ``.safetensors`` file declares, checked as the module doc says; reads only
    the header. ``__metadata__`` is checked (text to text) and left out. Errors name the file
    as ``label`` (default: its name)."""

    def bad(reason: str) -> UnreadableModelError:
        return _bad(path, reason, label)

    try:
        with open_regular_file(path) as handle:
            file_size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise bad(f"it is only {len(prefix)} bytes long")
            (size,) = struct.unpack("<Q", prefix)
            if size > MAX_HEADER_BYTES:
                raise bad(f"its header claims {size:,} bytes; the most read is {MAX_HEADER_BYTES:,}")
            if size > file_size - 8:
                raise bad(f"its header length {size:,} is larger than the file ({file_size:,} bytes)")
            raw = handle.read(size)
    except FileRefused as exc:
        raise bad(str(exc)) from None
    except OSError as exc:
        raise bad(f"it cannot be read: {os_reason(exc)}") from None
    if len(raw) != size:
        raise bad("the file ended inside its header")
    header = _json_object(raw, "header", bad)
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise bad("its __metadata__ is not a map of text to text")
    tensors = {str(key): _tensor(str(key), info, bad) for key, info in header.items()}
    _check_layout(tensors, file_size - 8 - size, bad)
    return tensors


def _json_object(raw: bytes, what: str, bad: Callable[[str], UnreadableModelError]) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise bad(f"its {what} is not UTF-8 text") from None
    except RecursionError:
        raise bad(f"its {what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or a number with too many digits
        raise bad(f"its {what} is not JSON ({shorten(exc, 60)})") from None
    if not isinstance(data, dict):
        raise bad(f"its {what} is not a JSON object")
    return data


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor(name: str, info: object, bad: Callable[[str], UnreadableModelError]) -> TensorInfo:
    where = f"tensor {shorten(name, 60)!r}"
    if not isinstance(info, dict):
        raise bad(f"{where} is not described by an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _DTYPE_BITS:
        raise bad(f"{where} has an unknown dtype {shorten(repr(dtype), 40)}")
    if not isinstance(shape, list) or not all(_whole(n) for n in shape):
        raise bad(f"{where} has the shape {shorten(repr(shape), 40)}, not a list of whole numbers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_whole(n) for n in offsets):
        raise bad(f"{where} has the data offsets {shorten(repr(offsets), 40)}, not [start, end]")
    start, end = offsets
    if end < start or math.prod(shape) * _DTYPE_BITS[dtype] != (end - start) * 8:
        raise bad(f"{where}: its data offsets [{start}, {end}] do not fit its {dtype} shape {shape}")
    return TensorInfo(dtype, tuple(shape), start, end)


def _check_layout(
    tensors: dict[str, TensorInfo], data_size: int, bad: Callable[[str], UnreadableModelError]
) -> None:
    position = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].start, item[1].end)):
        if info.start != position:
            problem = "overlaps the one before it" if info.start < position else "leaves a gap before it"
            raise bad(f"the data of tensor {shorten(name, 60)!r} {problem}")
        position = info.end
    if position != data_size:
        raise bad(f"its tensors cover {position:,} bytes of data, but the file holds {data_size:,}")


def read_config_json(path: Path, label: str | None = None) -> dict[str, Any]:
    """A diffusers config file, checked as the module doc says. Errors name it as ``label``."""

    def bad(reason: str) -> UnreadableModelError:
        return _bad(path, reason, label)

    try:
        raw = read_regular_file(path, MAX_CONFIG_BYTES)
    except FileRefused as exc:
        raise bad(str(exc)) from None
    data = _json_object(raw, "content", bad)
    if _depth(data) > MAX_CONFIG_DEPTH:
        raise bad(f"it is nested more than {MAX_CONFIG_DEPTH} levels deep")
    for key in _SIZE_KEYS.intersection(data):
        if not _size_like(data[key]):
            raise bad(
                f"{key} is {shorten(repr(data[key]), 40)}; it must be a whole number from 1 to "
                f"{MAX_CONFIG_NUMBER:,} (or a list of them)",
            )
    for key in _NUMBER_KEYS.intersection(data):
        value = data[key]
        if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool)):
            raise bad(f"{key} is {shorten(repr(value), 40)}, not a number")
    return data


def _size_like(value: object, depth: int = 0) -> bool:
    if value is None:
        return depth == 0
    if isinstance(value, list):  # per-block values; SDXL variants nest one level more
        return depth < 2 and len(value) <= 64 and all(_size_like(item, depth + 1) for item in value)
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CONFIG_NUMBER


def _depth(data: object) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_CONFIG_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_model_folder(folder: Path) -> None:
    """Check a diffusers model folder and its component folders as the module doc says."""
    for entry, mode in _entries(folder):
        if not stat.S_ISREG(mode):
            relative = entry.relative_to(folder).as_posix()
            raise UnreadableModelError(
                f"{shorten(folder.name)} is not a valid model folder: {shorten(relative)} is "
                f"{file_kind(mode)}, not a regular file; {_FIX}"
            )
        label = f"{folder.name}/{entry.relative_to(folder).as_posix()}"
        if entry.name in CONFIG_NAMES:
            read_config_json(entry, label)
        elif entry.suffix.lower() == ".safetensors":
            read_safetensors_header(entry, label)


def _entries(folder: Path) -> Iterator[tuple[Path, int]]:
    """(path, stat mode) of the files in ``folder`` and its direct subfolders, hidden ones skipped."""
    pending = [folder]
    while pending:
        directory = pending.pop()
        try:
            children = sorted(directory.iterdir())
        except OSError as exc:
            raise _bad(directory, f"the folder cannot be listed: {os_reason(exc)}") from None
        for child in children:
            if child.name.startswith("."):
                continue
            try:
                mode = os.stat(child).st_mode
            except OSError as exc:
                raise _bad(child, f"it cannot be read: {os_reason(exc)}") from None
            if os.path.isdir(child):
                if directory == folder:
                    pending.append(child)
                continue
            yield child, mode
