"""Files that survive crashes: atomic writes, JSON, and append-only JSONL logs.

* A file is written to a temp file in its own directory (named ``.<name>.tmp-<random>``, so a run
  directory can recognize and remove what a crashed writer left), fsync'ed and ``os.replace``'d onto
  its name, then the directory is fsync'ed: a reader or a crash sees the old or the new file, never
  half of one. :func:`atomic_write` is that pattern for any writer that takes a binary file (such
  as ``np.savez``); :func:`atomic_write_bytes` and :func:`atomic_write_json` are built on it.
* Log lines are appended with one ``write`` each (:class:`JsonlWriter`); a torn last line is
  dropped on read (:func:`read_jsonl`) and cut off before the next append.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fdivrl.errors import FdivrlError

__all__ = [
    "TMP_MARK",
    "JsonlWriter",
    "RunWarning",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "json_dumps",
    "jsonable",
    "read_json",
    "read_jsonl",
    "truncate_jsonl",
]

TMP_MARK = ".tmp-"
"""In the name of every temp file :func:`atomic_write` makes (and of no finished file)."""


class RunWarning(UserWarning):
    """Something in a run directory was skipped or repaired (torn log line, corrupt checkpoint)."""


# --------------------------------------------------------------------------- JSON


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def json_dumps(obj: Any, indent: int | None = None) -> str:
    """JSON text of ``obj`` (numpy/jax scalars and arrays, paths and sets converted); keys are
    sorted when indented."""
    return json.dumps(obj, default=_json_default, indent=indent, sort_keys=indent is not None)


def jsonable(obj: Any) -> Any:
    """Normalize through JSON so tuples, numpy scalars and lists compare equal after a round trip."""
    return json.loads(json_dumps(obj))


def read_json(path: Path) -> Any:
    """The JSON in ``path``; unreadable or invalid raises :class:`FdivrlError`."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FdivrlError(f"cannot read {path}: {exc}") from exc


# --------------------------------------------------------------------------- atomic writes


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content to; it replaces ``path`` only if the block ends
    without an exception (and is deleted otherwise). The file gets mode 0644."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; run files are meant to be shared
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | Iterable[bytes]) -> None:
    """Write a file so that readers and crashes see either the old or the new content."""
    with atomic_write(path) as f:
        if isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:
            for chunk in data:
                f.write(chunk)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (numpy/jax scalars and arrays are converted)."""
    atomic_write_bytes(path, (json_dumps(obj, indent=2) + "\n").encode())


# --------------------------------------------------------------------------- JSONL logs


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of a JSONL log; a torn (unterminated) last line is dropped with a warning.

    A bad line anywhere else is not a crash artefact, so it raises instead of being skipped.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail.strip():
        warnings.warn(f"{path}: dropped a torn last line ({len(tail)} bytes)", RunWarning, stacklevel=2)
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise FdivrlError(f"{path}:{number} is not valid JSON ({exc}); fix or remove that line") from exc
        records.append(record)
    return records


def truncate_jsonl(path: str | os.PathLike[str], max_step: int | None) -> int:
    """Drop records with ``step > max_step`` (all with ``None``) and any torn tail; returns #dropped.

    Rewrites atomically, and only when something changes.
    """
    if max_step is None:
        return filter_jsonl(path, lambda r: False)
    return filter_jsonl(path, lambda r: not (isinstance(r, dict) and "step" in r and r["step"] > max_step))


def filter_jsonl(path: str | os.PathLike[str], keep: Callable[[Any], bool]) -> int:
    """Keep the records `keep` accepts, drop any torn tail; returns #dropped. Rewrites atomically, and
    only when something changes."""
    path = Path(path)
    if not path.exists():
        return 0
    raw = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)
        records = read_jsonl(path)
    kept = [r for r in records if keep(r)]
    dropped = len(records) - len(kept)
    torn = bool(raw) and not raw.endswith(b"\n")
    if dropped or torn:
        atomic_write_bytes(path, "".join(json_dumps(r) + "\n" for r in kept).encode())
    return dropped


class JsonlWriter:
    """Appends one JSON object per line; each line goes out in a single ``write``.

    On first use a torn last line (a crash mid-write) is cut off, so the next record does not get
    glued to it. :meth:`sync` fsyncs (called before every checkpoint).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                keep = _last_newline_end(fd, size)
                warnings.warn(f"{self.path}: cut off a torn last line ({size - keep} bytes)", RunWarning, stacklevel=3)
                os.ftruncate(fd, keep)
            self._fd = fd
        return self._fd

    def append(self, record: Mapping[str, Any]) -> None:
        line = (json_dumps(dict(record)) + "\n").encode()
        fd = self._open()
        written = os.write(fd, line)
        while written < len(line):  # regular files write fully; be safe anyway
            written += os.write(fd, line[written:])

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _last_newline_end(fd: int, size: int) -> int:
    """Offset just past the last newline in the file (0 if none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0
