"""Restoring an image's ``Lora hashes`` and ``TI hashes``: which local files they mean, what is missing.

A1111 writes ``Lora hashes: "name: 0123456789ab, other: ..."`` (the name as written in the tag,
``:`` and ``,`` removed) and ``TI hashes: "name: 0123456789ab, ..."``. When an image is pasted,
A1111 (``lora_script.infotext_pasted``) replaces each ``<lora:name:`` whose hash belongs to a
local file by that file's name, so the hash wins over the name. We do the same for LoRAs, then fall
back to the name. Embeddings are matched by name (A1111 does not restore them at all); when a
name is missing but a local file has the hash, its whole-word occurrences are renamed.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .catalog import ExtraNetworksCatalog
from .entries import EmbeddingEntry

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = [
    "RestoredNetwork",
    "parse_network_hashes",
    "restore_embedding_names",
    "restore_lora_names",
    "restore_networks_in_config",
]

_LORA_TAG = re.compile(r"<(lora|lyco):([^:>]+)([:>])")
Found = Literal["hash", "name", "missing"]


@dataclass(frozen=True)
class RestoredNetwork:
    """What became of one network named in an image: ``found`` by ``"hash"`` or ``"name"``, or
    ``"missing"``; ``local`` is the name now used (None when missing). ``hash_differs`` marks a
    name match whose file has another hash than the image's (the image may not reproduce)."""

    kind: Literal["lora", "embedding"]
    written: str
    local: str | None
    found: Found
    hash_differs: bool = False

    @property
    def message(self) -> str:
        """One line for the user."""
        what = "LoRA" if self.kind == "lora" else "embedding"
        if self.found == "missing":
            return f"{what} '{self.written}' is not installed (neither its name nor its hash was found)"
        if self.found == "hash" and self.local != self.written:
            return f"{what} '{self.written}' was found by its hash as '{self.local}'"
        if self.hash_differs:
            return f"{what} '{self.written}' is installed but is a different file (its hash differs)"
        return f"{what} '{self.written}' found"


def parse_network_hashes(value: str) -> dict[str, str]:
    """``"a: 0123456789ab, b: ..."`` (quoted or not) as ``{"a": "0123456789ab", ...}`` (A1111's split)."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    pairs: dict[str, str] = {}
    for item in text.split(","):
        name, sep, digest = item.strip().partition(":")
        if sep and name.strip() and digest.strip():
            pairs[name.strip()] = digest.strip().lower()
    return pairs


def restore_lora_names(
    prompt: str, lora_hashes: str, catalog: ExtraNetworksCatalog, *, compute: bool = True
) -> tuple[str, list[RestoredNetwork]]:
    """``prompt`` with each LoRA tag's name replaced by the local file with the image's hash, and
    what was found for each name (first mention order). ``compute`` lets the hash lookup read files
    whose hash is not cached yet (run it off the GUI thread)."""
    hashes = parse_network_hashes(lora_hashes)
    notes: dict[str, RestoredNetwork] = {}

    def replace(match: re.Match[str]) -> str:
        written = match.group(2)
        note = notes.get(written) or _restore_lora(written, hashes, catalog, compute)
        notes[written] = note
        name = note.local if note.local is not None else written
        return f"<{match.group(1)}:{name}{match.group(3)}"

    return _LORA_TAG.sub(replace, prompt), list(notes.values())


def restore_embedding_names(
    prompts: tuple[str, str], ti_hashes: str, catalog: ExtraNetworksCatalog, *, compute: bool = True
) -> tuple[tuple[str, str], list[RestoredNetwork]]:
    """The (prompt, negative prompt) pair with embeddings renamed where only a hash matched, and
    what was found for each name the image's ``TI hashes`` lists."""
    notes: list[RestoredNetwork] = []
    prompt, negative = prompts
    for written, digest in parse_network_hashes(ti_hashes).items():
        entry = catalog.find_embedding(written)
        if entry is not None:
            differs = _safe_hash(catalog, entry) not in (None, digest[:12])
            notes.append(RestoredNetwork("embedding", written, entry.name, "name", differs))
            continue
        found = catalog.embedding_by_hash(digest, compute=compute)
        if found is None:
            notes.append(RestoredNetwork("embedding", written, None, "missing"))
            continue
        word = re.compile(rf"(?<!\w){re.escape(written)}(?!\w)", re.IGNORECASE)
        prompt, negative = (word.sub(found.name, text) for text in (prompt, negative))
        notes.append(RestoredNetwork("embedding", written, found.name, "hash"))
    return (prompt, negative), notes


def _restore_lora(
    written: str, hashes: dict[str, str], catalog: ExtraNetworksCatalog, compute: bool
) -> RestoredNetwork:
    digest = hashes.get(written.replace(":", "").replace(",", ""))
    if digest:
        by_hash = catalog.lora_by_hash(digest, compute=compute)
        if by_hash is not None:
            return RestoredNetwork("lora", written, by_hash.prompt_name, "hash")
    match = catalog.find_lora(written)
    if match is None or not match.entry.usable:
        return RestoredNetwork("lora", written, None, "missing")
    differs = False
    if digest:
        with contextlib.suppress(OSError):
            differs = catalog.lora_hash(match.entry) != digest[:12]
    return RestoredNetwork("lora", written, written, "name", differs)


def _safe_hash(catalog: ExtraNetworksCatalog, entry: EmbeddingEntry) -> str | None:
    try:
        return catalog.embedding_hash(entry)
    except OSError:
        return None


def restore_networks_in_config(
    config: RunConfig, parameters: str, catalog: ExtraNetworksCatalog, *, compute: bool = True
) -> tuple[RunConfig, list[RestoredNetwork]]:
    """``config`` (read from an image whose infotext is ``parameters``) with its prompts' LoRA and
    embedding names restored from the image's ``Lora hashes`` / ``TI hashes`` (see
    :func:`restore_lora_names`), and what was found. The top-level prompt and negative prompt,
    the hires prompts and the img2img override are renamed; nothing else changes."""
    from ..infotext_parse import parse_infotext

    params = parse_infotext(parameters).params
    lora_hashes, ti_hashes = params.get("Lora hashes", ""), params.get("TI hashes", "")
    notes: dict[tuple[str, str], RestoredNetwork] = {}

    def loras(text: str) -> str:
        if "<" not in text:
            return text
        renamed, found = restore_lora_names(text, lora_hashes, catalog, compute=compute)
        notes.update({(n.kind, n.written): n for n in found})
        return renamed

    def embeddings(pair: tuple[str, str]) -> tuple[str, str]:
        if not ti_hashes:
            return pair
        renamed, found = restore_embedding_names(pair, ti_hashes, catalog, compute=compute)
        notes.update({(n.kind, n.written): n for n in found})
        return renamed

    prompt, negative = embeddings((loras(config.prompt), loras(config.negative_prompt)))
    t2i = config.txt2img
    hires = embeddings((loras(t2i.hires_prompt), loras(t2i.hires_negative_prompt)))
    updates: dict[str, object] = {
        "prompt": prompt,
        "negative_prompt": negative,
        "txt2img": t2i.model_copy(update={"hires_prompt": hires[0], "hires_negative_prompt": hires[1]}),
    }
    i2i = config.img2img
    if i2i.prompt is not None or i2i.negative_prompt is not None:
        pair = embeddings((loras(i2i.prompt or ""), loras(i2i.negative_prompt or "")))
        updates["img2img"] = i2i.model_copy(
            update={
                "prompt": None if i2i.prompt is None else pair[0],
                "negative_prompt": None if i2i.negative_prompt is None else pair[1],
            }
        )
    return config.model_copy(update=updates), list(notes.values())
