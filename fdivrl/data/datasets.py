"""Load minari datasets (D4RL AntMaze and local stand-ins) as flat transition arrays.

Why this module exists: the learner wants one flat array per field, while minari stores
episodes (T+1 observations for T steps) and can only reach remote data through the network.
This module reads local datasets only (never a download path), flattens the episodes once, and
caches the flat arrays next to the dataset so later runs start in a fraction of the time.

Conventions, chosen on purpose:

* Observation. AntMaze observations are dicts. AntMaze v4's ``observation`` entry is the 27-dim
  ant state *without* its x, y position, so on its own it cannot tell where the ant is in the maze
  nor where the goal is. The default state therefore concatenates, in this order,
  ``achieved_goal`` (the ant's x, y), ``observation`` (27) and ``desired_goal`` (goal x, y):
  31 dims. The goal is fixed within a D4RL AntMaze dataset, so it is constant per dataset but keeps
  the state meaningful for the eval env and for stand-ins with other goals. Box observations are
  used as they are (``obs_keys`` is then ignored and recorded as ``()``).
* Reward. ``reward + reward_shift`` with ``reward_shift=-1.0`` by default: the AntMaze convention
  of IQL / XQL / ROER (sparse 0/1 reward becomes -1/0). Pass 0 to keep the raw reward.
* Masks are ``1 - terminations`` and never use truncations: a time limit (or minari's forced
  checkpoint split) is not a terminal state, so bootstrapping must continue through it.
  ``episode_ends`` marks the last transition of every episode, however it ended.

Every failure a user can cause (missing dataset, corrupt files, NaN, unsupported spaces, data
written by a newer minari) raises :class:`fdivrl.errors.DatasetError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fdivrl.errors import ConfigError, DatasetError
from fdivrl.runs.io import atomic_write

log = logging.getLogger(__name__)

DEFAULT_OBS_KEYS: tuple[str, ...] = ("achieved_goal", "observation", "desired_goal")
DEFAULT_REWARD_SHIFT = -1.0
# Bump when the cached arrays' meaning or layout changes: old cache files then stop matching.
# 2: the cache stores the arrays' fingerprint.
CACHE_FORMAT_VERSION = 2
CACHE_DIR_NAME = "fdivrl_cache"
_METADATA_FILE = "metadata.json"
_ARRAY_FIELDS = ("observations", "actions", "rewards", "next_observations", "masks", "episode_ends")
# Same alphabet as minari's id regex; also keeps ids from escaping the root ("..", absolute paths).
_ID_RE = re.compile(r"^(?:[-\w]+/)*[-\w]+?(?:-v(?P<version>\d+))?$")
_D4RL_ANTMAZE_RE = re.compile(r"^D4RL/antmaze/(?P<task>[-\w]+?)(?:-v\d+)?$")


class Transitions(NamedTuple):
    """Flat transitions, float32 except ``episode_ends``; row i of every array is one step.

    A NamedTuple so it is a JAX pytree as is (``jax.device_put(transitions)`` works) without this
    I/O module importing JAX.
    """

    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32
    rewards: np.ndarray  # (N,) float32, reward_shift already applied
    next_observations: np.ndarray  # (N, obs_dim) float32
    masks: np.ndarray  # (N,) float32 = 1 - terminations (truncations never zero it)
    episode_ends: np.ndarray  # (N,) bool, True at the last transition of each episode

    @property
    def size(self) -> int:
        """Number of transitions (``len()`` would count the six fields: it is a tuple)."""
        return int(self.rewards.shape[0])


@dataclass(frozen=True)
class DatasetInfo:
    """What a run needs to know about the data it trained on (stored in the run's config)."""

    dataset_id: str
    env_id: str | None  # from the recorded env_spec; None when the dataset records no env
    env_spec: str | None  # JSON of the collecting env's EnvSpec
    eval_env_spec: str | None  # JSON of the evaluation EnvSpec, None when the dataset has none
    ref_min_score: float | None
    ref_max_score: float | None
    obs_keys: tuple[str, ...]  # dict keys concatenated into the state; () for Box observations
    reward_shift: float
    n_episodes: int
    n_transitions: int
    minari_version: str  # the minari version that wrote the dataset
    is_local_standin: bool  # True unless the id is in minari's D4RL/ namespace
    obs_dim: int
    act_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    algorithm_name: str | None
    data_path: str
    from_cache: bool = False
    fingerprint: str | None = None  # of the flat arrays (see fingerprint()); a run refuses to resume on other data

    @property
    def reference_scores(self) -> tuple[float, float] | tuple[None, None]:
        """(ref_min, ref_max) when they define a normalized score, else (None, None): a dataset
        without them, or whose reference policy did no better than random (equal scores), is still
        trainable; its evaluations just carry no normalized score."""
        low, high = self.ref_min_score, self.ref_max_score
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or high <= low:
            return None, None
        return low, high

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for run configs and summaries)."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Locating datasets


def datasets_root() -> Path:
    """Minari's dataset root: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets`` (not created)."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def dataset_dir(dataset_id: str) -> Path:
    """Directory of a dataset id under the root (it may not exist)."""
    return datasets_root() / dataset_id


def local_datasets() -> list[str]:
    """Ids of the datasets present under :func:`datasets_root`, sorted.

    Uses ``minari.list_local_datasets`` and falls back to walking the tree ourselves, because
    minari's listing raises on directories whose names carry no ``-v<k>`` version and creates the
    root as a side effect.
    """
    root = datasets_root()
    if not root.is_dir():
        return []
    try:
        import minari

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # minari warns once per misconfigured dataset
            return sorted(minari.list_local_datasets())
    except Exception:
        return sorted(_walk_local_datasets(root))


def _walk_local_datasets(root: Path) -> Iterator[str]:
    """Directories ``<ns>/<name>-v<k>`` holding ``data/metadata.json`` (minari 0.5 layout)."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            children = [c for c in directory.iterdir() if c.is_dir() and not c.name.startswith(".")]
        except OSError:
            continue
        if (directory / "data" / _METADATA_FILE).is_file() and directory != root:
            dataset_id = directory.relative_to(root).as_posix()
            if _ID_RE.match(dataset_id):
                yield dataset_id
            continue
        stack.extend(children)


def standin_command(dataset_id: str) -> str | None:
    """The ``fdivrl data`` command that builds a local stand-in for a D4RL AntMaze id, if any."""
    match = _D4RL_ANTMAZE_RE.match(dataset_id)
    return f"fdivrl data antmaze {match['task']}" if match else None


def _missing_message(dataset_id: str) -> str:
    root = datasets_root()
    present = [d for d in local_datasets() if d != dataset_id]
    if present:
        shown = ", ".join(present[:10]) + (f" (+{len(present) - 10} more)" if len(present) > 10 else "")
        local = f"datasets present locally: {shown}"
    else:
        local = f"no datasets are present under {root}"
    standin = standin_command(dataset_id)
    if standin is not None:
        make = f"or build a local stand-in with `{standin}` and pass the id it prints"
    else:
        make = "or build a local dataset (`fdivrl data --help`; AntMaze: `fdivrl data antmaze <task>`)"
    return (
        f"dataset '{dataset_id}' not found under {root} (set MINARI_DATASETS_PATH to use another root); "
        f"{local}; on a machine with internet run `minari download {dataset_id}` and copy the directory "
        f"it writes (~/.minari/datasets/{dataset_id}) to {Path(root, dataset_id)}; {make}"
    )


def _resolve_id(dataset_id: str) -> str:
    """Validate the id; an id without ``-v<k>`` means the newest local version."""
    match = _ID_RE.match(dataset_id)
    if not match:
        raise DatasetError(
            f"malformed dataset id '{dataset_id}'; expected (namespace/)name-v<version>, e.g. D4RL/antmaze/umaze-v1"
        )
    if match["version"] is not None:
        return dataset_id
    versions = []
    for other in local_datasets():
        head, _, version = other.rpartition("-v")
        if head == dataset_id and version.isdigit():
            versions.append((int(version), other))
    if not versions:
        raise DatasetError(_missing_message(dataset_id))
    return max(versions)[1]


# --------------------------------------------------------------------------------------------
# Metadata and version checks


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no details"
    return f"{type(exc).__name__}: {text[:300]}"


def _read_metadata(dataset_id: str, data_path: Path) -> dict[str, Any]:
    try:
        with open(data_path / _METADATA_FILE, encoding="utf-8") as file:
            metadata = json.load(file)
    except FileNotFoundError as exc:
        raise DatasetError(
            f"dataset '{dataset_id}' is incomplete: {data_path} has no {_METADATA_FILE} "
            "(interrupted download or copy?); delete the directory and download or rebuild it"
        ) from exc
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DatasetError(
            f"dataset '{dataset_id}': cannot read {data_path / _METADATA_FILE} ({_one_line(exc)}); "
            "the dataset is corrupt: delete it and download or rebuild it"
        ) from exc
    if not isinstance(metadata, dict):
        raise DatasetError(f"dataset '{dataset_id}': {data_path / _METADATA_FILE} is not a JSON object")
    return metadata


def _check_version(dataset_id: str, metadata: dict[str, Any]) -> str:
    """Refuse data minari cannot read: an older minari cannot read what a newer one wrote."""
    import minari
    from packaging.version import InvalidVersion, Version

    recorded = metadata.get("minari_version")
    installed = minari.__version__
    if not isinstance(recorded, str):
        raise DatasetError(f"dataset '{dataset_id}': metadata records no minari_version; it is corrupt")
    try:
        newer = Version(recorded) > Version(installed)
    except InvalidVersion as exc:
        raise DatasetError(f"dataset '{dataset_id}': unreadable minari_version '{recorded}' in its metadata") from exc
    if newer:
        raise DatasetError(
            f"dataset '{dataset_id}' was written by minari {recorded} but minari {installed} is installed "
            f"and cannot read newer data; rebuild the dataset with minari {installed} "
            f"or install minari=={recorded} (fdivrl pins {installed})"
        )
    if recorded not in getattr(minari, "supported_dataset_versions", {recorded}):
        raise DatasetError(
            f"dataset '{dataset_id}' was written by minari {recorded}, which minari {installed} "
            "no longer supports; download or rebuild it with the installed minari"
        )
    return recorded


def _optional_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _env_id(spec_json: str | None) -> str | None:
    if not spec_json:
        return None
    try:
        spec = json.loads(spec_json)
    except ValueError:
        return None
    return spec.get("id") if isinstance(spec, dict) else None


# --------------------------------------------------------------------------------------------
# Reading and flattening


def _data_files_signature(data_path: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file minari keeps for the dataset."""
    signature = []
    for path in sorted(data_path.rglob("*")):
        if path.is_file():
            stat = path.stat()
            signature.append((path.relative_to(data_path).as_posix(), stat.st_size, stat.st_mtime_ns))
    return signature


def _cache_key(data_path: Path, obs_keys: tuple[str, ...], reward_shift: float) -> str:
    payload = json.dumps(
        {
            "format": CACHE_FORMAT_VERSION,
            "obs_keys": list(obs_keys),
            "reward_shift": repr(float(reward_shift)),
            "files": _data_files_signature(data_path),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _open_storage(dataset_id: str, data_path: Path) -> Any:
    """minari's storage reader (hdf5 or arrow); it only touches local files."""
    from minari.dataset.minari_storage import MinariStorage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MinariStorage.read(data_path)
    except ImportError as exc:
        raise DatasetError(
            f"dataset '{dataset_id}' needs a storage backend that is not installed ({_one_line(exc)}); "
            "install minari[arrow] or convert the dataset to hdf5"
        ) from exc


def _check_spaces(dataset_id: str, storage: Any, obs_keys: tuple[str, ...]) -> tuple[str, ...]:
    """Return the dict keys to use (``()`` for a Box); refuse spaces the learner cannot use."""
    from gymnasium import spaces

    act_space, obs_space = storage.action_space, storage.observation_space
    if not isinstance(act_space, spaces.Box):
        raise DatasetError(
            f"dataset '{dataset_id}' has a {type(act_space).__name__} action space; "
            "fdivrl needs continuous (Box) actions"
        )
    if isinstance(obs_space, spaces.Box):
        return ()
    if not isinstance(obs_space, spaces.Dict):
        raise DatasetError(
            f"dataset '{dataset_id}' has a {type(obs_space).__name__} observation space; "
            "fdivrl needs Box or Dict-of-Box observations"
        )
    available = list(obs_space.spaces)
    missing = [k for k in obs_keys if k not in obs_space.spaces]
    if missing or not obs_keys:
        raise DatasetError(
            f"dataset '{dataset_id}': observation key(s) {', '.join(missing) or '(none given)'} not in its "
            f"dict observation; available keys: {', '.join(available)}"
        )
    for key in obs_keys:
        if not isinstance(obs_space.spaces[key], spaces.Box):
            raise DatasetError(
                f"dataset '{dataset_id}': observation key '{key}' is a "
                f"{type(obs_space.spaces[key]).__name__}, not a Box; choose Box keys among: "
                f"{', '.join(available)}"
            )
    return tuple(obs_keys)


def _flat_obs(observations: Any, obs_keys: tuple[str, ...]) -> np.ndarray:
    if obs_keys:
        parts = [np.asarray(observations[k]) for k in obs_keys]
        parts = [p.reshape(p.shape[0], -1) for p in parts]
        return np.concatenate(parts, axis=1).astype(np.float32)
    obs = np.asarray(observations)
    return obs.reshape(obs.shape[0], -1).astype(np.float32)


def _read_episodes(storage: Any) -> Iterable[dict[str, Any]]:
    """Yield minari's episode dicts (the one place that reads the data file; tests patch it)."""
    return storage.get_episodes(range(storage.total_episodes))


def _flatten(
    dataset_id: str, storage: Any, obs_keys: tuple[str, ...], reward_shift: float
) -> tuple[dict[str, np.ndarray], int]:
    obs, nxt, act, rew, term, ends = [], [], [], [], [], []
    n_episodes = 0
    for episode in _read_episodes(storage):
        o = _flat_obs(episode["observations"], obs_keys)
        a = np.asarray(episode["actions"], dtype=np.float32)
        r = np.asarray(episode["rewards"], dtype=np.float32).reshape(-1)
        t = np.asarray(episode["terminations"], dtype=bool).reshape(-1)
        steps = r.shape[0]
        if steps == 0 or o.shape[0] != steps + 1 or a.shape[0] != steps or t.shape[0] != steps:
            raise DatasetError(
                f"dataset '{dataset_id}': episode {episode.get('id', n_episodes)} is malformed "
                f"({o.shape[0]} observations, {a.shape[0]} actions, {steps} rewards; expected T+1, T, T "
                "with T > 0)"
            )
        obs.append(o[:-1])
        nxt.append(o[1:])
        act.append(a.reshape(steps, -1))
        rew.append(r)
        term.append(t)
        end = np.zeros(steps, dtype=bool)
        end[-1] = True
        ends.append(end)
        n_episodes += 1
    if n_episodes == 0:
        raise DatasetError(f"dataset '{dataset_id}' holds no episodes")
    arrays = {
        "observations": np.concatenate(obs),
        "actions": np.concatenate(act),
        "rewards": np.concatenate(rew),
        "next_observations": np.concatenate(nxt),
        "masks": 1.0 - np.concatenate(term).astype(np.float32),
        "episode_ends": np.concatenate(ends),
    }
    found = _non_finite(arrays, ("rewards", "observations", "next_observations", "actions"))
    if found is not None:
        name, count, first = found
        raise DatasetError(
            f"dataset '{dataset_id}' has {count} NaN/inf value(s) in {name} "
            f"(first at transition {first}, or beyond float32 range); the data are corrupt"
        )
    arrays["rewards"] = (arrays["rewards"] + np.float32(reward_shift)).astype(np.float32)
    return arrays, n_episodes


def _non_finite(arrays: dict[str, np.ndarray], names: Iterable[str]) -> tuple[str, int, int] | None:
    """(field, how many NaN/inf values, first transition holding one) of the first field with any."""
    for name in names:
        bad = ~np.isfinite(arrays[name])
        if bad.any():
            return name, int(bad.sum()), int(np.argwhere(bad)[0][0])
    return None


# --------------------------------------------------------------------------------------------
# Cache


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """A digest of the flat arrays a run trains on: names, dtypes, shapes and bytes.

    Stand-ins are regenerated on each machine, and a walker or MuJoCo build that rounds one step
    differently makes other data under the same id; a run resumed on them would mix two datasets.
    The runs record this digest and compare it on resume.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name in _ARRAY_FIELDS:
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def _cache_path(data_path: Path, key: str) -> Path:
    return data_path.parent / CACHE_DIR_NAME / f"flat-{key}.npz"


def _load_cache(path: Path, key: str) -> tuple[dict[str, np.ndarray], int, str] | None:
    """The cached arrays, or None when absent or unusable (it will be rebuilt).

    Values are checked too: the dataset's own values were checked when the cache was written, so a
    NaN here means the cache file was damaged, and training on it would look like divergence."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key or int(npz["format"]) != CACHE_FORMAT_VERSION:
                return None
            arrays = {name: npz[name] for name in _ARRAY_FIELDS}
            n_episodes = int(npz["n_episodes"])
            digest = str(npz["fingerprint"])
            if not re.fullmatch(r"[0-9a-f]{32}", digest):
                return None
        n = arrays["rewards"].shape[0]
        ok = (
            all(a.shape[0] == n for a in arrays.values())
            and arrays["observations"].ndim == 2
            and arrays["observations"].shape == arrays["next_observations"].shape
            and arrays["actions"].ndim == 2
            and arrays["episode_ends"].dtype == np.bool_
            and all(arrays[f].dtype == np.float32 for f in _ARRAY_FIELDS if f != "episode_ends")
            and int(arrays["episode_ends"].sum()) == n_episodes
            and n > 0
        )
        if not ok:
            return None
        found = _non_finite(arrays, (f for f in _ARRAY_FIELDS if f != "episode_ends"))
        if found is not None:
            log.warning("ignoring cache %s: %d NaN/inf value(s) in %s; rebuilding it", path, found[1], found[0])
            return None
        return arrays, n_episodes, digest
    except Exception as exc:  # corrupt or truncated cache: ignore, rebuild
        log.warning("ignoring unreadable cache %s (%s); rebuilding it", path, _one_line(exc))
        return None


def _write_cache(path: Path, key: str, arrays: dict[str, np.ndarray], n_episodes: int, digest: str) -> None:
    """Write atomically so readers never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            np.savez(
                file,
                key=np.array(key),
                format=np.array(CACHE_FORMAT_VERSION),
                n_episodes=np.array(n_episodes),
                fingerprint=np.array(digest),
                **arrays,
            )
    except OSError as exc:  # read-only or full disk: loading still works, just not cached
        log.warning("could not write dataset cache %s (%s)", path, _one_line(exc))


# --------------------------------------------------------------------------------------------
# Public loader


def load(
    dataset_id: str,
    obs_keys: Sequence[str] = DEFAULT_OBS_KEYS,
    reward_shift: float = DEFAULT_REWARD_SHIFT,
    cache: bool = True,
) -> tuple[Transitions, DatasetInfo]:
    """Load a local minari dataset as flat transitions plus its metadata.

    ``obs_keys`` picks and orders the dict-observation entries (ignored for Box observations);
    ``reward_shift`` is added to every reward once (AntMaze: -1). With ``cache`` the flattened
    arrays are read from / written to ``<dataset dir>/fdivrl_cache/``.
    """
    obs_keys = (obs_keys,) if isinstance(obs_keys, str) else tuple(obs_keys)
    if not math.isfinite(float(reward_shift)):
        raise ConfigError(f"reward_shift must be finite, got {reward_shift}")
    dataset_id = _resolve_id(dataset_id)
    data_path = dataset_dir(dataset_id) / "data"
    if not data_path.is_dir():
        raise DatasetError(_missing_message(dataset_id))
    metadata = _read_metadata(dataset_id, data_path)
    minari_version = _check_version(dataset_id, metadata)
    try:
        if "observation_space" not in metadata or "action_space" not in metadata:
            register_robotics_envs()  # old datasets: minari makes the env to learn its spaces
        storage = _open_storage(dataset_id, data_path)
        used_keys = _check_spaces(dataset_id, storage, obs_keys)
        key = _cache_key(data_path, used_keys, reward_shift)
        cache_path = _cache_path(data_path, key)
        cached = _load_cache(cache_path, key) if cache else None
        if cached is None:
            started = time.perf_counter()
            arrays, n_episodes = _flatten(dataset_id, storage, used_keys, reward_shift)
            digest = fingerprint(arrays)
            log.info("flattened %s in %.2fs", dataset_id, time.perf_counter() - started)
            if cache:
                _write_cache(cache_path, key, arrays, n_episodes, digest)
        else:
            arrays, n_episodes, digest = cached
    except DatasetError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # minari, h5py, OSError, KeyError, json, assertion errors from minari
        raise DatasetError(
            f"dataset '{dataset_id}' under {data_path} is unreadable or corrupt ({_one_line(exc)}); "
            "delete it and download or rebuild it"
        ) from exc

    transitions = Transitions(**arrays)
    n = transitions.size
    total_steps = metadata.get("total_steps")
    if isinstance(total_steps, int) and total_steps != n:
        raise DatasetError(
            f"dataset '{dataset_id}': metadata says {total_steps} steps but the data hold {n}; "
            "the dataset is incomplete or corrupt"
        )
    act_space = storage.action_space
    env_spec = metadata.get("env_spec") if isinstance(metadata.get("env_spec"), str) else None
    eval_json = metadata.get("eval_env_spec") if isinstance(metadata.get("eval_env_spec"), str) else None
    info = DatasetInfo(
        dataset_id=dataset_id,
        env_id=_env_id(env_spec),
        env_spec=env_spec,
        eval_env_spec=eval_json,
        ref_min_score=_optional_float(metadata.get("ref_min_score")),
        ref_max_score=_optional_float(metadata.get("ref_max_score")),
        obs_keys=used_keys,
        reward_shift=float(reward_shift),
        n_episodes=n_episodes,
        n_transitions=n,
        minari_version=minari_version,
        is_local_standin=not dataset_id.startswith("D4RL/"),
        obs_dim=int(transitions.observations.shape[1]),
        act_dim=int(transitions.actions.shape[1]),
        action_low=tuple(float(x) for x in np.asarray(act_space.low).reshape(-1)),
        action_high=tuple(float(x) for x in np.asarray(act_space.high).reshape(-1)),
        algorithm_name=metadata.get("algorithm_name") if isinstance(metadata.get("algorithm_name"), str) else None,
        data_path=str(data_path),
        from_cache=cached is not None,
        fingerprint=digest,
    )
    return transitions, info


# --------------------------------------------------------------------------------------------
# Environments


def env_spec_from_json(spec_json: str) -> Any:
    """Parse an EnvSpec JSON written by any gymnasium 0.29-1.x (drops fields this one lacks)."""
    from gymnasium.envs.registration import EnvSpec, WrapperSpec

    raw = json.loads(spec_json)
    fields = {f.name for f in dataclasses.fields(EnvSpec) if f.init}
    wrappers = tuple(WrapperSpec(**w) for w in raw.pop("additional_wrappers", None) or ())
    return EnvSpec(
        **{k: v for k, v in raw.items() if k in fields and k != "additional_wrappers"},
        additional_wrappers=wrappers,
    )


def register_robotics_envs() -> None:
    """Register gymnasium-robotics envs. Its first import prints an unrelated Adroit notice
    (farama_notifications) to stderr; we swallow it so every run does not start with noise."""
    import gymnasium as gym

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics
    gym.register_envs(gymnasium_robotics)


def make_env(spec: Any, **kwargs: Any) -> Any:
    """``gym.make(spec, **kwargs)`` with gymnasium's "v4 is out of date" warning silenced (v4 is
    what the D4RL data were made in); robotics ids need register_robotics_envs() first.

    gymnasium-robotics writes each maze's MuJoCo model to a new ``ant_maze<time>.xml`` in the temp
    directory and never deletes it: one file per env made, thousands over a sweep's evaluations.
    MuJoCo has read it once the env exists, so it is removed here (only from the temp directory)."""
    import gymnasium as gym

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*is out of date")
        env = gym.make(spec, **kwargs)
    leaked = getattr(env.unwrapped, "tmp_xml_file_path", None)
    # only the per-env name (v4, v5: ant_maze<time.time()>.xml); v3 writes one fixed ant_maze.xml that
    # another process may be about to load
    if (
        isinstance(leaked, str)
        and _MAZE_XML.fullmatch(os.path.basename(leaked))
        and os.path.dirname(os.path.abspath(leaked)) == os.path.abspath(tempfile.gettempdir())
    ):
        with contextlib.suppress(OSError):
            os.remove(leaked)
    return env


_MAZE_XML = re.compile(r"ant_maze\d+(\.\d+)?\.xml")


def eval_spec(info: DatasetInfo) -> Any:
    """The EnvSpec to evaluate in: the dataset's eval_env_spec, else the collecting env's spec.

    For vectorized evaluation (``gym.make_vec(spec, ...)``); robotics envs are registered first.
    """
    spec_json = info.eval_env_spec or info.env_spec
    if spec_json is None:
        raise DatasetError(f"dataset '{info.dataset_id}' records no environment to evaluate in")
    try:
        register_robotics_envs()
        return env_spec_from_json(spec_json)
    except MemoryError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"dataset '{info.dataset_id}': unreadable environment spec for {_env_id(spec_json)} ({_one_line(exc)})"
        ) from exc


def recover_eval_env(info: DatasetInfo, **kwargs: Any) -> Any:
    """A gymnasium env for evaluation: the dataset's eval_env_spec, else the collecting env's spec.

    ``kwargs`` go to ``gym.make`` (e.g. ``max_episode_steps``, ``render_mode``).
    """
    spec = eval_spec(info)
    try:
        return make_env(spec, **kwargs)
    except MemoryError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"dataset '{info.dataset_id}': cannot make its evaluation env {spec.id} ({_one_line(exc)})"
        ) from exc
