"""JAX's persistent compilation cache, switched on by every `fdivrl` command.

Why: on CPU, XLA's compiles dominate every short run and every run's start. A fresh process
compiles the learner's update program, its evaluation and even the eager network init op by op
(seconds each); with the programs on disk the next run with the same shapes loads them instead.

Safe for "same seed, same numbers": a cached executable is the one a fresh compile makes (the key
covers the program, XLA's flags and the backend), and the CPUs a process may use act at run time
(the thread pool), not at compile time — a program compiled on 2 cores and loaded by a process
pinned to one gives the pinned process's numbers.

The size bound is fdivrl's own (the oldest entries go when a command starts and finds the cache
over MAX_BYTES), not JAX's LRU eviction: that one takes a file lock and lists the whole directory
on every entry read or written. With it the test suite (two workers, thousands of small programs)
took 10 min 47 s instead of 7 min 41 s without a cache; with plain files, 6 min 7 s. Without
eviction JAX writes an entry in place (truncate, then write), so two processes compiling the same
program at once (bench --workers, xdist) could interleave their bytes, and a process killed while
writing would leave a truncated entry that JAX never replaces; fdivrl makes those writes a
temporary file renamed into place (`atomic_entries`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import jax

ENV = "FDIVRL_COMPILE_CACHE"
OFF = frozenset({"0", "off", "false", "no", "none"})
MAX_BYTES = 2 << 30
ENTRY = "*-cache"  # JAX's file name for one cached executable
TEMP = ".*.tmp"  # an entry being written (or left by a writer that was killed)


class CompileCacheWarning(UserWarning):
    """The cache directory cannot be used; the command runs and compiles as if there were none."""


def default_dir(environ: MutableMapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fdivrl" / "jax"


def _set(environ: MutableMapping[str, str], name: str, value: Any) -> None:
    """A JAX option for this process (jax.config) and for the processes it starts (environment)."""
    environ[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    jax.config.update(name, value)


def enable(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Point JAX's cache at $FDIVRL_COMPILE_CACHE (default ~/.cache/fdivrl/jax); returns the directory.

    - "off" turns JAX's cache off, whatever else is set;
    - a JAX_COMPILATION_CACHE_DIR the user set is used as it is: not pruned, no other option changed.

    The settings go into `environ` as well, so the processes this one starts on this machine
    (bench --workers, a local Ray instance's workers, subprocesses) use the same cache."""
    setting = environ.get(ENV, "").strip()
    if setting.lower() in OFF:
        _set(environ, "jax_enable_compilation_cache", False)
        return None
    theirs = environ.get("JAX_COMPILATION_CACHE_DIR")
    if theirs:
        atomic_entries()
        jax.config.update("jax_compilation_cache_dir", theirs)  # in case JAX was imported before it was set
        return Path(theirs)
    path = Path(setting or default_dir(environ)).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
        prune(path, MAX_BYTES)
    except OSError as e:
        warnings.warn(
            f"compilation cache off: cannot use {path} ({e}); set {ENV} to a writable directory or to off",
            CompileCacheWarning,
            stacklevel=2,
        )
        return None
    atomic_entries()
    _set(environ, "jax_enable_compilation_cache", True)
    _set(environ, "jax_compilation_cache_dir", str(path))
    # every program: the eager init's many small ones add up to most of a short run's start
    _set(environ, "jax_persistent_cache_min_compile_time_secs", 0.0)
    _set(environ, "jax_compilation_cache_max_size", -1)  # no JAX eviction (see the module docstring)
    return path


def prune(path: Path, max_bytes: int, temp_age_s: float = 3600.0) -> int:
    """Delete the oldest-written entries until the cache holds at most 3/4 of max_bytes, if it holds
    more than max_bytes (the quarter left free spares a prune at every start), and temporary files
    older than `temp_age_s` (left by writers that were killed). Returns the bytes freed."""
    freed = 0
    for temp in path.glob(TEMP):
        try:
            st = temp.stat()
            if time.time() - st.st_mtime > temp_age_s:
                temp.unlink()
                freed += st.st_size
        except FileNotFoundError:  # its writer renamed it, or another process pruned it
            continue
    entries = []
    for entry in path.glob(ENTRY):
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        entries.append((st.st_mtime, st.st_size, entry))
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return freed
    dropped = 0
    for _, size, entry in sorted(entries):
        if total - dropped <= max_bytes * 3 // 4:
            break
        entry.unlink(missing_ok=True)
        dropped += size
    return freed + dropped


def atomic_entries() -> None:
    """Make JAX's file cache write each entry to a temporary file and rename it into place, so a
    reader sees a whole entry or none. enable() calls it, and so does every training run
    (training.loop.train): the processes bench --workers and Ray start inherit the cache through
    the environment, not this patch. Patches jax._src.lru_cache.LRUCache.put (JAX 0.10 writes in
    place when eviction is off); a JAX without that class keeps its own writes."""
    try:
        from jax._src import lru_cache
    except ImportError:
        return
    cls = getattr(lru_cache, "LRUCache", None)
    original = getattr(cls, "put", None)
    if original is None or getattr(original, "fdivrl_atomic", False):
        return
    suffix = getattr(lru_cache, "_CACHE_SUFFIX", "-cache")

    def put(self: Any, key: str, value: bytes) -> None:
        if getattr(self, "eviction_enabled", True) or not key or "://" in str(self.path):
            return original(self, key, value)  # JAX's locked (eviction) or remote path: its own writes
        target = Path(str(self.path)) / f"{key}{suffix}"
        if target.exists():
            return
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            temp.write_bytes(value)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    put.fdivrl_atomic = True  # type: ignore[attr-defined]
    cls.put = put
