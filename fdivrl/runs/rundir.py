"""The run directory: every file that belongs to one training run, and how it is written.

Layout of ``<out>/``::

    config.json      resolved config, seeds, command line, package versions, platform, resumes
    metrics.jsonl    one JSON object per logged training step (each has an int "step")
    eval.jsonl       one JSON object per evaluation (each has an int "step")
    checkpoints/     ckpt-<step>.npz, the newest ``keep`` of them
    summary.json     written at the end; {"status": "finished", ...} marks a finished run
    .lock            flock'ed by the process that owns the run

Why it is written this way:

* Data is never overwritten: a directory that holds a run is refused unless ``resume=True``, and
  a resume must use the same config except for keys that may change (``steps`` and friends).
* One writer per run: an ``fcntl.flock`` on ``.lock`` held for the life of the run. The kernel
  drops it when the process dies, so a lock left by a killed run is taken over without guessing
  from pids; the file only records who holds it, for the error message. POSIX only.
* Crash safety: JSON files and checkpoints are written to a temp file in the same directory,
  fsync'ed and ``os.replace``'d, so a reader sees the old or the new file, never half of one.
  Log lines are appended with one ``write`` each; a torn last line is dropped on read and cut off
  before the next append. Logs are fsync'ed before each checkpoint, and on resume lines with a
  step past the restored checkpoint are dropped, so a resumed run's logs equal those of a run that
  was never interrupted (provided the caller logs step ``s`` before checkpointing step ``s``).
* Checkpoints are ``.npz`` files of the flattened pytree leaves plus a JSON manifest (leaf paths,
  kinds, dtypes, CRC32s, step, a small ``meta`` dict); the pytree structure comes back from a
  template, so any JAX/numpy pytree (flax TrainState, optax states, raw uint32 and typed PRNG
  keys, Python scalars) restores with the same structure, dtypes and bits, without pickle.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib.metadata
import json
import os
import platform
import re
import socket
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fdivrl.errors import ConfigError, FdivrlError, TrainingDiverged

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "DEFAULT_ALLOWED_CHANGES",
    "EVAL_FILE",
    "METRICS_FILE",
    "SUMMARY_FILE",
    "Checkpoint",
    "ConfigMismatch",
    "JsonlWriter",
    "RunDir",
    "RunLock",
    "RunLocked",
    "RunWarning",
    "atomic_write_bytes",
    "atomic_write_json",
    "check_finite",
    "config_diff",
    "is_finished",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "platform_info",
    "read_jsonl",
    "save_checkpoint",
    "truncate_jsonl",
    "versions",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = ".lock"
DEFAULT_ALLOWED_CHANGES: tuple[str, ...] = ("steps", "resume", "out")

_TMP_MARK = ".tmp-"
_CKPT_RE = re.compile(r"^ckpt-(\d+)\.npz$")
_MANIFEST = "__manifest__"
_FORMAT = "fdivrl-checkpoint"
_FORMAT_VERSION = 1

_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "numpy",
    "minari",
    "gymnasium",
    "gymnasium-robotics",
    "mujoco",
    "fdivrl",
)


class RunLocked(FdivrlError):
    """Another process holds the run directory's lock."""


class ConfigMismatch(ConfigError):
    """A resume was asked with a config that differs from the stored one."""


class RunWarning(UserWarning):
    """Something in a run directory was skipped or repaired (torn log line, corrupt checkpoint)."""


# --------------------------------------------------------------------------- versions, platform


def versions() -> dict[str, str | None]:
    """Installed versions of python and the packages that decide a run's numbers (None: absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out["fdivrl"] is None:
        from fdivrl import __version__

        out["fdivrl"] = __version__
    out["fdivrl_source"] = source_revision()
    return out


def source_revision() -> str | None:
    """The git commit fdivrl runs from ("<sha>+changes" when its tracked files differ from it), or
    None when it is not a git checkout (an installed wheel)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        # no timeout: Popen.wait(timeout) polls with time.sleep, which tests patch; git here is local
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+changes" if dirty else sha


def platform_info() -> dict[str, Any]:
    """Where the run ran: OS, CPU, host and the JAX backend (numbers differ across backends)."""
    info: dict[str, Any] = {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "python_implementation": platform.python_implementation(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import jax

        info["jax_backend"] = jax.default_backend()
        info["jax_devices"] = [d.device_kind for d in jax.devices()]
    except Exception as exc:  # a broken accelerator setup must not stop the run from being recorded
        info["jax_backend"] = f"unavailable: {exc}"
    return info


# --------------------------------------------------------------------------- JSON helpers


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


def _dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, default=_json_default, indent=indent, sort_keys=indent is not None)


def _jsonable(obj: Any) -> Any:
    """Normalize through JSON so tuples, numpy scalars and lists compare equal after a round trip."""
    return json.loads(_dumps(obj))


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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | Iterable[bytes]) -> None:
    """Write a file so that readers and crashes see either the old or the new content."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TMP_MARK}", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; run files are meant to be shared
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                for chunk in data:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (numpy/jax scalars and arrays are converted)."""
    atomic_write_bytes(path, (_dumps(obj, indent=2) + "\n").encode())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FdivrlError(f"cannot read {path}: {exc}") from exc


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
    path = Path(path)
    if not path.exists():
        return 0
    raw = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)
        records = read_jsonl(path)
    if max_step is None:
        kept = []
    else:
        kept = [r for r in records if not (isinstance(r, dict) and "step" in r and r["step"] > max_step)]
    dropped = len(records) - len(kept)
    torn = bool(raw) and not raw.endswith(b"\n")
    if dropped or torn:
        atomic_write_bytes(path, "".join(_dumps(r) + "\n" for r in kept).encode())
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
        line = (_dumps(dict(record)) + "\n").encode()
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


# --------------------------------------------------------------------------- NaN policy


def check_finite(metrics: Mapping[str, Any], step: int, last_checkpoint_step: int | None = None) -> None:
    """Raise :class:`TrainingDiverged` if any numeric metric is NaN or inf; strings are ignored.

    Call it before logging and before checkpointing, so the last checkpoint on disk is a good one.
    """
    bad: list[str] = []
    for name, value in metrics.items():
        if isinstance(value, (str, bytes)):
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if not np.all(np.isfinite(arr)):
            shown = float(arr) if arr.ndim == 0 else "non-finite entries"
            bad.append(f"{name}={shown}")
    if bad:
        where = f" (step {last_checkpoint_step})" if last_checkpoint_step is not None else ""
        raise TrainingDiverged(
            f"training diverged at step {step}: {', '.join(bad)}; "
            f"the last good checkpoint{where} is kept and no checkpoint is written after it"
        )


# --------------------------------------------------------------------------- config comparison


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON-like configs differ (lists compare as a whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(config_diff(old[key], new[key], path))
        return out
    # 1 and 1.0 are the same setting; True and 1 are not
    same = old == new if _is_number(old) and _is_number(new) else type(old) is type(new) and old == new
    return [] if same else [prefix or "<root>"]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _get_path(tree: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return "<absent>"
        tree = tree[part]
    return tree


def _allowed(path: str, allowed: Iterable[str]) -> bool:
    return any(path == a or path.startswith(a + ".") for a in allowed)


def _short(value: Any, width: int = 40) -> str:
    text = value if value == "<absent>" else _dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- the lock


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
                "wait for it to finish or stop it, or choose another --out"
            ) from None
        stamp = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_dumps(stamp) + "\n").encode(), 0)
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


# --------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    """A checkpoint file read and verified in full; :meth:`restore` rebuilds the pytree."""

    path: Path
    step: int
    meta: dict[str, Any]
    leaves: list[dict[str, Any]] = field(repr=False)
    arrays: list[np.ndarray] = field(repr=False)

    def restore(self, template: Any, prefix: str = "") -> Any:
        """A pytree shaped like ``template`` holding the saved values.

        The template decides structure and leaf types (jax array, numpy array, numpy or Python
        scalar, typed PRNG key); a stored leaf whose path, shape or dtype differs raises, since
        that means the checkpoint belongs to a different model or config. With ``prefix`` (a
        stored path such as ``"['state'].actor.params"``) only the subtree under it is restored,
        e.g. one network out of a whole run's state.
        """
        import jax
        import jax.numpy as jnp

        flat, treedef = jax.tree_util.tree_flatten_with_path(template)
        stored = list(zip(self.leaves, self.arrays, strict=True))
        if prefix:
            stored = [(e, a) for e, a in stored if _under(e["path"], prefix)]
        if len(flat) != len(stored):
            where = f" under {prefix}" if prefix else ""
            raise FdivrlError(
                f"checkpoint {self.path.name} has {len(stored)} leaves{where} but the model has {len(flat)}; "
                "it was written by a different model or config"
            )
        values = []
        for (key_path, ref), (entry, arr) in zip(flat, stored, strict=True):
            name = prefix + jax.tree_util.keystr(key_path)
            if name != entry["path"]:
                raise FdivrlError(f"checkpoint {self.path.name} stores {entry['path']} where the model has {name}")
            kind = _leaf_kind(ref)
            if kind == "key":
                if entry["kind"] != "key":
                    raise FdivrlError(f"checkpoint {self.path.name}: {name} is not a typed PRNG key")
                impl = str(jax.random.key_impl(ref))
                if entry["impl"] != impl:
                    raise FdivrlError(f"checkpoint {self.path.name}: {name} is a {entry['impl']} key, expected {impl}")
                value = jax.random.wrap_key_data(jnp.asarray(arr), impl=impl)
                _check_shape(self.path, name, value.shape, np.shape(ref))
            elif kind in ("python",):
                value = type(ref)(arr.item())
            else:
                ref_dtype = np.dtype(ref.dtype)
                if arr.dtype != ref_dtype:
                    raise FdivrlError(
                        f"checkpoint {self.path.name}: {name} has dtype {arr.dtype}, expected {ref_dtype}"
                    )
                _check_shape(self.path, name, arr.shape, np.shape(ref))
                if kind == "jax":
                    value = jnp.asarray(arr)
                elif kind == "numpy-scalar":
                    value = ref_dtype.type(arr[()])
                else:
                    value = np.array(arr, copy=True)
            values.append(value)
        return jax.tree_util.tree_unflatten(treedef, values)


def _under(path: str, prefix: str) -> bool:
    """Is the stored leaf ``path`` inside the subtree ``prefix`` (ending at a key boundary)?"""
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] in ".[")


def _check_shape(path: Path, name: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
    if tuple(got) != tuple(want):
        raise FdivrlError(f"checkpoint {path.name}: {name} has shape {tuple(got)}, expected {tuple(want)}")


def _leaf_kind(leaf: Any) -> str:
    import jax

    if isinstance(leaf, jax.Array):
        return "key" if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else "jax"
    if isinstance(leaf, np.ndarray):
        return "numpy"
    if isinstance(leaf, np.generic):
        return "numpy-scalar"
    if isinstance(leaf, (bool, int, float)):
        return "python"
    raise TypeError(f"cannot checkpoint a leaf of type {type(leaf).__name__}")


def _crc(arr: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data)


def _dtype(name: str) -> np.dtype:
    import jax.numpy as jnp

    return np.dtype(jnp.dtype(name))  # jnp knows bfloat16, float8_* …


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, path)`` of the checkpoint files in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(
    directory: str | os.PathLike[str],
    step: int,
    tree: Any,
    meta: Mapping[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Atomically write ``tree`` (+ a JSON-able ``meta``) as ``ckpt-<step>.npz``; keep the newest ``keep``."""
    import jax

    if keep < 1:
        raise ConfigError(f"keep must be at least 1, got {keep}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    arrays: dict[str, np.ndarray] = {}
    leaves: list[dict[str, Any]] = []
    for i, (key_path, leaf) in enumerate(flat):
        kind = _leaf_kind(leaf)
        entry: dict[str, Any] = {"path": jax.tree_util.keystr(key_path), "kind": kind}
        if kind == "key":
            entry["impl"] = str(jax.random.key_impl(leaf))
            arr = np.asarray(jax.random.key_data(leaf))
        else:
            arr = np.asarray(leaf)
        arr = np.asarray(arr, order="C")  # not ascontiguousarray: it turns 0-d into 1-d
        entry["dtype"] = str(arr.dtype)
        entry["shape"] = list(arr.shape)
        entry["crc32"] = _crc(arr)
        if arr.dtype.type.__module__.startswith("ml_dtypes"):
            # .npy cannot describe bfloat16 & co.: store the bits as a same-width uint
            arr = arr.view(np.dtype(f"uint{arr.dtype.itemsize * 8}"))
        arrays[f"leaf_{i:05d}"] = arr
        leaves.append(entry)
    manifest = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "step": int(step),
        "meta": _jsonable(dict(meta or {})),
        "treedef": str(treedef),
        "leaves": leaves,
    }
    arrays[_MANIFEST] = np.frombuffer(_dumps(manifest).encode(), dtype=np.uint8)
    path = directory / f"ckpt-{int(step):010d}.npz"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TMP_MARK}", dir=directory)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    for _, old in list_checkpoints(directory)[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify (CRC32 per leaf) a checkpoint; raises :class:`FdivrlError` if unreadable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            manifest = json.loads(npz[_MANIFEST].tobytes().decode())
            if manifest.get("format") != _FORMAT or manifest.get("version") != _FORMAT_VERSION:
                raise ValueError(f"not a {_FORMAT} v{_FORMAT_VERSION} file")
            arrays = []
            for i, entry in enumerate(manifest["leaves"]):
                arr = npz[f"leaf_{i:05d}"]
                if str(arr.dtype) != entry["dtype"]:
                    arr = arr.view(_dtype(entry["dtype"]))  # an ml_dtypes leaf stored as uint bits
                if list(arr.shape) != entry["shape"]:
                    raise ValueError(f"leaf {entry['path']} does not match the manifest")
                if _crc(arr) != entry["crc32"]:
                    raise ValueError(f"leaf {entry['path']} fails its checksum")
                arrays.append(arr)
    except FdivrlError:
        raise
    except Exception as exc:  # zipfile, numpy and json raise many kinds for a damaged file
        raise FdivrlError(f"checkpoint {path} is unreadable: {type(exc).__name__}: {exc}") from exc
    return Checkpoint(path, int(manifest["step"]), manifest["meta"], manifest["leaves"], arrays)


def latest_checkpoint(directory: str | os.PathLike[str], quarantine: bool = False) -> Checkpoint | None:
    """The newest readable checkpoint, skipping damaged ones with a warning (None if none).

    With ``quarantine`` a damaged file is renamed to ``*.corrupt`` so it is kept for inspection
    but no longer listed or pruned as a checkpoint.
    """
    for _step, path in reversed(list_checkpoints(directory)):
        try:
            return load_checkpoint(path)
        except FdivrlError as exc:
            note = ""
            if quarantine:
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_name(path.name + ".corrupt"))
                    note = " (renamed to *.corrupt)"
            warnings.warn(f"skipping {exc}{note}", RunWarning, stacklevel=2)
    return None


# --------------------------------------------------------------------------- the run directory


def is_finished(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a run whose summary says ``"status": "finished"``."""
    summary = Path(path) / SUMMARY_FILE
    try:
        return json.loads(summary.read_text()).get("status") == "finished"
    except (OSError, ValueError, AttributeError):
        return False


class RunDir:
    """One run's directory. Use :meth:`create` to start or resume; it holds the lock until :meth:`close`.

    Typical use::

        with RunDir.create(out, config, resume=args.resume, seeds={"seed": 0}) as run:
            restored = run.restore(template)          # None: start from scratch
            ...
            check_finite(losses, step)                # before logging / checkpointing
            run.log_metrics({"step": step, **losses})
            run.save_checkpoint(step, state)
            run.write_summary({"status": "finished", ...})
    """

    def __init__(self, path: str | os.PathLike[str], keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = keep
        self.resumed = False
        self._lock = RunLock(self.path / LOCK_FILE)
        self._metrics = JsonlWriter(self.metrics_path)
        self._eval = JsonlWriter(self.eval_path)

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def eval_path(self) -> Path:
        return self.path / EVAL_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def has_run(self) -> bool:
        return self.config_path.exists()

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        config: Mapping[str, Any],
        resume: bool = False,
        allowed_changes: Sequence[str] = (),
        seeds: Mapping[str, int] | None = None,
        argv: Sequence[str] | None = None,
        keep: int = 2,
    ) -> RunDir:
        """Lock ``path`` and start a run there, or resume the one it holds.

        Refuses (never overwrites) a directory holding a run unless ``resume``; on resume the
        stored config and seeds must equal the new ones except at ``DEFAULT_ALLOWED_CHANGES`` and
        ``allowed_changes`` (dotted paths; a prefix allows everything under it). ``resume`` on a
        directory with no run starts a fresh one (``run.resumed`` tells which happened).
        """
        run = cls(path, keep=keep)
        try:
            if run.path.exists() and not run.path.is_dir():
                raise FdivrlError(f"--out {run.path} exists and is not a directory")
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only place, a file on the way, a name too long, ...
            raise FdivrlError(f"--out {run.path} cannot be created ({exc.strerror or exc})") from exc
        run._lock.acquire()
        try:
            run._remove_temp_files()
            record = {
                "config": _jsonable(dict(config)),
                "seeds": _jsonable(dict(seeds or {})),
            }
            now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            command = list(sys.argv if argv is None else argv)
            if run.has_run():
                if not resume:
                    raise FdivrlError(
                        f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
                    )
                run._resume(record, tuple(DEFAULT_ALLOWED_CHANGES) + tuple(allowed_changes), command, now)
            else:
                others = [p.name for p in run.path.iterdir() if p.name != LOCK_FILE]
                if others:
                    raise FdivrlError(
                        f"{run.path} is not empty ({', '.join(sorted(others)[:3])}) "
                        "and holds no fdivrl run; choose another --out"
                    )
                atomic_write_json(
                    run.config_path,
                    {
                        "format": "fdivrl-run",
                        "version": 1,
                        **record,
                        "command": command,
                        "versions": versions(),
                        "platform": platform_info(),
                        "created_at": now,
                        "resumes": [],
                    },
                )
        except BaseException:
            run.close()
            raise
        return run

    def _resume(self, record: dict[str, Any], allowed: tuple[str, ...], command: list[str], now: str) -> None:
        try:
            stored = self.read_config()
            if not isinstance(stored, dict):
                raise FdivrlError(f"{self.config_path} is not a JSON object")
        except FdivrlError as exc:  # resuming again cannot fix it: say what can
            raise FdivrlError(
                f"cannot resume {self.path}: its config.json is unreadable ({exc}); move the directory away "
                "(or delete it) to start the run afresh, or choose another --out"
            ) from exc
        old = {"config": stored.get("config", {}), "seeds": stored.get("seeds", {})}
        diffs = config_diff(old, record)
        bad = [d for d in diffs if not _allowed(d.split(".", 1)[1] if "." in d else d, allowed)]
        if bad:
            shown = "; ".join(
                f"{d.removeprefix('config.')} ({_short(_get_path(old, d))} → {_short(_get_path(record, d))})"
                for d in bad[:5]
            )
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ConfigMismatch(
                f"cannot resume {self.path}: config differs at {shown}{more}; "
                "use the original options or choose another --out"
            )
        now_versions = versions()
        changed_versions = {
            k: [stored.get("versions", {}).get(k), v]
            for k, v in now_versions.items()
            if stored.get("versions", {}).get(k) != v
        }
        if changed_versions:
            warnings.warn(
                f"resuming {self.path} with different package versions: {changed_versions}",
                RunWarning,
                stacklevel=3,
            )
        if diffs and self.summary_path.exists():
            # the old summary describes a shorter run: keep it, but it no longer marks this run finished
            os.replace(self.summary_path, self.path / "summary.previous.json")
        stored["config"] = record["config"]
        stored["seeds"] = record["seeds"]
        stored.setdefault("resumes", []).append(
            {
                "at": now,
                "command": command,
                "changed": {d: [_get_path(old, d), _get_path(record, d)] for d in diffs},
                "versions": changed_versions,
            }
        )
        atomic_write_json(self.config_path, stored)
        self.resumed = True

    def _remove_temp_files(self) -> None:
        """Temp files can only be left by a crashed writer, since we hold the lock."""
        for directory in (self.path, self.checkpoint_dir):
            if directory.is_dir():
                for p in directory.iterdir():
                    if _TMP_MARK in p.name and p.is_file():
                        with contextlib.suppress(OSError):
                            p.unlink()

    def read_config(self) -> dict[str, Any]:
        """The whole stored ``config.json`` (the resolved config is under ``"config"``)."""
        return _read_json(self.config_path)

    # logs
    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one training record; it must carry an int ``step``."""
        self._metrics.append(_with_step(record))

    def log_eval(self, record: Mapping[str, Any]) -> None:
        """Append one evaluation record; it must carry an int ``step``."""
        self._eval.append(_with_step(record))

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def read_evals(self) -> list[dict[str, Any]]:
        return read_jsonl(self.eval_path)

    def truncate_logs(self, max_step: int | None) -> None:
        """Drop log records past ``max_step`` (all of them with None) — what a resume needs."""
        self._metrics.close()
        self._eval.close()
        truncate_jsonl(self.metrics_path, max_step)
        truncate_jsonl(self.eval_path, max_step)

    # checkpoints
    def save_checkpoint(self, step: int, tree: Any, meta: Mapping[str, Any] | None = None) -> Path:
        """fsync the logs, then atomically write the checkpoint and prune to the newest ``keep``."""
        self._metrics.sync()
        self._eval.sync()
        return save_checkpoint(self.checkpoint_dir, step, tree, meta, keep=self.keep)

    def latest_checkpoint(self) -> Checkpoint | None:
        return latest_checkpoint(self.checkpoint_dir, quarantine=self._lock.held)

    def restore(self, template: Any) -> tuple[Any, Checkpoint] | None:
        """Restore the newest readable checkpoint into ``template`` and cut the logs back to its step.

        Returns None (and empties the logs) when there is no checkpoint, so the caller starts
        from scratch and its logs still match an uninterrupted run.
        """
        ckpt = self.latest_checkpoint()
        if ckpt is None:
            self.truncate_logs(None)
            return None
        tree = ckpt.restore(template)
        self.truncate_logs(ckpt.step)
        return tree, ckpt

    # summary
    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Atomically write ``summary.json``; ``{"status": "finished"}`` marks the run finished."""
        atomic_write_json(self.summary_path, dict(summary))

    def read_summary(self) -> dict[str, Any] | None:
        return _read_json(self.summary_path) if self.summary_path.exists() else None

    def is_finished(self) -> bool:
        return is_finished(self.path)

    # lifetime
    def close(self) -> None:
        """Close the logs and release the lock (idempotent)."""
        self._metrics.close()
        self._eval.close()
        self._lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_step(record: Mapping[str, Any]) -> dict[str, Any]:
    step = record.get("step")
    if isinstance(step, np.integer):
        step = int(step)
    if not isinstance(step, int) or isinstance(step, bool):
        raise TypeError(f"log records need an int 'step', got {step!r}")
    return {**record, "step": step}
