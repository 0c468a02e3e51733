"""No pickle trust: pickle checkpoints are refused, or converted to safetensors weights-only.

A pickle file (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) can run arbitrary code when unpickled. The
engine never loads one; ``convert_to_safetensors`` reads one with ``torch.load(weights_only=True)``,
which only rebuilds tensors and plain containers, and writes a ``.safetensors`` file instead.
torch is imported only inside ``convert_to_safetensors``.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import shorten
from ..core.files import FileRefused, regular_file_size
from .errors import ModelError, UnreadableModelError
from .model_files import check_model_folder, read_safetensors_header

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

log = logging.getLogger(__name__)

_BLOCKED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def pickle_refusal(path: Path) -> str:
    """The message that refuses the pickle file ``path`` and says how to convert it."""
    return (
        f"{path.name} is a pickle ({path.suffix.lower()}) file, which can run code when loaded; convert "
        f"it to .safetensors with `stablenew-qt convert {path}` (loads it weights-only) and use the new file"
    )


def check_loadable_checkpoint(path: Path) -> None:
    """Raise ModelError unless ``path`` can be loaded without unpickling, and is well formed.

    A ``.safetensors`` file with a valid header passes; so does a diffusers folder in which every
    component holding weights has a ``.safetensors`` file and every file, config and header is
    well formed (``model_files``; UnreadableModelError otherwise). A pickle file, or a folder
    component with only pickle weights, is refused with instructions to convert it.
    """
    if path.is_dir():
        _check_folder(path)
        check_model_folder(path)
        return
    if not os.path.lexists(path):
        raise ModelError(f"model not found: {shorten(str(path))}")
    try:
        regular_file_size(path)
    except FileRefused as exc:
        raise UnreadableModelError(f"model {shorten(str(path))!r} cannot be used: {exc}") from None
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ModelError(pickle_refusal(path))
    if suffix != ".safetensors":
        raise ModelError(f"{shorten(path.name)} is not a model file this app loads: expected .safetensors")
    read_safetensors_header(path)


def _check_folder(folder: Path) -> None:
    for directory in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        files = [p for p in directory.iterdir() if p.is_file()]
        pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles and not any(p.suffix.lower() == ".safetensors" for p in files):
            first = pickles[0]
            raise ModelError(
                f"{folder.name} is a diffusers folder whose {first.relative_to(folder).as_posix()} weights "
                f"are a pickle ({first.suffix.lower()}) file, which can run code when loaded; convert it "
                f"with `stablenew-qt convert {first}` (loads it weights-only and writes the .safetensors "
                "file diffusers looks for) and use the folder again"
            )


def default_safetensors_path(src: Path) -> Path:
    """Where ``convert_to_safetensors`` writes by default: beside ``src``, with the name the
    libraries look for (``pytorch_model.bin`` becomes ``model.safetensors``, as transformers expects)."""
    if src.name.lower() == "pytorch_model.bin":
        return src.with_name("model.safetensors")
    return src.with_suffix(".safetensors")


def convert_to_safetensors(src: Path, dst: Path | None = None) -> Path:
    """Convert the pickle checkpoint ``src`` to a ``.safetensors`` file and return its path.

    Loads with ``torch.load(weights_only=True)``, so no code in the file runs; a file that needs
    arbitrary Python objects is refused with ModelError. A top-level ``state_dict`` is unwrapped;
    non-tensor entries are skipped (their count is logged). Never overwrites: an existing ``dst``
    is a ModelError. ``dst`` defaults to ``default_safetensors_path(src)``.
    """
    dst = default_safetensors_path(src) if dst is None else dst
    _check_conversion_paths(src, dst)
    tensors, skipped = _tensors_only(_load_weights_only(src), src)
    if skipped:
        log.warning("%s: skipped %d non-tensor entries (%s)", src.name, len(skipped), ", ".join(skipped[:5]))
    _save_new(tensors, dst)
    log.info("converted %s to %s: %d tensors", src, dst, len(tensors))
    return dst


def _check_conversion_paths(src: Path, dst: Path) -> None:
    try:
        regular_file_size(src)
    except FileRefused as exc:
        raise ModelError(f"cannot convert {shorten(str(src))!r}: {exc}") from None
    if src.suffix.lower() == ".safetensors":
        raise ModelError(f"{shorten(src.name)} is already a .safetensors file")
    if dst.suffix.lower() != ".safetensors":
        raise ModelError(f"the converted file must end in .safetensors, not {shorten(dst.name)}")
    if os.path.lexists(dst):
        raise ModelError(
            f"{shorten(str(dst))} already exists; move it away or choose another name (nothing was written)"
        )
    folder = dst.parent
    if not folder.is_dir():
        raise ModelError(
            f"the folder {shorten(str(folder))!r} for {shorten(dst.name)} does not exist; create it or "
            "choose another output file (nothing was written)"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ModelError(
            f"the folder {shorten(str(folder))!r} is not writable; choose another output file "
            "(nothing was written)"
        )


def _load_weights_only(src: Path) -> object:
    import torch

    try:
        return torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch reports every refusal this way; a named GLOBAL means a Python object, not damage.
        found = _BLOCKED_GLOBAL.search(str(exc))
        if found is None:
            raise ModelError(_unreadable(src)) from exc
        raise ModelError(
            f"{src.name} contains non-tensor Python objects (it needs {found.group(1)}), so it cannot be "
            "converted safely: loading it would mean running code from the file. Get a .safetensors "
            "version of this model instead"
        ) from exc
    except (OSError, EOFError, KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(_unreadable(src)) from exc


def _unreadable(src: Path) -> str:
    return f"{src.name} cannot be read as a PyTorch checkpoint (damaged, or not a checkpoint)"


def _tensors_only(loaded: object, src: Path) -> tuple[dict[str, Any], list[str]]:
    import torch

    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ModelError(f"{src.name} holds a {type(loaded).__name__}, not a dictionary of named tensors")
    tensors: dict[str, Any] = {}
    skipped: list[str] = []
    seen_storage: set[int] = set()
    for key, value in loaded.items():
        if not isinstance(value, torch.Tensor):
            skipped.append(str(key))
            continue
        tensor = value.detach().contiguous()
        # safetensors refuses tensors that share memory (tied weights): give repeats their own copy.
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen_storage:
            tensor = tensor.clone()
        seen_storage.add(storage)
        tensors[str(key)] = tensor
    if not tensors:
        raise ModelError(f"{src.name} contains no tensors; there is nothing to convert")
    return tensors, skipped


def _save_new(tensors: dict[str, Any], dst: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    partial = dst.with_name(dst.name + ".partial")
    try:
        save_file(tensors, str(partial))
        if dst.exists():
            raise ModelError(f"{dst} appeared while converting; nothing was overwritten")
        os.replace(partial, dst)
    except (OSError, SafetensorError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else shorten(exc)
        raise ModelError(
            f"cannot write {shorten(str(dst))}: {reason}; free some space or choose another output file "
            "(nothing was written)"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
