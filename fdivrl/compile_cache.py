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
took 10 min 47 s instead of 7 min 41 s without a cache; with plain files, 6 min 7 s. Without the
lock, a process that reads an entry while another writes it gets a warning from JAX and compiles
the program itself.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import MutableMapping
from pathlib import Path

import jax

ENV = "FDIVRL_COMPILE_CACHE"
OFF = frozenset({"0", "off", "false", "no", "none"})
MAX_BYTES = 2 << 30
ENTRY = "*-cache"  # JAX's file name for one cached executable


class CompileCacheWarning(UserWarning):
    """The cache directory cannot be used; the command runs and compiles as if there were none."""


def default_dir(environ: MutableMapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fdivrl" / "jax"


def enable(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Point JAX's cache at $FDIVRL_COMPILE_CACHE (default ~/.cache/fdivrl/jax; "off" disables it),
    or leave a JAX_COMPILATION_CACHE_DIR the user set alone. Returns the directory in use.

    The settings go into `environ` as well, so processes this one spawns (bench --workers, Ray's
    workers, subprocesses) read the same cache when they import JAX."""
    setting = environ.get(ENV, "").strip()
    if setting.lower() in OFF:
        return None
    path = Path(environ.get("JAX_COMPILATION_CACHE_DIR") or setting or default_dir(environ)).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as e:
        warnings.warn(
            f"compilation cache off: cannot use {path} ({e}); set {ENV} to a writable directory or to off",
            CompileCacheWarning,
            stacklevel=2,
        )
        return None
    prune(path, MAX_BYTES)
    settings = {
        "jax_compilation_cache_dir": str(path),
        # every program: the eager init's many small ones add up to most of a short run's start
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_compilation_cache_max_size": -1,  # no JAX eviction (see the module docstring)
    }
    for name, value in settings.items():
        if name.upper() in environ:
            continue  # the user's own setting, which JAX read when it was imported
        environ[name.upper()] = str(value)
        jax.config.update(name, value)
    return path


def prune(path: Path, max_bytes: int) -> int:
    """Delete the oldest-written entries until the cache holds at most 3/4 of max_bytes, if it holds
    more than max_bytes (the quarter left free spares a prune at every start). Returns the bytes freed."""
    entries = []
    for entry in path.glob(ENTRY):
        try:
            st = entry.stat()
        except FileNotFoundError:  # another process pruned it
            continue
        entries.append((st.st_mtime, st.st_size, entry))
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return 0
    freed = 0
    for _, size, entry in sorted(entries):
        if total - freed <= max_bytes * 3 // 4:
            break
        entry.unlink(missing_ok=True)
        freed += size
    return freed
