"""Model hashes as A1111 writes them ("AutoV2": the first 10 hex digits of the file's SHA-256).

Hashing a multi-GiB checkpoint takes seconds, so each result is cached in a small JSON file keyed
by resolved path, size and modification time: a file that changes is hashed again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from .errors import ModelError

AUTOV2_LENGTH = 10
CHUNK_BYTES = 1024 * 1024


def model_hash(path: Path, cache: HashCache | None = None) -> str | None:
    """A1111's short model hash of the file ``path``, or None for a folder (diffusers models).

    Uses ``cache`` (by default the per-user cache file) so each file is read once. Raises
    ModelError if the file is missing or unreadable.
    """
    if path.is_dir():
        return None
    return (cache or _default_cache()).sha256(path)[:AUTOV2_LENGTH]


class HashCache:
    """SHA-256 digests of files, remembered in a JSON file across runs. Safe to share between threads.

    ``path`` defaults to ``hashes.json`` in the user cache folder. A missing or corrupt cache file
    counts as empty and is rewritten on the next new hash; writes are atomic (temp file + replace).
    """

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            import platformdirs

            path = platformdirs.user_cache_path("StableNewQt") / "hashes.json"
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] | None = None

    def sha256(self, file: Path) -> str:
        """The full SHA-256 hex digest of ``file``, from the cache when size and mtime still match."""
        key, size, mtime_ns = _identity(file)
        with self._lock:
            cached = self._loaded().get(key)
        if cached and cached.get("size") == size and cached.get("mtime_ns") == mtime_ns:
            digest = cached.get("sha256")
            if isinstance(digest, str):
                return digest
        digest = _hash_file(file)
        with self._lock:
            self._loaded()[key] = {"size": size, "mtime_ns": mtime_ns, "sha256": digest}
            self._save()
        return digest

    def _loaded(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = _read_cache(self.path)
        return self._entries

    def _save(self) -> None:
        # A cache that cannot be written only costs a rehash next time.
        with contextlib.suppress(OSError):
            _write_atomic(self.path, json.dumps(self._entries, indent=1, sort_keys=True))


@functools.cache
def _default_cache() -> HashCache:
    return HashCache()


def _identity(file: Path) -> tuple[str, int, int]:
    try:
        resolved = file.resolve(strict=True)
        stat = resolved.stat()
    except OSError as exc:
        raise ModelError(f"cannot hash {file}: {exc.strerror or exc}") from exc
    return str(resolved), stat.st_size, stat.st_mtime_ns


def _hash_file(file: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    try:
        with file.open("rb", buffering=0) as stream:
            while count := stream.readinto(view):
                digest.update(view[:count])
    except OSError as exc:
        raise ModelError(f"cannot hash {file}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
