"""The model catalog: what is installed in an A1111/Forge-style ``models`` folder, and name lookup.

Layout (the same as A1111 and Forge, so their ``models`` folder works unchanged)::

    models/Stable-diffusion/   checkpoints: *.safetensors, diffusers folders, pickles (listed, refused)
    models/VAE/                VAEs: *.safetensors, diffusers folders with config.json, pickles (refused)
    models/ESRGAN/             pixel upscalers: *.pth, *.safetensors, *.pt (loaded by spandrel)
    models/adetailer/          ADetailer detectors: *.pt (loaded by ultralytics)

Discovery only lists directory entries; it reads no weights and never imports torch.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from ..core.errors import shorten
from ..core.files import FileRefused, user_path
from .errors import MissingModelError, ModelError
from .safety import PICKLE_SUFFIXES, check_loadable_checkpoint

ModelKind = Literal["checkpoint", "vae", "upscaler", "detector"]
ModelSource = Literal["file", "folder", "demo", "hub"]


@dataclass(frozen=True)
class ModelEntry:
    """One model the user can choose.

    ``name`` is the display name: the path relative to its kind's folder with POSIX separators,
    without the extension for files (``"sdxl/juggernautXL_v9"``), or the hub id or demo name.
    ``path`` is the file or folder, or None for a hub model not yet downloaded.
    """

    name: str
    path: Path | None
    kind: ModelKind
    source: ModelSource


@dataclass(frozen=True)
class _KindSpec:
    folder: str  # A1111's folder name under models/
    label: str
    suffixes: tuple[str, ...]
    folder_marker: str | None  # a folder holding this file is one model (diffusers layout)
    checked: bool  # resolve() refuses pickles and pickle-only folders (see safety)
    hub: bool  # an unknown "org/repo" name is a Hugging Face id


_SPECS: dict[ModelKind, _KindSpec] = {
    "checkpoint": _KindSpec(
        "Stable-diffusion", "checkpoint", (".safetensors", *PICKLE_SUFFIXES), "model_index.json", True, True
    ),
    "vae": _KindSpec("VAE", "VAE", (".safetensors", *PICKLE_SUFFIXES), "config.json", True, True),
    "upscaler": _KindSpec("ESRGAN", "upscaler", (".pth", ".safetensors", ".pt"), None, False, False),
    "detector": _KindSpec("adetailer", "detector", (".pt",), None, False, False),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_A1111_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,10}\]$")  # "model.safetensors [6ce0161689]"
_MAX_SUGGESTIONS = 5
_MAX_COMPARED_CHARS = 300


class ModelCatalog:
    """The models installed under ``models_dir``, plus caller-registered demo checkpoints.

    ``extra_checkpoints`` maps a name to a diffusers folder (the built-in demo models); these come
    first in ``checkpoints()`` with source ``"demo"``. The folder is scanned on first use and again
    on ``refresh()``.
    """

    def __init__(
        self, models_dir: Path, extra_checkpoints: Mapping[str, Path] = MappingProxyType({})
    ) -> None:
        self.models_dir = models_dir
        self._demo = tuple(ModelEntry(n, p, "checkpoint", "demo") for n, p in extra_checkpoints.items())
        self._entries: dict[ModelKind, tuple[ModelEntry, ...]] | None = None

    def folder(self, kind: ModelKind) -> Path:
        """The folder searched for ``kind`` (A1111's name, matched case-insensitively if needed)."""
        wanted = _SPECS[kind].folder
        exact = self.models_dir / wanted
        if exact.is_dir() or not self.models_dir.is_dir():
            return exact
        for child in self.models_dir.iterdir():
            if child.is_dir() and child.name.casefold() == wanted.casefold():
                return child
        return exact

    def refresh(self) -> None:
        """Scan the models folder again (after the user adds or removes files)."""
        self._entries = {kind: self._scan(kind) for kind in _SPECS}

    def checkpoints(self) -> tuple[ModelEntry, ...]:
        """Demo checkpoints first, then installed ones sorted case-insensitively."""
        return self._demo + self.entries("checkpoint")

    def vaes(self) -> tuple[ModelEntry, ...]:
        return self.entries("vae")

    def upscalers(self) -> tuple[ModelEntry, ...]:
        return self.entries("upscaler")

    def detectors(self) -> tuple[ModelEntry, ...]:
        return self.entries("detector")

    def entries(self, kind: ModelKind) -> tuple[ModelEntry, ...]:
        """Installed models of ``kind`` (without the demo checkpoints), sorted case-insensitively."""
        if self._entries is None:
            self.refresh()
        assert self._entries is not None
        return self._entries[kind]

    def resolve_checkpoint(self, name: str) -> ModelEntry:
        """The checkpoint called ``name``; see ``resolve``."""
        return self.resolve("checkpoint", name)

    def resolve_vae(self, name: str) -> ModelEntry:
        """The VAE called ``name``; see ``resolve``."""
        return self.resolve("vae", name)

    def resolve_upscaler(self, name: str) -> ModelEntry:
        """The pixel upscaler model called ``name``; see ``resolve``."""
        return self.resolve("upscaler", name)

    def resolve_detector(self, name: str) -> ModelEntry:
        """The ADetailer detector called ``name`` (e.g. ``face_yolov8n.pt``); see ``resolve``."""
        return self.resolve("detector", name)

    def resolve(self, kind: ModelKind, name: str) -> ModelEntry:
        """Find a model of ``kind`` by what a user or a saved config calls it.

        Accepts, in this order: the display name, the name with its extension, the bare file name
        or stem when only one model has it, any of those ignoring case when unique, an absolute
        path to an existing file or folder, and for checkpoints and VAEs a Hugging Face id
        ``org/repo`` that does not exist locally (source ``"hub"``, path None). A trailing A1111
        hash (``"name [abcdef1234]"``) is ignored. Raises ModelError naming the closest installed
        models, and for checkpoints and VAEs refuses pickle files with instructions to convert them.
        """
        spec = _SPECS[kind]
        query = _clean(name)
        if not query:
            raise MissingModelError(f"no {spec.label} was chosen")
        listed = self.checkpoints() if kind == "checkpoint" else self.entries(kind)
        entry = _match(listed, query, spec.label) or self._from_path(kind, query, listed)
        if entry is None and spec.hub and self._is_hub_id(kind, query):
            entry = ModelEntry(query, None, kind, "hub")
        if entry is None:
            raise MissingModelError(self._not_found(kind, query, listed))
        if spec.checked and entry.source in ("file", "folder") and entry.path is not None:
            check_loadable_checkpoint(entry.path)
        return entry

    def _scan(self, kind: ModelKind) -> tuple[ModelEntry, ...]:
        spec = _SPECS[kind]
        root = self.folder(kind)
        found = sorted(_walk(root, spec, set()), key=lambda p: _rank(p, spec))
        entries: dict[str, ModelEntry] = {}
        for path in found:
            relative = path.relative_to(root).as_posix()
            name = relative if path.is_dir() else relative[: -len(path.suffix)]
            if name in entries:  # "x.ckpt" beside "x.safetensors": the later one keeps its extension
                name = relative
            entries[name] = ModelEntry(name, path, kind, "folder" if path.is_dir() else "file")
        return tuple(sorted(entries.values(), key=lambda e: (e.name.casefold(), e.name)))

    def _from_path(self, kind: ModelKind, query: str, listed: tuple[ModelEntry, ...]) -> ModelEntry | None:
        label = _SPECS[kind].label
        try:
            path = user_path(query)
            if not path.is_absolute():
                return None
            found = path.exists()
        except (FileRefused, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ModelError(f"{label} {shorten(query)!r} cannot be used: {reason}") from None
        if not found:
            raise MissingModelError(f"{label} not found: {shorten(str(path))}", path)
        resolved = path.resolve()
        for entry in listed:
            if entry.path is not None and entry.path.resolve() == resolved:
                return entry
        spec = _SPECS[kind]
        if path.is_dir():
            if spec.folder_marker is None or not (path / spec.folder_marker).is_file():
                marker = f" (no {spec.folder_marker})" if spec.folder_marker else ""
                raise ModelError(f"{shorten(str(path))} is a folder but not a usable {spec.label}{marker}")
            return ModelEntry(path.name, path, kind, "folder")
        if path.suffix.lower() not in spec.suffixes:
            raise ModelError(
                f"{shorten(path.name)} is not a usable {spec.label} file: expected {', '.join(spec.suffixes)}"
            )
        return ModelEntry(path.stem, path, kind, "file")

    def _is_hub_id(self, kind: ModelKind, query: str) -> bool:
        if not _HUB_ID.match(query) or "--" in query or ".." in query:
            return False
        if query.lower().endswith(_SPECS[kind].suffixes):
            return False
        # "sdxl/juggernaut_v8" when models/Stable-diffusion/sdxl exists is a local typo, not a hub id.
        first = query.split("/", 1)[0].casefold()
        root = self.folder(kind)
        return not (root.is_dir() and any(c.is_dir() and c.name.casefold() == first for c in root.iterdir()))

    def _not_found(self, kind: ModelKind, query: str, listed: tuple[ModelEntry, ...]) -> str:
        spec = _SPECS[kind]
        root = self.folder(kind)
        message = f"{spec.label} '{shorten(query)}' not found in {root}"
        if not root.is_dir():
            message += " (the folder does not exist)"
        close = _closest(query, [e.name for e in listed])
        if close:
            message += "; closest installed: " + ", ".join(close)
        elif listed:
            message += "; installed: " + ", ".join(e.name for e in listed[:_MAX_SUGGESTIONS])
        else:
            message += f"; no {spec.label} is installed there"
        if spec.hub:
            message += ". Give an installed name, a full path, or a Hugging Face id (org/repo)"
        return message


def _walk(directory: Path, spec: _KindSpec, visited: set[Path]) -> Iterator[Path]:
    try:
        real = directory.resolve()
        children = list(directory.iterdir())
    except OSError:
        return
    if real in visited:  # a symlink loop
        return
    visited.add(real)
    for child in children:
        if child.name.startswith(".") or child.name.lower().startswith("readme"):
            continue
        if child.is_dir():
            if spec.folder_marker and (child / spec.folder_marker).is_file():
                yield child
            else:
                yield from _walk(child, spec, visited)
        elif child.suffix.lower() in spec.suffixes:
            yield child


def _rank(path: Path, spec: _KindSpec) -> tuple[str, int, str]:
    # Same display name: folders, then the earliest-listed suffix (.safetensors before pickles).
    suffix = path.suffix.lower()
    order = -1 if path.is_dir() else spec.suffixes.index(suffix)
    stem = path.as_posix() if path.is_dir() else path.as_posix()[: -len(suffix)]
    return (stem, order, path.as_posix())


def _clean(name: str) -> str:
    return _A1111_HASH_SUFFIX.sub("", name.strip()).replace("\\", "/").strip()


def _aliases(entry: ModelEntry) -> tuple[str, str, str, str]:
    suffix = entry.path.suffix if entry.source == "file" and entry.path is not None else ""
    with_ext = entry.name if entry.name.endswith(suffix) else entry.name + suffix
    base = entry.name.rsplit("/", 1)[-1]
    return entry.name, with_ext, base, with_ext.rsplit("/", 1)[-1]


def _match(listed: tuple[ModelEntry, ...], query: str, label: str) -> ModelEntry | None:
    aliases = [(_aliases(e), e) for e in listed]
    for fold in (False, True):
        wanted = query.casefold() if fold else query
        for tier in range(4):
            hits = [e for a, e in aliases if (a[tier].casefold() if fold else a[tier]) == wanted]
            if len(hits) == 1 or (hits and tier < 2 and not fold):
                return hits[0]
            if hits:
                names = ", ".join(e.name for e in hits[:_MAX_SUGGESTIONS])
                raise ModelError(f"'{shorten(query)}' matches several {label}s ({names}); use the full name")
    return None


def _closest(query: str, names: list[str]) -> list[str]:
    if len(query) > _MAX_COMPARED_CHARS:  # no model has such a name, and comparing would be slow
        return []

    def score(name: str) -> float:
        candidates = (name.casefold(), name.rsplit("/", 1)[-1].casefold())
        return max(difflib.SequenceMatcher(None, query.casefold(), c).ratio() for c in candidates)

    scored = sorted(((score(n), n) for n in names), key=lambda s: -s[0])
    return [n for s, n in scored if s >= 0.5][:_MAX_SUGGESTIONS]


@dataclass(frozen=True)
class InstalledNames:
    """The model names offered for a models folder, by kind (names only, nothing loaded): the
    built-in demo checkpoints first, then the folder's own."""

    checkpoints: tuple[str, ...]
    vaes: tuple[str, ...]
    upscalers: tuple[str, ...]
    detectors: tuple[str, ...]
    demo_checkpoints: tuple[str, ...]


def installed_names(models_dir: Path) -> InstalledNames:
    """What the window's combos and the CLI's sweep checks offer for ``models_dir``."""
    from .demo import DEMO_MODELS

    catalog = ModelCatalog(models_dir)
    return InstalledNames(
        checkpoints=DEMO_MODELS + tuple(e.name for e in catalog.checkpoints()),
        vaes=tuple(e.name for e in catalog.vaes()),
        upscalers=tuple(e.name for e in catalog.upscalers()),
        detectors=tuple(e.name for e in catalog.detectors()),
        demo_checkpoints=DEMO_MODELS,
    )
