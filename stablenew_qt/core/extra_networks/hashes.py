"""The hashes A1111 writes for extra networks, computed lazily and remembered across runs.

* ``Lora hashes``: kohya's "addnet" hash, the SHA-256 of a ``.safetensors`` file's bytes after the
  header (A1111 ``modules/hashes.py: addnet_hash_safetensors``), first 12 hex digits; a file's
  ``sshs_model_hash`` metadata is used instead when present (A1111 ``network.py``). The bytes after
  the header do not change when a tool rewrites the metadata, which is why kohya chose it.
* ``TI hashes``: the SHA-256 of the whole embedding file (A1111 ``textual_inversion.py`` calls
  ``hashes.sha256(filename, ...)`` without the addnet flag), first 12 hex digits.

Digests are cached in a JSON file keyed by kind and resolved path and invalidated by size and
modification time, like ``engine/hashing.py`` does for checkpoints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import threading
from pathlib import Path
from typing import Any, Literal

from ..outputs import atomic_replace_bytes

__all__ = ["SHORT_HASH_LENGTH", "DigestCache", "DigestKind", "addnet_sha256", "file_sha256"]

#: A1111's ``shorthash`` length for LoRAs and embeddings.
SHORT_HASH_LENGTH = 12
_CHUNK = 1024 * 1024

DigestKind = Literal["addnet", "file"]


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of every byte of ``path``. Raises OSError when it cannot be read."""
    return _sha256_from(path, 0)


def addnet_sha256(path: Path) -> str:
    """SHA-256 hex digest of ``path``'s bytes after its safetensors header (8-byte length + JSON).

    The header length is taken as written, as kohya and A1111 do; a length past the end of the
    file hashes no bytes. Raises OSError when the file cannot be read.
    """
    with path.open("rb") as stream:
        prefix = stream.read(8)
    offset = 8 + struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else len(prefix)
    return _sha256_from(path, offset)


def _sha256_from(path: Path, offset: int) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as stream:
        stream.seek(offset)
        while count := stream.readinto(view):
            digest.update(view[:count])
    return digest.hexdigest()


class DigestCache:
    """SHA-256 digests of extra-network files, kept in a JSON file. Safe to share between threads.

    ``path`` None keeps the cache in memory only. A corrupt cache file counts as empty; writes are
    atomic (temp file + replace) and a cache that cannot be written costs only a rehash later.
    ``computed`` counts digests actually computed (cache misses), for tests and benchmarks.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] | None = None
        self.computed = 0

    def digest(self, file: Path, kind: DigestKind) -> str:
        """The digest of ``kind`` for ``file``: from the cache while size and mtime match.

        Raises OSError when the file cannot be read.
        """
        resolved = file.resolve(strict=True)
        stat = resolved.stat()
        key = f"{kind}:{resolved}"
        with self._lock:
            cached = self._loaded().get(key)
        if cached and cached.get("size") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns:
            value = cached.get("sha256")
            if isinstance(value, str):
                return value
        value = addnet_sha256(resolved) if kind == "addnet" else file_sha256(resolved)
        with self._lock:
            self.computed += 1
            self._loaded()[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": value}
            self._save()
        return value

    def cached(self, file: Path, kind: DigestKind) -> str | None:
        """The cached digest, or None when it would have to be computed (never reads the file)."""
        try:
            resolved = file.resolve(strict=True)
            stat = resolved.stat()
        except OSError:
            return None
        with self._lock:
            cached = self._loaded().get(f"{kind}:{resolved}")
        if cached and cached.get("size") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns:
            value = cached.get("sha256")
            return value if isinstance(value, str) else None
        return None

    def _loaded(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = _read(self.path) if self.path is not None else {}
        return self._entries

    def _save(self) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self._entries, indent=1, sort_keys=True)
            atomic_replace_bytes(self.path, text.encode("utf-8"))


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}
