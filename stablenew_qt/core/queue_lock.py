"""The runner lock: only one process at a time runs jobs from a queue file.

It is an exclusive OS lock on ``<queue file>.lock`` (``flock`` on POSIX, ``msvcrt.locking`` on
Windows), which the OS drops when its holder exits or is killed. So when a process takes the lock,
any job still marked ``running`` belonged to a process that is gone: it was interrupted.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO

from .queue_db import QueueLocked


class RunnerLock:
    """An exclusive, non-blocking OS lock on ``<queue file>.lock``: held by the one process that
    runs jobs. The OS drops it when the process exits or is killed."""

    def __init__(self, queue_path: Path) -> None:
        self.path = queue_path.with_name(queue_path.name + ".lock")
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> None:
        """Take the lock, or raise QueueLocked naming the process that holds it."""
        if self._handle is not None:
            return
        handle = self.path.open("a+", encoding="utf-8")
        try:
            _lock_file(handle)
        except OSError:
            holder = _read_holder(handle)
            handle.close()
            raise QueueLocked(
                f"the queue {str(self.path.with_suffix(''))!r} is already being run by {holder}; "
                "stop that first (or use another queue file)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                _unlock_file(handle)
            handle.close()


def _read_holder(handle: IO[str]) -> str:
    try:
        handle.seek(0)
        return handle.read().strip() or "another process"
    except OSError:  # Windows refuses to read a locked range
        return "another process"


if sys.platform == "win32":
    import msvcrt

    def _lock_file(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock_file(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_file(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
