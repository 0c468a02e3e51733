"""Writing files atomically, never overwriting, never outside a root folder.

Every file goes through :func:`atomic_write_bytes`: the bytes land in a temporary file in the same
folder, are flushed and fsynced, and are then published under their final name with ``os.link``,
which fails if that name exists (on Windows ``os.rename``, which never overwrites there). A reader
therefore sees either no file or the whole file, an existing file is never replaced, and no temporary
file survives an error. Every path is built with :func:`safe_join`, which refuses names that could
leave the root folder. :func:`rename_no_replace` moves a whole folder into place the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

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
    try:
        base = Path(root).resolve()
        target = base.joinpath(*parts).resolve()
    except (RuntimeError, OSError) as exc:  # a symbolic link loop (RuntimeError before Python 3.13)
        raise ValueError(
            f"output path {'/'.join(parts)!r} in {str(root)!r} cannot be resolved: {exc}"
        ) from None
    if not target.is_relative_to(base):
        raise ValueError(
            f"output path {'/'.join(parts)!r} resolves to {str(target)!r}, outside the output folder "
            f"{str(base)!r}; a symbolic link inside the output folder probably points elsewhere: remove "
            "it or choose another output folder"
        )
    return target


# --- atomic writes -----------------------------------------------------------------------------


def _write_temp(folder: Path, name: str, data: bytes) -> Path:
    # The name is shortened so that prefix + random part + suffix stays within 255 bytes.
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name[:48]}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return tmp


def _write_all(fd: int, data: bytes) -> None:
    # os.write, not a file object: every byte goes through one call that a full disk fails
    # (and that tests can make fail), with no buffer flushed later behind our back.
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "the file system accepted no bytes")
        view = view[written:]


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


# --- publishing a folder -----------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
# renameat2 says these when the file system (or an old kernel) cannot honour RENAME_NOREPLACE.
_NOREPLACE_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP})


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's renameat2 (Linux 3.15+, glibc 2.28+), or None where it is missing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def rename_no_replace(src: Path, dst: Path) -> None:
    """Rename the file or folder ``src`` to ``dst`` in one step, never replacing ``dst``.

    FileExistsError when ``dst`` exists. On Linux this is ``renameat2(RENAME_NOREPLACE)``, which
    checks and renames atomically. Elsewhere (and on file systems without that flag) it is a
    check followed by ``os.rename``: on Windows rename itself refuses an existing target; on
    POSIX a folder can then only replace an *empty* folder created in the instant between the
    check and the rename (rename never replaces a file or a non-empty folder), so no data can be
    lost either way.
    """
    renameat2 = _renameat2()
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), str(dst))
        if code not in _NOREPLACE_UNSUPPORTED:
            raise OSError(code, os.strerror(code), str(src), None, str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from exc
        raise


def fsync_folder(folder: Path) -> None:
    """Make ``folder``'s entries durable (best effort: some systems cannot fsync folders)."""
    _fsync_folder(folder)
