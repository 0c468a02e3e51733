"""Catalog entries for LoRAs and textual-inversion embeddings, built from a file's header alone.

Building an entry reads the safetensors header (bounded, see ``header``) and the sidecar files; it
never reads tensor data, never unpickles and never imports torch, so the window can list
thousands of files at start-up on a worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from .header import HeaderError, SafetensorsHeader, read_header
from .lora_info import ModuleType, NetworkFamily, analyse_lora, training_tags
from .sidecars import Sidecars, read_sidecars

__all__ = [
    "EMBEDDING_SUFFIXES",
    "LORA_SUFFIXES",
    "PICKLE_SUFFIXES",
    "EmbeddingEntry",
    "LoraEntry",
    "embedding_entry",
    "lora_entry",
]

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")  # what A1111 lists in models/Lora
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
PICKLE_SUFFIXES = (".pt", ".ckpt", ".bin", ".pth")
_EMBEDDING_WIDTHS = {768: NetworkFamily.SD1, 1024: NetworkFamily.SD2}
_SDXL_EMBEDDING_KEYS = ("clip_l", "clip_g")


@dataclass(frozen=True)
class LoraEntry:
    """One LoRA (or LyCORIS) file.

    ``name`` is A1111's name for it, the file stem; ``alias`` the ``ss_output_name`` metadata (or
    the name); ``prompt_name`` what a ``<lora:...>`` tag for it should say (A1111's
    ``get_alias``: the alias unless another file claims it). ``relative`` is the path below its
    folder without extension (``"sdxl/add_detail"``). ``error`` is empty for a usable file, else
    why it cannot be used (a pickle, a damaged header).
    """

    name: str
    path: Path
    relative: str
    folder: str
    size: int
    mtime_ns: int
    alias: str = ""
    prompt_name: str = ""
    family: NetworkFamily = NetworkFamily.UNKNOWN
    family_source: str = ""
    network_type: str = ""
    module_types: frozenset[ModuleType] = frozenset()
    components: frozenset[str] = frozenset()
    module_count: int = 0
    metadata_hash: str = ""  # the file's own sshs_model_hash (full hex), if it has one
    training_tags: tuple[tuple[str, int], ...] = ()
    bundled_embeddings: tuple[str, ...] = ()
    sidecars: Sidecars = field(default_factory=Sidecars)
    error: str = ""

    @property
    def usable(self) -> bool:
        """True when the file can be applied (a safetensors LoRA with a valid header)."""
        return not self.error

    @property
    def trigger_words(self) -> str:
        """The text to show as trigger words: the user's activation text, else the top training tags."""
        if self.sidecars.activation_text:
            return self.sidecars.activation_text
        return ", ".join(tag for tag, _count in self.training_tags[:5])


@dataclass(frozen=True)
class EmbeddingEntry:
    """One textual-inversion embedding file; ``name`` (the file stem) is the word that triggers it.

    ``vectors`` and ``widths`` come from a safetensors header (``(768,)`` for SD 1.x,
    ``(768, 1280)`` for SDXL's clip_l/clip_g pair); for ``.pt``/``.bin`` files they are None/()
    until the engine loads the file.
    """

    name: str
    path: Path
    relative: str
    folder: str
    size: int
    mtime_ns: int
    family: NetworkFamily = NetworkFamily.UNKNOWN
    vectors: int | None = None
    widths: tuple[int, ...] = ()
    sidecars: Sidecars = field(default_factory=Sidecars)
    error: str = ""

    @property
    def usable(self) -> bool:
        return not self.error


def lora_entry(path: Path, root: Path, folder: str, siblings: Collection[str] | None = None) -> LoraEntry:
    """The entry for the LoRA file ``path`` found under ``root`` (the folder called ``folder``)."""
    stat = path.stat()
    relative = _relative(path, root)
    base = LoraEntry(path.stem, path, relative, folder, stat.st_size, stat.st_mtime_ns, alias=path.stem)
    sidecars = read_sidecars(path, siblings)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return _with(base, sidecars=sidecars, error=_pickle_message(path, "LoRA"))
    try:
        header = read_header(path)
    except HeaderError as exc:
        return _with(base, sidecars=sidecars, error=str(exc))
    return _lora_from_header(base, header, sidecars)


def _lora_from_header(base: LoraEntry, header: SafetensorsHeader, sidecars: Sidecars) -> LoraEntry:
    analysis = analyse_lora(header)
    metadata = header.metadata
    family, source = analysis.family, analysis.family_source
    if sidecars.sd_version in NetworkFamily.__members__:  # the user's choice wins, as in A1111's card
        family, source = NetworkFamily[sidecars.sd_version], "user metadata"
    error = ""
    if not analysis.modules:
        error = f"{base.path.name} holds no LoRA weights (no lora_up/lora_down or LyCORIS keys)"
    alias = metadata.get("ss_output_name", "").strip() or base.name
    return _with(
        base,
        alias=alias,
        family=family,
        family_source=source,
        network_type=analysis.network_type,
        module_types=analysis.types,
        components=analysis.components,
        module_count=len(analysis.modules),
        metadata_hash=_hex(metadata.get("sshs_model_hash", "")),
        training_tags=training_tags(metadata),
        bundled_embeddings=analysis.bundled_embeddings,
        sidecars=sidecars,
        error=error,
    )


def embedding_entry(
    path: Path, root: Path, folder: str, siblings: Collection[str] | None = None
) -> EmbeddingEntry:
    """The entry for the embedding file ``path`` found under ``root``."""
    stat = path.stat()
    entry = EmbeddingEntry(path.stem, path, _relative(path, root), folder, stat.st_size, stat.st_mtime_ns)
    sidecars = read_sidecars(path, siblings)
    if path.suffix.lower() != ".safetensors":
        return _with(entry, sidecars=sidecars)  # .pt/.bin: read weights-only by the engine
    try:
        header = read_header(path)
    except HeaderError as exc:
        return _with(entry, sidecars=sidecars, error=str(exc))
    shapes = {key: info.shape for key, info in header.tensors.items()}
    if all(key in shapes for key in _SDXL_EMBEDDING_KEYS):
        l_shape, g_shape = shapes["clip_l"], shapes["clip_g"]
        vectors = g_shape[0] if len(g_shape) == 2 else 1
        widths = (l_shape[-1] if l_shape else 0, g_shape[-1] if g_shape else 0)
        family = NetworkFamily.SDXL if widths == (768, 1280) else NetworkFamily.UNKNOWN
        return _with(entry, family=family, vectors=vectors, widths=widths, sidecars=sidecars)
    if len(shapes) != 1:
        error = (
            f"{path.name} is not an embedding A1111 can read: it holds {len(shapes)} tensors "
            "(expected one, or an SDXL clip_l/clip_g pair)"
        )
        return _with(entry, sidecars=sidecars, error=error)
    (shape,) = shapes.values()
    if len(shape) not in (1, 2) or not shape or 0 in shape:
        return _with(entry, sidecars=sidecars, error=f"{path.name}: an embedding of shape {list(shape)}")
    vectors = 1 if len(shape) == 1 else shape[0]
    family = _EMBEDDING_WIDTHS.get(shape[-1], NetworkFamily.UNKNOWN)
    return _with(entry, family=family, vectors=vectors, widths=(shape[-1],), sidecars=sidecars)


_Entry = TypeVar("_Entry", LoraEntry, EmbeddingEntry)


def _with(entry: _Entry, **changes: Any) -> _Entry:
    return replace(entry, **changes)


def _relative(path: Path, root: Path) -> str:
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.name
    return relative[: -len(path.suffix)] if path.suffix else relative


def _pickle_message(path: Path, what: str) -> str:
    return (
        f"{path.name} is a pickle ({path.suffix.lower()}) {what}, which can run code when loaded; convert it "
        f"with `stablenew-qt convert {path}` (reads it weights-only) and use the .safetensors file"
    )


def _hex(value: str) -> str:
    value = value.strip().lower()
    return value if re.fullmatch(r"[0-9a-f]{12,64}", value) else ""
