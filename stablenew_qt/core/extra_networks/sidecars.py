"""The files A1111 users keep beside a LoRA or embedding: preview image, user metadata, description.

* Preview (A1111 ``ui_extra_networks.find_preview``): for each extension, ``<stem>.<ext>`` then
  ``<stem>.preview.<ext>``. A1111 1.10 walks its extensions as a Python *set* (png, jpg, jpeg,
  webp, gif), whose order changes with the interpreter's string hashing; we walk them in that
  listed order, so a file with several previews always shows the same one.
* User metadata (A1111 ``extra_networks.get_user_metadata``): ``<stem>.json``, a JSON object whose
  keys the LoRA card reads: ``activation text``, ``preferred weight``, ``negative text``,
  ``sd version``, ``description``, ``notes``. A missing or unreadable file means no metadata.
* Description (``find_description``): ``<stem>.txt`` or ``<stem>.description.txt``; the user
  metadata's ``description`` wins.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PREVIEW_EXTENSIONS", "Sidecars", "find_preview", "read_sidecars"]

log = logging.getLogger(__name__)

PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")
_MAX_JSON_BYTES = 1024 * 1024
_MAX_TEXT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Sidecars:
    """What the files beside one model file say (empty strings and None when absent)."""

    preview: Path | None = None
    activation_text: str = ""
    preferred_weight: float | None = None
    negative_text: str = ""
    sd_version: str = ""  # A1111's "SD1" / "SD2" / "SDXL" / "Unknown", as the user chose it
    description: str = ""
    notes: str = ""


def read_sidecars(model_file: Path, siblings: Collection[str] | None = None) -> Sidecars:
    """The sidecar files of ``model_file``. ``siblings`` (the names in its folder, if the caller
    listed it already) saves a stat per candidate; without it each candidate is stat'ed."""
    names = set(siblings) if siblings is not None else _list(model_file.parent)
    stem = model_file.name[: -len(model_file.suffix)] if model_file.suffix else model_file.name
    user = _user_metadata(model_file.parent / f"{stem}.json", names)
    description = _text(user.get("description")) or _description(model_file.parent, stem, names)
    return Sidecars(
        preview=find_preview(model_file.parent, stem, names),
        activation_text=_text(user.get("activation text")),
        preferred_weight=_weight(user.get("preferred weight")),
        negative_text=_text(user.get("negative text")),
        sd_version=_text(user.get("sd version")),
        description=description,
        notes=_text(user.get("notes")),
    )


def find_preview(folder: Path, stem: str, names: Collection[str]) -> Path | None:
    """The preview image of ``stem`` among ``names`` (exact spelling first, then ignoring case)."""
    candidates = [f"{stem}{middle}{ext}" for ext in PREVIEW_EXTENSIONS for middle in (".", ".preview.")]
    for candidate in candidates:
        if candidate in names:
            return folder / candidate
    folded = {name.casefold(): name for name in names}
    for candidate in candidates:
        if candidate.casefold() in folded:
            return folder / folded[candidate.casefold()]
    return None


def _list(folder: Path) -> set[str]:
    try:
        return {child.name for child in folder.iterdir()}
    except OSError:
        return set()


def _user_metadata(path: Path, names: Collection[str]) -> Mapping[str, Any]:
    if path.name not in names:
        return {}
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            log.warning("ignoring %s: larger than %d bytes", path, _MAX_JSON_BYTES)
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        log.warning("ignoring the user metadata in %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _description(folder: Path, stem: str, names: Collection[str]) -> str:
    for name in (f"{stem}.txt", f"{stem}.description.txt"):
        if name in names:
            try:
                with (folder / name).open("rb") as stream:
                    return stream.read(_MAX_TEXT_BYTES).decode("utf-8", errors="replace").strip()
            except OSError:
                continue
    return ""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _weight(value: Any) -> float | None:
    """A1111 treats a preferred weight of 0 (its default) as "not set"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        weight = float(value)
    except ValueError:
        return None
    return weight if weight and math.isfinite(weight) else None
