"""Where and how a run's files are written: all at once, never overwriting, never outside the output folder.

A run's files live in ``<output_dir>/<YYYY-MM-DD>/<run_id>/`` (see :class:`RunOutputs`)::

    00000-1234.png  00001-1235.png  manifest.json  intermediates/00000-1234-txt2img.png

While the run is going they are written into a hidden staging folder beside it,
``<YYYY-MM-DD>/.<run_id>.partial/``; :meth:`RunOutputs.publish` then renames that folder into place
in one step that never replaces anything (:func:`~.atomic_files.rename_no_replace`). So at any
moment, a kill included, the output folder shows either the whole run or nothing of it. Each file
is itself written atomically (:func:`~.atomic_files.atomic_write_bytes`: temp file, fsync,
no-overwrite link) and every path is built with :func:`~.atomic_files.safe_join`.

A staging folder left by a killed process is removed by the queue's crash recovery
(:func:`discard_partial_runs`); a run published just before the kill is recognised by its
manifest (:func:`published_run_images`), so a resumed job never makes its images twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import platformdirs
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .atomic_files import (
    atomic_replace_bytes,
    atomic_write_bytes,
    fsync_folder,
    rename_no_replace,
    safe_join,
)
from .errors import ConfigError, OutputError, shorten
from .files import FileRefused, read_regular_file
from .manifest import APP_NAME, MANIFEST_NAME, RUN_STATUSES, build_manifest

__all__ = [
    "APP_NAME",
    "MANIFEST_NAME",
    "RUN_STATUSES",
    "OutputSettings",
    "RunOutputs",
    "atomic_replace_bytes",
    "atomic_write_bytes",
    "build_manifest",
    "check_output_root",
    "discard_partial_runs",
    "publish_run_files",
    "published_run_images",
    "safe_join",
]

APP_DIR_NAME = "StableNewQt"
INTERMEDIATES_DIR = "intermediates"
PARTIAL_SUFFIX = ".partial"
_MAX_NUMBER_ATTEMPTS = 100_000
_MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_RUN_ID = re.compile(r"[0-9A-Za-z_-]+")
_FINAL_IMAGE = re.compile(r"[0-9]{5,}-[0-9]+\.png")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: The most a worker's run may send back: files, bytes in all, folder depth.
MAX_RUN_FILES = 10_000
MAX_RUN_BYTES = 8 * 2**30
_MAX_RUN_DEPTH = 4


def app_data_dir() -> Path:
    """The per-user data folder of StableNew Qt (for example ``~/.local/share/StableNewQt`` on Linux)."""
    return platformdirs.user_data_path(APP_DIR_NAME, appauthor=False)


def default_output_dir() -> Path:
    """Where runs are written unless the user picks another folder: ``<user data dir>/runs``."""
    return app_data_dir() / "runs"


def new_run_id(now: datetime) -> str:
    """A fresh run id such as ``"173015-3fa9c1"``: ``now`` as HHMMSS plus 6 random hex digits.

    Ids of one day sort by start time (to the second); the random part keeps runs started in the
    same second apart.
    """
    return f"{now:%H%M%S}-{secrets.token_hex(3)}"


def partial_run_name(run_id: str) -> str:
    """The name of a run's hidden staging folder: ``.<run_id>.partial``."""
    return f".{run_id}{PARTIAL_SUFFIX}"


def encode_png(image: Image.Image, pnginfo: PngInfo | None = None) -> bytes:
    """Encode ``image`` as PNG bytes in memory, with ``pnginfo`` text chunks if given."""
    buffer = BytesIO()
    image.save(buffer, format="PNG", pnginfo=pnginfo)
    return buffer.getvalue()


def json_default(value: Any) -> Any:
    """``json.dumps`` ``default=`` hook for the values our records carry: paths, datetimes,
    read-only mappings and sets. Anything else raises TypeError naming the type."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot write a {type(value).__name__} as JSON: {value!r}")


@dataclass(frozen=True)
class OutputSettings:
    """Where runs go and whether per-stage intermediate images are kept."""

    output_dir: Path
    save_intermediates: bool = False


def check_output_root(root: Path) -> None:
    """ConfigError unless ``root`` is a folder or can be created as one.

    Refuses a ``root`` that is a file, and a dangling symbolic link at ``root`` or on the way to
    it (following one would create folders wherever it points).
    """
    shown = repr(shorten(str(root)))
    for candidate in (root, *root.parents):
        try:
            if not os.path.lexists(candidate):
                continue
            is_link, exists, is_dir = candidate.is_symlink(), candidate.exists(), candidate.is_dir()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the output folder {shown} cannot be used: {exc}", "output_dir") from None
        where = "" if candidate == root else f" ({shorten(str(candidate))!r} on the way to it)"
        if is_link and not exists:
            raise ConfigError(
                f"the output folder {shown}{where} is a symbolic link to "
                f"{shorten(os.readlink(candidate))!r}, which does not exist: create that folder or "
                "choose another output folder",
                "output_dir",
            )
        if not is_dir:
            raise ConfigError(
                f"the output folder {shown}{where} is a file, not a folder: choose another output folder",
                "output_dir",
            )
        return


class RunOutputs:
    """The files of one run, published together as ``<output_dir>/<YYYY-MM-DD>/<run_id>/``.

    Files are written into the hidden staging folder (:attr:`staging_path`, created on the first
    write) and appear in :attr:`path` only when :meth:`publish` renames the whole folder there; a
    run that writes nothing leaves no folder. Paths returned and listed here are *final* paths,
    where the files are once published. Final images are ``NNNNN-<seed>.png``, intermediates
    ``intermediates/NNNNN-<seed>-<stage>.png`` (5-digit counters from 00000). Writes from several
    threads are serialised. Write and publish failures (a full disk) raise
    :class:`~.errors.OutputError`; :meth:`discard` then removes what was staged.
    """

    def __init__(self, output: OutputSettings | Path, run_id: str, started: datetime) -> None:
        """``output`` is the output folder, or settings naming it; ``started`` dates the folder.

        Raises ConfigError when the output folder cannot hold runs (see :func:`check_output_root`)
        or the date folder resolves outside it (a symbolic link).
        """
        root = Path(output.output_dir if isinstance(output, OutputSettings) else output)
        check_output_root(root)
        date = f"{started:%Y-%m-%d}"
        try:
            self._path = safe_join(root, date, run_id)
            self._staging = safe_join(root, date, partial_run_name(run_id))
        except ValueError as exc:
            raise ConfigError(str(exc), "output_dir") from None
        self._lock = threading.Lock()
        self._next_image = 0
        self._next_intermediate = 0
        self._written: list[Path] = []
        self._images: list[Path] = []
        self._published = False

    @property
    def path(self) -> Path:
        """The run folder (it exists only once published)."""
        return self._path

    @property
    def staging_path(self) -> Path:
        """The hidden folder the files are written to until :meth:`publish`."""
        return self._staging

    @property
    def published(self) -> bool:
        return self._published

    @property
    def written(self) -> tuple[Path, ...]:
        """Every file this run wrote (final paths), in the order written."""
        with self._lock:
            return tuple(self._written)

    @property
    def images(self) -> tuple[Path, ...]:
        """The final images this run wrote (final paths), in the order written."""
        with self._lock:
            return tuple(self._images)

    def save_image(self, image: Image.Image, *, seed: int, pnginfo: PngInfo | None = None) -> Path:
        """Stage the next final image as ``NNNNN-<seed>.png``; returns its final path."""
        data = encode_png(image, pnginfo)
        with self._lock:
            path, self._next_image = self._write_numbered((), f"-{seed}.png", self._next_image, data)
            self._images.append(path)
        return path

    def save_intermediate(
        self, image: Image.Image, *, stage: str, seed: int, pnginfo: PngInfo | None = None
    ) -> Path:
        """Stage a stage's image as ``intermediates/NNNNN-<seed>-<stage>.png``; returns its final path.

        Always writes; whether intermediates are kept (``OutputSettings.save_intermediates``) is
        the caller's decision.
        """
        data = encode_png(image, pnginfo)
        with self._lock:
            path, self._next_intermediate = self._write_numbered(
                (INTERMEDIATES_DIR,), f"-{seed}-{stage}.png", self._next_intermediate, data
            )
        return path

    def write_manifest(self, data: Mapping[str, Any]) -> Path:
        """Stage ``manifest.json`` (UTF-8, indented, strict JSON). FileExistsError if already written."""
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=json_default)
        with self._lock:
            path = self._write((MANIFEST_NAME,), (text + "\n").encode("utf-8"))
        return path

    def publish(self) -> Path:
        """Move the staged files into :attr:`path` in one rename that never replaces anything.

        Returns :attr:`path`. Does nothing when nothing was written or it was published already.
        OutputError (and nothing published) when the rename fails or the run folder exists.
        """
        with self._lock:
            if self._published or not self._written:
                return self._path
            for folder in (self._staging / INTERMEDIATES_DIR, self._staging):
                if folder.is_dir():  # the files are fsynced; their folder entries now too
                    fsync_folder(folder)
            try:
                rename_no_replace(self._staging, self._path)
            except FileExistsError:
                raise OutputError(
                    f"a run folder {shorten(str(self._path))!r} exists already; nothing was overwritten "
                    "and this run was not kept: run it again"
                ) from None
            except OSError as exc:
                raise OutputError(self._failure("publish the run", exc)) from exc
            fsync_folder(self._path.parent)
            self._published = True
            return self._path

    def keep_only_intermediates(self) -> None:
        """Delete the staged final images and manifest of a run that will not complete, keeping
        its intermediates (a failed run publishes those with a manifest saying how it ended)."""
        with self._lock:
            finals = [p for p in self._written if p.parent == self._path]
            for final in finals:
                with contextlib.suppress(FileNotFoundError):
                    (self._staging / final.name).unlink()
            self._written = [p for p in self._written if p.parent != self._path]
            self._images.clear()

    def discard(self) -> None:
        """Delete everything staged (nothing of the run stays), and the date folder if it is empty."""
        with self._lock:
            if self._published:
                return
            shutil.rmtree(self._staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                self._staging.parent.rmdir()  # only when no other run is in it
            self._written.clear()
            self._images.clear()

    def _write_numbered(
        self, folder: tuple[str, ...], suffix: str, start: int, data: bytes
    ) -> tuple[Path, int]:
        """Write under the first free ``NNNNN<suffix>`` from ``start``; returns (path, next number)."""
        for number in range(start, start + _MAX_NUMBER_ATTEMPTS):
            try:
                return self._write((*folder, f"{number:05d}{suffix}"), data), number + 1
            except FileExistsError:
                continue
        raise OutputError(f"no free file name ending in {suffix!r} in {str(self._staging)!r}")

    def _write(self, parts: tuple[str, ...], data: bytes) -> Path:
        if self._published:
            raise OutputError(f"run {self._path.name} is published already; it takes no more files")
        target = safe_join(self._staging, *parts)
        self._make_folder(target.parent)
        try:
            atomic_write_bytes(target, data)
        except FileExistsError:
            raise
        except OSError as exc:
            raise OutputError(self._failure(f"write {'/'.join(parts)}", exc)) from exc
        final = self._path.joinpath(*parts)
        self._written.append(final)
        return final

    def _make_folder(self, folder: Path) -> None:
        for _ in range(3):  # another run's discard() may remove the shared date folder meanwhile
            try:
                folder.mkdir(parents=True, exist_ok=True)
                return
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise OutputError(self._failure("create the run folder", exc)) from exc
        raise OutputError(f"cannot create the run folder in {shorten(str(self._path.parent))!r}")

    def _failure(self, what: str, exc: OSError) -> str:
        return (
            f"cannot {what} in {shorten(str(self._path.parent))!r}: {exc.strerror or exc}; free some space "
            "or choose another output folder (nothing of this run was kept)"
        )


# --- a run made elsewhere ----------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedRun:
    """A run folder :func:`publish_run_files` wrote: its final images and manifest."""

    folder: Path
    images: tuple[Path, ...]
    manifest: Path | None


def publish_run_files(
    output_root: Path,
    date: str,
    run_id: str,
    files: Mapping[str, bytes],
    manifest_extra: Mapping[str, Any] | None = None,
) -> PublishedRun:
    """Write a run that ran in another process (a worker) into ``<output_root>/<date>/<run_id>/``,
    all at once, exactly as :meth:`RunOutputs.publish` does: every file is staged in the hidden
    ``.<run_id>.partial`` folder with :func:`~.atomic_files.atomic_write_bytes`, then one
    :func:`~.atomic_files.rename_no_replace` makes the folder appear whole.

    ``files`` maps POSIX paths inside the run folder to bytes. The sender is not trusted with
    paths: every one must be a relative path of portable names (no ``..``, no absolute path, no
    backslash, no hidden name), checked with :func:`~.atomic_files.safe_join`; ``date`` must be
    ``YYYY-MM-DD`` and ``run_id`` a run id. ``manifest_extra`` keys are added to ``manifest.json``
    (which must be a JSON object naming this run). Raises OutputError, with nothing written, for a
    refused path or manifest, too many files, or a failed write or publish.
    """
    if not _DATE.fullmatch(date) or not _RUN_ID.fullmatch(run_id):
        raise OutputError(f"refused a run from a worker: bad run folder {date!r}/{run_id!r}")
    if len(files) > MAX_RUN_FILES or sum(len(data) for data in files.values()) > MAX_RUN_BYTES:
        raise OutputError(f"refused run {run_id} from a worker: more than {MAX_RUN_FILES} files or 8 GiB")
    check_output_root(output_root)
    try:
        folder = safe_join(output_root, date, run_id)
        staging = safe_join(output_root, date, partial_run_name(run_id))
        targets = [(_run_file_parts(name), data) for name, data in sorted(files.items())]
        for parts, _data in targets:
            safe_join(staging, *parts)  # raises ValueError naming the bad part
    except ValueError as exc:
        raise OutputError(f"refused run {run_id} from a worker: {exc}") from None
    manifest = _manifest_with(files.get(MANIFEST_NAME), run_id, manifest_extra)
    if os.path.lexists(folder) or os.path.lexists(staging):
        raise OutputError(f"a run folder {shorten(str(folder))!r} exists already; nothing was overwritten")
    written: list[Path] = []
    try:
        for parts, data in targets:
            if parts == (MANIFEST_NAME,) and manifest is not None:
                data = manifest
            target = safe_join(staging, *parts)  # again: a link made meanwhile cannot lead out
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, data)
            written.append(folder.joinpath(*parts))
        for sub in sorted({p.parent for p in staging.rglob("*")} | {staging}, key=lambda p: -len(p.parts)):
            fsync_folder(sub)
        rename_no_replace(staging, folder)
        fsync_folder(folder.parent)
    except (OSError, ValueError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only when no other run is in it
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise OutputError(
            f"cannot write run {run_id} in {shorten(str(folder.parent))!r}: {reason}; free some space "
            "or choose another output folder (nothing of this run was kept)"
        ) from exc
    images = tuple(p for p in written if p.parent == folder and _FINAL_IMAGE.fullmatch(p.name))
    manifest_path = folder / MANIFEST_NAME if MANIFEST_NAME in files else None
    return PublishedRun(folder, images, manifest_path)


def _run_file_parts(name: str) -> tuple[str, ...]:
    if not isinstance(name, str) or "\\" in name or name.startswith("/"):
        raise ValueError(f"unsafe file name {name!r}: give a relative POSIX path")
    parts = tuple(name.split("/"))
    if len(parts) > _MAX_RUN_DEPTH or any(part.startswith(".") for part in parts):
        raise ValueError(f"unsafe file name {name!r}: no hidden names, at most {_MAX_RUN_DEPTH} levels")
    return parts


def _manifest_with(data: bytes | None, run_id: str, extra: Mapping[str, Any] | None) -> bytes | None:
    if data is None:
        return None
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise OutputError(f"refused run {run_id} from a worker: its manifest.json is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("run_id") != run_id:
        raise OutputError(f"refused run {run_id} from a worker: its manifest.json is for another run")
    manifest.update(extra or {})
    text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False, default=json_default)
    return (text + "\n").encode("utf-8")


# --- crash recovery ----------------------------------------------------------------------------


def discard_partial_runs(output_root: Path, run_id: str) -> tuple[Path, ...]:
    """Delete the staging folders (``<date>/.<run_id>.partial/``) a killed run left behind.

    Only for a run whose process is gone (the queue's crash recovery knows). Returns the files
    deleted. Never follows a symbolic link out of the output folder.
    """
    if not _RUN_ID.fullmatch(run_id):
        return ()
    removed: list[Path] = []
    for folder in output_root.glob(f"*/{partial_run_name(run_id)}"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        files = sorted(p for p in folder.rglob("*") if not p.is_dir())
        shutil.rmtree(folder, ignore_errors=True)
        removed += [p for p in files if not os.path.lexists(p)]
        with contextlib.suppress(OSError):
            folder.parent.rmdir()
    return tuple(removed)


def published_run_images(output_root: Path | None, run_id: str | None) -> tuple[Path, ...] | None:
    """The final images of run ``run_id`` if it was published complete, else None (also when
    either argument is None).

    A run is complete when ``<date>/<run_id>/manifest.json`` says COMPLETED for this run id: its
    process was killed after publishing but before anyone recorded that.
    """
    if output_root is None or run_id is None or not _RUN_ID.fullmatch(run_id):
        return None
    for folder in sorted(output_root.glob(f"*/{run_id}")):
        try:
            data = json.loads(read_regular_file(folder / MANIFEST_NAME, _MAX_MANIFEST_BYTES))
        except (FileRefused, ValueError, RecursionError):
            continue
        if isinstance(data, dict) and data.get("run_id") == run_id and data.get("status") == "COMPLETED":
            names = data.get("images")
            names = names if isinstance(names, list) else []
            return tuple(folder / n for n in names if isinstance(n, str) and _FINAL_IMAGE.fullmatch(n))
    return None
