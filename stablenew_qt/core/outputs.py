"""Where and how a run's files are written: atomically, never overwriting, never outside the output folder.

Every file goes through :func:`atomic_write_bytes`: the bytes land in a temporary file in the same
folder, are flushed and fsynced, and are then published under their final name with ``os.link``,
which fails if that name exists (on Windows ``os.rename``, which never overwrites there). A reader
therefore sees either no file or the whole file, an existing file is never replaced, and no temporary
file survives an error. Every path is built with :func:`safe_join`, which refuses names that could
leave the output folder.

A run's files live in ``<output_dir>/<YYYY-MM-DD>/<run_id>/`` (see :class:`RunOutputs`)::

    00000-1234.png  00001-1235.png  manifest.json  intermediates/00000-1234-txt2img.png
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import platformdirs
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import __version__
from .config import RunConfig

APP_NAME = "StableNew Qt"
APP_DIR_NAME = "StableNewQt"
MANIFEST_NAME = "manifest.json"
INTERMEDIATES_DIR = "intermediates"
RUN_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")

# On Windows os.rename fails with FileExistsError when the target exists; elsewhere it overwrites,
# so POSIX publishes with os.link instead.
_RENAME_NEVER_OVERWRITES = os.name == "nt"
# What link(2) says on filesystems without hard links (exFAT/FAT on Linux, some FUSE and SMB mounts).
_NO_HARDLINK_ERRNOS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
_WINDOWS_INVALID_CHARS = frozenset('<>:"|?*')
_WINDOWS_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)
_MAX_NAME_BYTES = 255
_MAX_NUMBER_ATTEMPTS = 100_000


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


# --- paths -------------------------------------------------------------------------------------


def _name_problem(part: str) -> str | None:
    """Why ``part`` is not a safe single file or folder name, or None when it is."""
    if not part:
        return "is empty"
    if "\0" in part:
        return "contains a NUL character"
    if PurePosixPath(part).is_absolute() or PureWindowsPath(part).anchor:
        return "is an absolute path"
    if "/" in part or "\\" in part:
        return "contains a path separator; pass each folder name as its own part"
    if part in (".", ".."):
        return "refers to the current or parent folder"
    if any(ord(c) < 32 for c in part) or _WINDOWS_INVALID_CHARS.intersection(part):
        return 'contains a control character or one of < > : " | ? *'
    if part[-1] in ". ":
        return "ends with a dot or a space, which Windows drops"
    if part.split(".")[0].strip(" ").upper() in _WINDOWS_RESERVED_NAMES:
        return "is a name Windows reserves for a device (CON, PRN, AUX, NUL, COM1, LPT1, ...)"
    if len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        return f"is longer than {_MAX_NAME_BYTES} bytes"
    return None


def safe_join(root: Path, *parts: str) -> Path:
    """``root`` joined with ``parts``, resolved, guaranteed to lie inside ``root``.

    Each part must be a single portable name. Raises ValueError naming the bad part when one is
    absolute, ``.``/``..``, contains a separator, NUL, a control character or a character Windows
    forbids, ends in a dot or space, is a reserved Windows device name, or when the resolved result
    (after following symbolic links) is outside ``root``.
    """
    for part in parts:
        problem = _name_problem(part) if isinstance(part, str) else f"is a {type(part).__name__}, not a str"
        if problem:
            raise ValueError(f"unsafe output path part {part!r}: it {problem}")
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if not target.is_relative_to(base):
        raise ValueError(
            f"output path {'/'.join(parts)!r} resolves to {str(target)!r}, outside the output folder "
            f"{str(base)!r}; a symbolic link inside the output folder probably points elsewhere"
        )
    return target


# --- atomic writes -----------------------------------------------------------------------------


def _write_temp(folder: Path, name: str, data: bytes) -> Path:
    # The name is shortened so that prefix + random part + suffix stays within 255 bytes.
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name[:48]}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _remove_quietly(tmp)
        raise
    return tmp


def _publish(tmp: Path, final: Path) -> None:
    """Give ``tmp`` the name ``final`` without ever replacing an existing ``final``."""
    if _RENAME_NEVER_OVERWRITES:
        os.rename(tmp, final)
        return
    try:
        os.link(tmp, final)
    except OSError as exc:
        if exc.errno not in _NO_HARDLINK_ERRNOS:
            raise
        # No hard links here (exFAT/FAT drives, some network shares): reserve the name with an
        # exclusive create, then atomically swap our own empty placeholder for the full file.
        # A reader may see the empty placeholder for an instant, never a half-written file.
        fd = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        os.replace(tmp, final)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fsync_folder(folder: Path) -> None:
    # Makes the new directory entry durable. Windows cannot open folders, and some filesystems
    # refuse fsync on them; the file itself is already safely on disk then.
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return ``path``. The folder must exist.

    Raises FileExistsError (and writes nothing) if ``path`` already exists, even when another
    writer creates it concurrently. On any error no temporary file is left behind.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{str(path)!r} already exists; output files are never overwritten")
    tmp = _write_temp(path.parent, path.name, data)
    try:
        _publish(tmp, path)
    finally:
        # After os.link the temp name is a second link to the published file; after a rename or
        # a failure it must go too.
        _remove_quietly(tmp)
    _fsync_folder(path.parent)
    return path


def atomic_replace_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, replacing the file if it exists, and return ``path``.

    For user files that are rewritten in place (``styles.csv``); run outputs use
    :func:`atomic_write_bytes`, which never replaces. A reader sees the old file or the new one,
    never a mix, and on any error the old file is untouched and no temporary file is left.
    """
    path = Path(path)
    tmp = _write_temp(path.parent, path.name, data)
    try:
        os.replace(tmp, path)
    finally:
        _remove_quietly(tmp)
    _fsync_folder(path.parent)
    return path


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


# --- one run's folder --------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputSettings:
    """Where runs go and whether per-stage intermediate images are kept."""

    output_dir: Path
    save_intermediates: bool = False


class RunOutputs:
    """The files of one run, in ``<output_dir>/<YYYY-MM-DD>/<run_id>/``.

    The folder is created on the first write, so a run that writes nothing leaves no folder. Final
    images are ``NNNNN-<seed>.png``, intermediates ``intermediates/NNNNN-<seed>-<stage>.png``; the
    5-digit counters start at 00000 and skip any name already taken. Writes from several threads
    are serialised, so concurrent writers never collide.
    """

    def __init__(self, output: OutputSettings | Path, run_id: str, started: datetime) -> None:
        """``output`` is the output folder, or settings naming it; ``started`` dates the folder."""
        root = output.output_dir if isinstance(output, OutputSettings) else output
        self._path = safe_join(root, f"{started:%Y-%m-%d}", run_id)
        self._lock = threading.Lock()
        self._next_image = 0
        self._next_intermediate = 0
        self._written: list[Path] = []
        self._images: list[Path] = []

    @property
    def path(self) -> Path:
        """The run folder (it exists only once something has been written)."""
        return self._path

    @property
    def written(self) -> tuple[Path, ...]:
        """Every file this run wrote, in the order written."""
        with self._lock:
            return tuple(self._written)

    @property
    def images(self) -> tuple[Path, ...]:
        """The final images this run wrote, in the order written."""
        with self._lock:
            return tuple(self._images)

    def save_image(self, image: Image.Image, *, seed: int, pnginfo: PngInfo | None = None) -> Path:
        """Write the next final image as ``NNNNN-<seed>.png`` and return its path."""
        data = encode_png(image, pnginfo)
        with self._lock:
            path, self._next_image = self._write_numbered((), f"-{seed}.png", self._next_image, data)
            self._images.append(path)
        return path

    def save_intermediate(
        self, image: Image.Image, *, stage: str, seed: int, pnginfo: PngInfo | None = None
    ) -> Path:
        """Write a stage's image as ``intermediates/NNNNN-<seed>-<stage>.png`` and return its path.

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
        """Write ``manifest.json`` (UTF-8, indented, strict JSON). FileExistsError if already written."""
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=json_default)
        with self._lock:
            path = self._write((MANIFEST_NAME,), (text + "\n").encode("utf-8"))
        return path

    def _write_numbered(
        self, folder: tuple[str, ...], suffix: str, start: int, data: bytes
    ) -> tuple[Path, int]:
        """Write under the first free ``NNNNN<suffix>`` from ``start``; returns (path, next number)."""
        for number in range(start, start + _MAX_NUMBER_ATTEMPTS):
            try:
                return self._write((*folder, f"{number:05d}{suffix}"), data), number + 1
            except FileExistsError:
                continue
        raise FileExistsError(f"no free file name ending in {suffix!r} in {str(self._path)!r}")

    def _write(self, parts: tuple[str, ...], data: bytes) -> Path:
        path = safe_join(self._path, *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        self._written.append(path)
        return path


# --- manifest ----------------------------------------------------------------------------------


_STAGE_KEYS = ("stage", "seconds", "image_count")
_STAGE_OPTIONAL_KEYS = ("model_name", "model_hash", "vae_name", "vae_hash")


def _iso(moment: datetime, name: str) -> str:
    if moment.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware (for example datetime.now().astimezone()), got {moment}"
        )
    return moment.isoformat()


def _stage_entry(stage: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in _STAGE_KEYS if key not in stage]
    if missing:
        raise ValueError(f"stage record {dict(stage)!r} lacks {', '.join(missing)}")
    entry: dict[str, Any] = {
        "stage": str(stage["stage"]),
        "seconds": float(stage["seconds"]),
        "image_count": int(stage["image_count"]),
    }
    entry.update({key: stage.get(key) for key in _STAGE_OPTIONAL_KEYS})
    entry["params"] = dict(stage.get("params") or {})
    return entry


def _image_name(image: Path | str, run_dir: Path | None) -> str:
    path = Path(image)
    if run_dir is not None and path.is_absolute():
        path = path.relative_to(run_dir)
    return path.as_posix()


def build_manifest(
    *,
    run_id: str,
    status: str,
    started: datetime,
    finished: datetime,
    config: RunConfig | Mapping[str, Any],
    seeds: Sequence[int],
    plan: Mapping[str, Any],
    stages: Sequence[Mapping[str, Any]],
    images: Sequence[Path | str],
    run_dir: Path | None = None,
    error: str | None = None,
    version: str = __version__,
) -> dict[str, Any]:
    """Assemble the ``manifest.json`` content of one run from plain values.

    ``status`` is COMPLETED, FAILED or CANCELLED; ``started``/``finished`` must be timezone-aware
    and are written as ISO 8601. ``config`` is the RunConfig as run (a RunConfig or its JSON dict).
    Each ``stages`` item needs ``stage``, ``seconds`` and ``image_count`` and may carry
    ``model_name``, ``model_hash``, ``vae_name``, ``vae_hash`` (default None) and ``params``.
    ``images`` are written relative to the run folder: absolute paths are made relative to
    ``run_dir``. Raises ValueError for an unknown status, a naive datetime or an incomplete stage.
    """
    if status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    config_data = config.model_dump(mode="json") if isinstance(config, RunConfig) else dict(config)
    return {
        "app": {"name": APP_NAME, "version": version},
        "run_id": run_id,
        "status": str(status),
        "started": _iso(started, "started"),
        "finished": _iso(finished, "finished"),
        "config": config_data,
        "seeds": [int(seed) for seed in seeds],
        "plan": dict(plan),
        "stages": [_stage_entry(stage) for stage in stages],
        "images": [_image_name(image, run_dir) for image in images],
        "error": error,
    }
