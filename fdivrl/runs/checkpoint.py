"""Checkpoints: a pytree saved without pickle, verified on load, restored into a template.

A checkpoint is ``ckpt-<step:010d>.npz`` holding the flattened pytree leaves as ``leaf_00000``,
``leaf_00001``, … plus ``__manifest__``: the UTF-8 JSON of ``{"format": "fdivrl-checkpoint",
"version": 1, "step", "meta", "treedef", "leaves"}``, one leaf entry per leaf with its ``path``
(``jax.tree_util.keystr``), ``kind`` (jax, numpy, numpy-scalar, python or key, with the key's
``impl``), ``dtype``, ``shape`` and ``crc32``. An ml_dtypes leaf (bfloat16 & co.) is stored as a
same-width uint and viewed back on load. The pytree structure comes back from a template, so any
JAX/numpy pytree (flax TrainState, optax states, raw uint32 and typed PRNG keys, Python scalars)
restores with the same structure, dtypes and bits. Files are written atomically and the newest
``keep`` are kept; a damaged one is skipped (and may be quarantined as ``*.corrupt``) on restore.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fdivrl.errors import ConfigError, FdivrlError
from fdivrl.runs.io import RunWarning, atomic_write, json_dumps, jsonable

__all__ = ["Checkpoint", "latest_checkpoint", "list_checkpoints", "load_checkpoint", "save_checkpoint"]

_CKPT_RE = re.compile(r"^ckpt-(\d+)\.npz$")
_MANIFEST = "__manifest__"
_FORMAT = "fdivrl-checkpoint"
_FORMAT_VERSION = 1


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
        "meta": jsonable(dict(meta or {})),
        "treedef": str(treedef),
        "leaves": leaves,
    }
    arrays[_MANIFEST] = np.frombuffer(json_dumps(manifest).encode(), dtype=np.uint8)
    path = directory / f"ckpt-{int(step):010d}.npz"
    with atomic_write(path) as f:
        np.savez(f, allow_pickle=False, **arrays)
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


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's manifest (step, meta, leaves) without reading or verifying its arrays: cheap, for
    reports on runs that are still writing; raises :class:`FdivrlError` if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return json.loads(npz[_MANIFEST].tobytes().decode())
    except Exception as exc:  # a file pruned or replaced under us, or damaged
        raise FdivrlError(f"checkpoint {path} is unreadable: {type(exc).__name__}: {exc}") from exc


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
