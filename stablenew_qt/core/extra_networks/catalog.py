"""The extra-networks catalog: LoRAs and embeddings installed beside the checkpoints, and lookup.

Folders (A1111's, so an A1111 install works unchanged; names matched ignoring case)::

    models/Lora/, models/LyCORIS/    LoRA and LyCORIS files (subfolders too)
    <root>/embeddings/               A1111's default embeddings folder, beside models/
    models/embeddings/               the embeddings folder of Forge and other UIs

Walk order is A1111's (``shared.walk_files``): folders in natural-sort order of their path, files
in natural order inside each, hidden folders skipped, symlinks followed (loops are cut).

Name lookup is A1111's (``networks.load_networks`` and ``available_network_aliases``): a LoRA is
called by its file stem or by its ``ss_output_name`` alias, case-sensitively; when two files
share a name the later one in walk order answers, and an alias that another file already uses
("forbidden") only finds the file with that stem. Beyond A1111 we also accept the path below the
folder (``sdxl/add_detail``) and, when unique, a name that differs only in case; an unknown name
raises :class:`ExtraNetworkError` listing the closest installed names.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar

from .entries import (
    EMBEDDING_SUFFIXES,
    LORA_SUFFIXES,
    EmbeddingEntry,
    LoraEntry,
    embedding_entry,
    lora_entry,
)
from .hashes import SHORT_HASH_LENGTH, DigestCache

__all__ = ["ExtraNetworkError", "ExtraNetworksCatalog", "LoraMatch", "closest_names", "natural_key"]

LORA_FOLDERS = ("Lora", "LyCORIS")
_FORBIDDEN_ALIASES = ("none", "Addams")  # A1111's seed set (its "Addams" is never matched: kept as is)
_MAX_SUGGESTIONS = 5
_Entry = TypeVar("_Entry", LoraEntry, EmbeddingEntry)
MatchKind = Literal["name", "path", "case"]


class ExtraNetworkError(ValueError):
    """A LoRA or embedding cannot be found or used; the message says what to do."""


@dataclass(frozen=True)
class LoraMatch:
    """The entry a LoRA name resolved to, and how: ``"name"`` (A1111's own lookup), ``"path"``
    (the path below the folder) or ``"case"`` (only the case differed; A1111 would not find it)."""

    entry: LoraEntry
    matched_by: MatchKind


def natural_key(text: str) -> list[int | str]:
    """A1111's natural sort key: digit runs compare as numbers, the rest ignoring case."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


class ExtraNetworksCatalog:
    """The LoRAs and embeddings under ``models_dir`` (and ``models_dir.parent / "embeddings"``).

    Scanned on first use and on :meth:`refresh`; an unchanged file (same size and mtime) is not
    read again. Entries are immutable; a refresh swaps whole tuples, so readers on other threads
    see either the old catalog or the new one. Hashes are computed only when asked for, through
    ``digests`` (by default an in-memory cache; pass a file-backed one to keep them across runs).
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        digests: DigestCache | None = None,
        embedding_dirs: Sequence[Path] | None = None,
    ) -> None:
        self.models_dir = models_dir
        self.digests = digests if digests is not None else DigestCache()
        self._embedding_dirs = tuple(embedding_dirs) if embedding_dirs is not None else None
        self._lock = threading.Lock()
        self._state: _State | None = None

    # -- folders and scanning ---------------------------------------------------------------
    def lora_folders(self) -> tuple[Path, ...]:
        """``models/Lora`` and ``models/LyCORIS`` (existing or not), A1111's spelling or any case."""
        return tuple(_child_folder(self.models_dir, name) for name in LORA_FOLDERS)

    def embedding_folders(self) -> tuple[Path, ...]:
        """A1111's ``embeddings`` beside ``models``, then ``models/embeddings``."""
        if self._embedding_dirs is not None:
            return self._embedding_dirs
        return (
            _child_folder(self.models_dir.parent, "embeddings"),
            _child_folder(self.models_dir, "embeddings"),
        )

    def refresh(self) -> None:
        """Scan the folders again (files added, removed or changed since the last scan)."""
        with self._lock:
            previous = self._state
        old_loras = {e.path: e for e in previous.loras} if previous else {}
        old_embeddings = {e.path: e for e in previous.all_embeddings} if previous else {}
        loras = self._scan(self.lora_folders(), LORA_SUFFIXES, lora_entry, old_loras)
        embeddings = self._scan(self.embedding_folders(), EMBEDDING_SUFFIXES, embedding_entry, old_embeddings)
        state = _State.build(loras, embeddings)
        with self._lock:
            self._state = state

    def loras(self) -> tuple[LoraEntry, ...]:
        """Every LoRA file in walk order, usable or not (``entry.error`` says why not)."""
        return self._current().loras

    def embeddings(self) -> tuple[EmbeddingEntry, ...]:
        """Every embedding, one per name (the first folder's file wins), sorted by name ignoring case."""
        return self._current().embeddings

    # -- LoRA lookup ------------------------------------------------------------------------
    def find_lora(self, name: str) -> LoraMatch | None:
        """The LoRA ``name`` refers to, or None (see the module docstring for the rules)."""
        state = self._current()
        query = name.strip()
        # A forbidden alias (one two files claim) finds only the file with that stem.
        table = state.by_name if query.lower() in state.forbidden else state.by_alias
        found = table.get(query)
        if found is not None:
            return LoraMatch(found, "name")
        wanted = _strip_suffix(query.replace("\\", "/"), LORA_SUFFIXES)
        by_path = [e for e in state.loras if e.relative == wanted]
        if by_path:
            return LoraMatch(by_path[-1], "path")
        folded = wanted.casefold()
        hits = {
            e.path: e
            for e in state.loras
            if folded in {e.name.casefold(), e.alias.casefold(), e.relative.casefold()}
        }
        if len(hits) > 1:
            names = ", ".join(sorted(e.relative for e in hits.values())[:_MAX_SUGGESTIONS])
            raise ExtraNetworkError(
                f"LoRA '{name}' matches several files when case is ignored ({names}); write it exactly"
            )
        return LoraMatch(next(iter(hits.values())), "case") if hits else None

    def resolve_lora(self, name: str) -> LoraEntry:
        """The usable LoRA called ``name``; ExtraNetworkError when it is missing (naming the
        closest installed ones) or cannot be used (a pickle, a damaged file)."""
        match = self.find_lora(name)
        if match is None:
            raise ExtraNetworkError(
                self._missing("LoRA", name, [e.prompt_name for e in self.loras()], self.lora_folders())
            )
        if not match.entry.usable:
            raise ExtraNetworkError(f"LoRA '{name}': {match.entry.error}")
        return match.entry

    def lora_hash(self, entry: LoraEntry) -> str:
        """A1111's short LoRA hash (12 hex digits): ``sshs_model_hash`` if the file has one, else
        the SHA-256 of its data after the header. Reads the whole file once (then cached)."""
        if entry.metadata_hash:
            return entry.metadata_hash[:SHORT_HASH_LENGTH]
        return self.digests.digest(entry.path, "addnet")[:SHORT_HASH_LENGTH]

    def lora_by_hash(self, short_hash: str, *, compute: bool = True) -> LoraEntry | None:
        """The usable LoRA with A1111 short hash ``short_hash`` (restoring an image's ``Lora hashes``).

        Known hashes (metadata, cache) are tried first; with ``compute`` the others are hashed
        until one matches, which reads those files once (run it off the GUI thread).
        """
        return _by_hash(
            short_hash, [e for e in self.loras() if e.usable], self._known_lora_hash, self.lora_hash, compute
        )

    # -- embeddings -------------------------------------------------------------------------
    def find_embedding(self, name: str) -> EmbeddingEntry | None:
        """The embedding whose file stem is ``name`` (A1111 looks embeddings up by exact name)."""
        return self._current().embeddings_by_name.get(name.strip())

    def resolve_embedding(self, name: str) -> EmbeddingEntry:
        """The usable embedding called ``name``, or ExtraNetworkError naming the closest ones."""
        entry = self.find_embedding(name)
        if entry is None:
            names = [e.name for e in self.embeddings()]
            raise ExtraNetworkError(self._missing("embedding", name, names, self.embedding_folders()))
        if not entry.usable:
            raise ExtraNetworkError(f"embedding '{name}': {entry.error}")
        return entry

    def embedding_hash(self, entry: EmbeddingEntry) -> str:
        """A1111's ``TI hashes`` value: the whole file's SHA-256, first 12 hex digits."""
        return self.digests.digest(entry.path, "file")[:SHORT_HASH_LENGTH]

    def embedding_by_hash(self, short_hash: str, *, compute: bool = True) -> EmbeddingEntry | None:
        """The usable embedding with short hash ``short_hash``; see :meth:`lora_by_hash`."""
        usable = [e for e in self.embeddings() if e.usable]
        known = lambda e: self.digests.cached(e.path, "file")  # noqa: E731
        return _by_hash(short_hash, usable, known, self.embedding_hash, compute)

    # -- internals --------------------------------------------------------------------------
    def _current(self) -> _State:
        with self._lock:
            state = self._state
        if state is None:
            self.refresh()
            with self._lock:
                assert self._state is not None
                state = self._state
        return state

    def _known_lora_hash(self, entry: LoraEntry) -> str | None:
        return entry.metadata_hash or self.digests.cached(entry.path, "addnet")

    def _scan(
        self,
        roots: Iterable[Path],
        suffixes: tuple[str, ...],
        build: Callable[[Path, Path, str, set[str]], _Entry],
        known: Mapping[Path, _Entry],
    ) -> list[_Entry]:
        found: list[_Entry] = []
        for root in roots:
            label = self._label(root)
            for folder, names in walk_files(root, suffixes):
                siblings = _siblings(folder)
                for name in names:
                    entry = _rescan(folder / name, root, label, siblings, build, known)
                    if entry is not None:
                        found.append(entry)
        return found

    def _label(self, root: Path) -> str:
        try:
            return root.relative_to(self.models_dir.parent).as_posix()
        except ValueError:
            return root.name

    def _missing(self, what: str, name: str, names: Sequence[str], folders: Sequence[Path]) -> str:
        where = " or ".join(str(f) for f in folders)
        message = f"{what} '{name}' not found in {where}"
        close = closest_names(name, names)
        if close:
            return message + "; closest installed: " + ", ".join(close)
        if names:
            return (
                message + "; installed: " + ", ".join(sorted(set(names), key=str.casefold)[:_MAX_SUGGESTIONS])
            )
        return message + f"; no {what} is installed there"


@dataclass(frozen=True)
class _State:
    loras: tuple[LoraEntry, ...]
    all_embeddings: tuple[EmbeddingEntry, ...]  # every file, for rescans
    embeddings: tuple[EmbeddingEntry, ...]
    by_name: dict[str, LoraEntry]
    by_alias: dict[str, LoraEntry]
    forbidden: frozenset[str]
    embeddings_by_name: dict[str, EmbeddingEntry]

    @classmethod
    def build(cls, loras: list[LoraEntry], embeddings: list[EmbeddingEntry]) -> _State:
        by_name: dict[str, LoraEntry] = {}
        by_alias: dict[str, LoraEntry] = {}
        forbidden = set(_FORBIDDEN_ALIASES)
        for entry in loras:  # A1111's list_available_networks, in walk order
            by_name[entry.name] = entry
            if entry.alias in by_alias:
                forbidden.add(entry.alias.lower())
            by_alias[entry.name] = entry
            by_alias[entry.alias] = entry
        named = tuple(
            replace(e, prompt_name=e.name if e.alias.lower() in forbidden else e.alias) for e in loras
        )
        renamed = {e.path: e for e in named}
        by_name = {k: renamed[v.path] for k, v in by_name.items()}
        by_alias = {k: renamed[v.path] for k, v in by_alias.items()}
        ordered = tuple(sorted(_first_by_name(embeddings), key=lambda e: (e.name.lower(), e.name)))
        by_stem = {e.name: e for e in ordered}
        return cls(named, tuple(embeddings), ordered, by_name, by_alias, frozenset(forbidden), by_stem)


def walk_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[tuple[Path, list[str]]]:
    """(folder, file names) under ``root`` in A1111's order: folders by natural sort of their path,
    names by natural sort; only ``suffixes`` (any case); hidden folders skipped; loops cut."""
    folders: list[tuple[Path, list[str]]] = []
    seen: set[Path] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = Path(folder).resolve()
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        names = [f for f in files if f.lower().endswith(suffixes)]
        folders.append((Path(folder), sorted(names, key=natural_key)))
    folders.sort(key=lambda item: natural_key(str(item[0])))
    yield from ((folder, names) for folder, names in folders if names)


def closest_names(query: str, names: Iterable[str], limit: int = _MAX_SUGGESTIONS) -> list[str]:
    """Installed names that look like ``query`` (difflib ratio >= 0.5 on the name or its last part)."""

    def score(name: str) -> float:
        candidates = (name.casefold(), name.rsplit("/", 1)[-1].casefold())
        return max(difflib.SequenceMatcher(None, query.casefold(), c).ratio() for c in candidates)

    unique = sorted(set(names), key=str.casefold)
    ranked = sorted(((score(n), n) for n in unique), key=lambda item: -item[0])
    return [n for s, n in ranked if s >= 0.5][:limit]


def _by_hash(
    short_hash: str,
    entries: Sequence[_Entry],
    known: Callable[[_Entry], str | None],
    compute_hash: Callable[[_Entry], str],
    compute: bool,
) -> _Entry | None:
    wanted = short_hash.strip().lower()[:SHORT_HASH_LENGTH]
    if len(wanted) < 8:
        return None
    for entry in entries:
        value = known(entry)
        if value and value.lower().startswith(wanted):
            return entry
    if not compute:
        return None
    for entry in entries:
        if known(entry) is None:
            try:
                if compute_hash(entry).lower().startswith(wanted):
                    return entry
            except OSError:
                continue
    return None


def _rescan(
    path: Path,
    root: Path,
    label: str,
    siblings: set[str],
    build: Callable[[Path, Path, str, set[str]], _Entry],
    known: Mapping[Path, _Entry],
) -> _Entry | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    if stat.st_size == 0:  # A1111 skips empty files
        return None
    old = known.get(path)
    if old is not None and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return old
    try:
        return build(path, root, label, siblings)
    except OSError:  # removed or unreadable between the listing and now
        return None


def _first_by_name(entries: Sequence[EmbeddingEntry]) -> list[EmbeddingEntry]:
    first: dict[str, EmbeddingEntry] = {}
    for entry in entries:
        first.setdefault(entry.name, entry)
    return list(first.values())


def _child_folder(parent: Path, wanted: str) -> Path:
    exact = parent / wanted
    if exact.is_dir() or not parent.is_dir():
        return exact
    try:
        for child in parent.iterdir():
            if child.is_dir() and child.name.casefold() == wanted.casefold():
                return child
    except OSError:
        pass
    return exact


def _siblings(folder: Path) -> set[str]:
    try:
        return {child.name for child in folder.iterdir()}
    except OSError:
        return set()


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> str:
    lowered = name.lower()
    for suffix in suffixes:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name
