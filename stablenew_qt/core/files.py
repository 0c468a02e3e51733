"""Opening files a user named, in bounded time and memory: regular files only, sizes capped.

Every path a user types or a config carries (input images, config files, model files) goes
through here before anything reads it. A FIFO would block the reader forever, ``/dev/zero`` would
fill the memory, a folder or a socket cannot be read at all: they are refused from ``stat``
alone, before any ``open``. The file is then opened non-blocking and checked again on the open
descriptor, so swapping the path for a FIFO between the check and the open cannot block either.

The functions raise :class:`FileRefused` with a one-line reason that does *not* name the file;
callers turn it into their own error (``ConfigError``, the engine's ``ModelError``) together with
the (shortened) path and what to do.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

#: Paths longer than this are refused before the system sees them (Linux's PATH_MAX is 4096 bytes).
MAX_PATH_CHARS = 4096

# O_NONBLOCK: opening a FIFO that slipped past the stat check returns at once instead of waiting
# for a writer. O_NOCTTY: a terminal device never becomes our controlling terminal. Windows has
# neither (and no FIFOs in the file system).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class FileRefused(Exception):
    """A file cannot be read safely. ``str(error)`` is the reason, without the path."""


def user_path(text: str | os.PathLike[str]) -> Path:
    """``text`` as a Path with ``~`` expanded, or FileRefused for a path no file can have.

    Refuses an empty path, one with a NUL character, one longer than :data:`MAX_PATH_CHARS`, and
    ``~name`` when there is no user ``name`` (Python raises RuntimeError there).
    """
    raw = os.fspath(text)
    if not raw:
        raise FileRefused("the path is empty")
    if "\0" in raw:
        raise FileRefused("the path contains a NUL character")
    if len(raw) > MAX_PATH_CHARS:
        raise FileRefused(f"the path is longer than {MAX_PATH_CHARS} characters")
    try:
        return Path(raw).expanduser()
    except RuntimeError:
        user = raw[1:].split("/", 1)[0].split("\\", 1)[0]
        raise FileRefused(f"there is no user {user!r} whose home folder '~{user}' could mean") from None


def file_kind(mode: int) -> str:
    """What a ``stat`` mode is, in words ("a folder", "a FIFO (named pipe)", ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def os_reason(exc: OSError) -> str:
    """The one-line reason of an OSError ("No such file or directory"), without the path."""
    return exc.strerror or type(exc).__name__


def regular_file_size(path: Path, max_bytes: int | None = None) -> int:
    """The size of the regular file ``path`` (symbolic links followed), from ``stat`` alone.

    FileRefused when it is missing or unreadable, not a regular file, or over ``max_bytes``.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileRefused("it does not exist") from None
    except (OSError, ValueError) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise FileRefused(f"it cannot be read: {reason}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"it is {file_kind(info.st_mode)}, not a regular file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise FileRefused(f"it is {info.st_size:,} bytes; the most this reads is {max_bytes:,}")
    return info.st_size


def open_regular_file(path: Path, max_bytes: int | None = None) -> BinaryIO:
    """Open the regular file ``path`` for binary reading; see :func:`regular_file_size`.

    The caller closes the returned file (use it in a ``with`` block).
    """
    regular_file_size(path, max_bytes)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise FileRefused(f"it cannot be opened: {os_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between the stat and the open
            raise FileRefused(f"it is {file_kind(info.st_mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The whole content of the regular file ``path``, refused when over ``max_bytes``.

    At most ``max_bytes + 1`` bytes are read, so a file that grows while it is read (or a size
    that ``stat`` got wrong) still cannot take more memory than that.
    """
    with open_regular_file(path, max_bytes) as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise FileRefused(f"it cannot be read: {os_reason(exc)}") from None
    if len(data) > max_bytes:
        raise FileRefused(f"it is larger than {max_bytes:,} bytes, the most this reads")
    return data
