"""One writer per run directory (or per generated dataset): an exclusive ``fcntl.flock`` on a file.

The kernel drops the lock when the holding process dies, so a lock left by a killed process is
taken over without guessing from pids; the file only records who holds it (one JSON line: pid,
host, since), for the error message. POSIX only.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from fdivrl.errors import OTHER_DIR, FdivrlError
from fdivrl.runs.io import json_dumps

__all__ = ["RunLock", "RunLocked"]


class RunLocked(FdivrlError):
    """Another process holds the run directory's lock."""


class RunLock:
    """Exclusive, non-blocking ``flock`` on a file, for the life of a run.

    The kernel releases it when the holder exits or is killed, so stale locks are taken over
    without any pid guessing; the file records pid/host/time only to name the holder in errors.
    Two ``RunLock`` objects on one path conflict even inside one process.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FdivrlError(f"cannot lock {self.path}: {exc}") from exc
            raise RunLocked(
                f"{self.path.parent} is in use by another fdivrl process ({holder}); "
                "wait for it to finish or stop it, or " + OTHER_DIR
            ) from None
        stamp = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json_dumps(stamp) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"
