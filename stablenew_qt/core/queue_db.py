"""The JobQueue's SQLite file: opening it safely, its schema, and the runner lock.

:func:`open_queue_database` refuses, with a :class:`QueueError` that says what to do, a file that
is not a SQLite database, is damaged, was written by a newer StableNew Qt, or belongs to another
program. Before refusing a damaged or newer file it copies it to a timestamped backup beside it;
the original is never changed or deleted, so nothing is lost whatever the user decides.

The database runs in WAL mode with ``synchronous=FULL``: a committed change (a job marked
completed) survives a crash or power loss, and a process killed mid-write leaves the database
consistent. Several processes may open one file at once (``queue add`` while the GUI runs); only
one may *run* jobs from it (see :mod:`.queue_lock`).
"""

from __future__ import annotations

import filecmp
import glob
import shutil
import sqlite3
import stat
from datetime import datetime
from pathlib import Path

from .errors import shorten
from .files import file_kind

#: The schema this version writes and reads (stored in ``PRAGMA user_version``).
QUEUE_SCHEMA_VERSION = 3
#: ``PRAGMA application_id``: "SNQu", marks the file as a StableNew Qt queue.
APPLICATION_ID = 0x534E5175
BUSY_TIMEOUT_S = 10.0

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_USER_VERSION_OFFSET = 60
_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB

# Each entry upgrades the schema from the previous version to its key.
_MIGRATIONS: dict[int, str] = {
    1: """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            config TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
            position INTEGER NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            created TEXT NOT NULL,
            started TEXT,
            finished TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            outputs TEXT NOT NULL DEFAULT '[]',
            run_id TEXT,
            output_root TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX jobs_by_status ON jobs (status, priority DESC, position);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # Why a job did not complete, as FailureCause JSON (the window branches on it).
    2: "ALTER TABLE jobs ADD COLUMN cause TEXT",
    # Job groups (sweeps, prompt packs, wildcards) with their grid, and a 1-5 rating per job.
    3: """
        CREATE TABLE groups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('sweep', 'pack', 'wildcards')),
            meta TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            grid_state TEXT CHECK (grid_state IN ('writing', 'written', 'none')),
            grid_paths TEXT NOT NULL DEFAULT '[]',
            grid_error TEXT
        );
        ALTER TABLE jobs ADD COLUMN group_id INTEGER REFERENCES groups (id);
        ALTER TABLE jobs ADD COLUMN group_index INTEGER;
        ALTER TABLE jobs ADD COLUMN rating INTEGER CHECK (rating BETWEEN 1 AND 5);
        CREATE INDEX jobs_by_group ON jobs (group_id, group_index)
    """,
}


class QueueError(Exception):
    """A queue file cannot be used, or an operation does not apply to a job. The message says why
    and what to do."""


class QueueLocked(QueueError):
    """Another process is already running jobs from this queue file."""


class QueueMissing(QueueError):
    """``create=False`` and there is no queue file (nothing was created)."""


def open_queue_database(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (creating it and its folder if needed, unless ``create`` is False) the queue
    database at ``path``, checked and migrated.

    The connection is in autocommit mode (callers open their own ``BEGIN IMMEDIATE``
    transactions) and may be used from any thread under the caller's lock. Raises QueueError for a
    file that cannot be used (also, from ``stat`` alone, for a FIFO, device or folder: opening a
    FIFO would block); for a damaged or newer file a backup copy is made first (one per content:
    opening the same damaged file again makes no second copy). QueueMissing when ``create`` is
    False and there is no file.
    """
    path = Path(path)
    kind = _not_regular(path)
    if kind is not None:
        raise QueueError(f"cannot use the queue file {shorten(path)!r}: it is {kind}, not a regular file")
    if not create and not path.exists():
        raise QueueMissing(f"there is no queue file {shorten(path)!r} (nothing is queued there)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QueueError(
            f"cannot create the folder of the queue file {shorten(path)!r}: {exc.strerror or exc}"
        ) from None
    problem = _header_problem(path)
    if problem is not None:
        raise _refuse(path, *problem)
    try:
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise QueueError(f"cannot open the queue file {str(path)!r}: {exc}") from None
    try:
        problem = _content_problem(conn)
        if problem is None:
            _configure(conn)
            _migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        if _is_corrupt(exc):
            raise _refuse(path, f"SQLite reports: {exc}", True) from None
        raise QueueError(f"cannot open the queue file {str(path)!r}: {exc}") from None
    if problem is not None:
        conn.close()
        raise _refuse(path, *problem)
    return conn


def _not_regular(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file ("a FIFO (named pipe)")."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None  # missing (created later) or unreadable: the open says why
    return None if stat.S_ISREG(mode) else file_kind(mode)


def _header_problem(path: Path) -> tuple[str, bool] | None:
    """Check the 100-byte header without SQLite, so a foreign file is never touched by it."""
    try:
        with path.open("rb") as handle:
            header = handle.read(_HEADER_SIZE)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})", False
    if not header:
        return None  # an empty file is a new database to SQLite
    if len(header) < _HEADER_SIZE or not header.startswith(_SQLITE_MAGIC):
        return "it is not a SQLite database (damaged, or another kind of file)", True
    version = int.from_bytes(header[_USER_VERSION_OFFSET : _USER_VERSION_OFFSET + 4], "big")
    return _newer_problem(version)


def _newer_problem(version: int) -> tuple[str, bool] | None:
    if version <= QUEUE_SCHEMA_VERSION:
        return None
    return (
        f"it was written by a newer StableNew Qt (queue schema {version}; this version reads "
        f"schema {QUEUE_SCHEMA_VERSION}): update StableNew Qt, or use another queue file",
        True,
    )


def _content_problem(conn: sqlite3.Connection) -> tuple[str, bool] | None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    newer = _newer_problem(version)
    if newer is not None:
        return newer
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id not in (0, APPLICATION_ID) or (version == 0 and tables):
        return "it is a SQLite database of another program, not a StableNew Qt queue", False
    findings = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if findings != ["ok"]:
        return f"it is damaged ({'; '.join(findings)})", True
    return None


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":  # e.g. a file system without shared memory: still safe, slower
        conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA synchronous = FULL")


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= QUEUE_SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
        for target in range(version + 1, QUEUE_SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {QUEUE_SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _is_corrupt(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _CORRUPT_CODES
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _refuse(path: Path, reason: str, backup: bool) -> QueueError:
    message = f"cannot use the queue file {str(path)!r}: {reason}."
    if backup:
        try:
            copy, made = backup_queue_file(path)
        except OSError as exc:
            message += f" A backup copy could not be made ({exc}); the file was left as it is."
        else:
            message += (
                f" A copy was saved {'' if made else 'earlier '}as {str(copy)!r} and the file was "
                "left as it is; move it away to start an empty queue."
            )
    return QueueError(message)


def backup_queue_file(path: Path) -> tuple[Path, bool]:
    """Copy ``path`` (and its ``-wal`` journal, if any) to ``<name>.backup-<YYYYmmdd-HHMMSS>``
    beside it, never overwriting an earlier backup. Returns the copy's path and True, or an
    earlier backup with the same content (file and journal) and False: every command on a
    damaged file would otherwise add one more copy of it."""
    earlier = _same_backup(path)
    if earlier is not None:
        return earlier, False
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        suffix = f".backup-{stamp}" + (f"-{n}" if n else "")
        target = path.with_name(path.name + suffix)
        if not target.exists():
            break
    else:
        raise FileExistsError(f"too many backups of {str(path)!r} this second")
    shutil.copy2(path, target)
    wal = path.with_name(path.name + "-wal")
    if wal.is_file():
        shutil.copy2(wal, target.with_name(target.name + "-wal"))
    return target, True


def _same_backup(path: Path) -> Path | None:
    size = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    for backup in sorted(path.parent.glob(glob.escape(path.name) + ".backup-*")):
        if backup.name.endswith("-wal") or not backup.is_file() or backup.stat().st_size != size:
            continue
        backup_wal = backup.with_name(backup.name + "-wal")
        if not filecmp.cmp(path, backup, shallow=False):
            continue
        if wal.is_file() != backup_wal.is_file():
            continue
        if wal.is_file() and not filecmp.cmp(wal, backup_wal, shallow=False):
            continue
        return backup
    return None
