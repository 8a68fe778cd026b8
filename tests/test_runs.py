"""Run directory: refuse/resume, locking, atomic files, log truncation, checkpoints, NaN policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training.train_state import TrainState

from fdivrl.errors import ConfigError, FdivrlError, TrainingDiverged
from fdivrl.runs.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from fdivrl.runs.io import RunWarning, atomic_write_json, read_jsonl, truncate_jsonl
from fdivrl.runs.lock import RunLock, RunLocked
from fdivrl.runs.provenance import versions
from fdivrl.runs.rundir import ConfigMismatch, IdentityMismatch, RunDir, check_finite, config_diff, is_finished

CONFIG = {"env": "antmaze-umaze", "lr": 3e-4, "steps": 1000, "per_type": "kl", "net": {"hidden": [256, 256]}}


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".tmp-" in p.name]


# --------------------------------------------------------------------------- create / refuse / resume


def test_create_writes_config_with_versions_and_command(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunDir.create(out, CONFIG, seeds={"seed": 3}, argv=["fdivrl", "train"]) as run:
        assert not run.resumed
        stored = run.read_config()
    assert stored["config"] == CONFIG
    assert stored["seeds"] == {"seed": 3}
    assert stored["command"] == ["fdivrl", "train"]
    for name in ("python", "jax", "flax", "optax", "numpy", "minari", "gymnasium", "gymnasium-robotics"):
        assert name in stored["versions"]
    assert stored["versions"]["fdivrl"]
    assert "machine" in stored["platform"]
    assert stored["platform"]["cpus_usable"] == len(os.sched_getaffinity(0))  # XLA's thread count: float sums
    if Path("/proc/cpuinfo").exists():  # the CPU and its vector extensions: stand-ins differ between them
        assert "cpu_model" in stored["platform"] and isinstance(stored["platform"]["cpu_isa"], list)
    assert _no_temp_files(out)


def test_existing_run_refused_without_resume(tmp_path: Path) -> None:
    RunDir.create(tmp_path, CONFIG).close()
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(FdivrlError, match=r"already holds a run.*--resume.*--out"):
        RunDir.create(tmp_path, {**CONFIG, "lr": 1.0})
    assert (tmp_path / "config.json").read_bytes() == before
    # the failed attempt released its lock
    RunDir.create(tmp_path, CONFIG, resume=True).close()


def test_non_empty_foreign_directory_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FdivrlError, match="not empty"):
        RunDir.create(tmp_path, CONFIG)
    with pytest.raises(FdivrlError, match="not empty"):
        RunDir.create(tmp_path, CONFIG, resume=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # a file where the run directory would go: kept, and the way out named for train and bench alike
    with pytest.raises(
        FdivrlError, match=r"notes.txt exists and is not a directory; choose another --out \(in a sweep"
    ):
        RunDir.create(tmp_path / "notes.txt", CONFIG, resume=True)
    with pytest.raises(FdivrlError, match=r"cannot be created \(.*\); choose another --out"):
        RunDir.create(tmp_path / "notes.txt" / "run", CONFIG)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_on_empty_directory_starts_fresh(tmp_path: Path) -> None:
    with RunDir.create(tmp_path / "new", CONFIG, resume=True) as run:
        assert not run.resumed
        assert run.restore({"x": np.zeros(2)}) is None


def test_resume_allows_steps_and_records_it(tmp_path: Path) -> None:
    RunDir.create(tmp_path, CONFIG).close()
    with RunDir.create(tmp_path, {**CONFIG, "steps": 5000}, resume=True) as run:
        assert run.resumed
        stored = run.read_config()
    assert stored["config"]["steps"] == 5000
    assert stored["resumes"][-1]["changed"] == {"config.steps": [1000, 5000]}
    assert stored["resumes"][-1]["cpus_usable"] == len(os.sched_getaffinity(0))


def test_resume_mismatch_names_keys(tmp_path: Path) -> None:
    RunDir.create(tmp_path, CONFIG, seeds={"seed": 0}).close()
    changed = {**CONFIG, "lr": 1e-3, "per_type": "chi2", "net": {"hidden": [64]}}
    with pytest.raises(ConfigMismatch) as err:
        RunDir.create(tmp_path, changed, resume=True, seeds={"seed": 0})
    msg = str(err.value)
    assert "\n" not in msg
    for key in ("lr", "per_type", "net.hidden"):
        assert key in msg
    assert "0.0003" in msg and "0.001" in msg
    with pytest.raises(ConfigMismatch, match=r"seeds\.seed"):
        RunDir.create(tmp_path, CONFIG, resume=True, seeds={"seed": 1})
    # caller-listed keys may change; tuples and lists are the same setting
    same_but_tuple = {**CONFIG, "lr": 1e-3, "net": {"hidden": (256, 256)}}
    RunDir.create(tmp_path, same_but_tuple, resume=True, allowed_changes=["lr"], seeds={"seed": 0}).close()


def test_a_field_added_after_a_run_was_recorded_resumes_at_the_value_it_trained_with(tmp_path: Path) -> None:
    RunDir.create(tmp_path, CONFIG).close()
    added = {"net.norm": False}  # a run of CONFIG trained without the later setting net.norm
    with pytest.raises(ConfigMismatch, match=r"net\.norm \(false → true\)"):
        RunDir.create(tmp_path, {**CONFIG, "net": {**CONFIG["net"], "norm": True}}, resume=True, added_fields=added)
    with pytest.raises(ConfigMismatch, match=r"net\.norm"):  # without the declaration it is a difference
        RunDir.create(tmp_path, {**CONFIG, "net": {**CONFIG["net"], "norm": False}}, resume=True)
    with RunDir.create(
        tmp_path, {**CONFIG, "net": {**CONFIG["net"], "norm": False}}, resume=True, added_fields=added
    ) as run:
        assert run.resumed


def test_resume_refuses_other_data_and_records_a_missing_fingerprint(tmp_path: Path) -> None:
    with RunDir.create(tmp_path / "a", CONFIG, identity={"data_fingerprint": "f00d"}) as run:
        assert run.read_config()["identity"] == {"data_fingerprint": "f00d"}
    RunDir.create(tmp_path / "a", CONFIG, resume=True, identity={"data_fingerprint": "f00d"}).close()
    before = (tmp_path / "a" / "config.json").read_bytes()
    with pytest.raises(IdentityMismatch) as err:
        RunDir.create(tmp_path / "a", CONFIG, resume=True, identity={"data_fingerprint": "beef"})
    msg = str(err.value)
    assert "\n" not in msg and "data fingerprint was f00d and is now beef" in msg and "--out" in msg
    assert (tmp_path / "a" / "config.json").read_bytes() == before
    # regenerated data also changes facts in the config (its reference scores): the fingerprint says why
    with pytest.raises(IdentityMismatch, match="data fingerprint was f00d"):
        RunDir.create(tmp_path / "a", {**CONFIG, "lr": 1.0}, resume=True, identity={"data_fingerprint": "beef"})
    assert "identity_added" not in json.loads(before)["resumes"][-1]  # nothing new to record
    # a run made before runs stored the fingerprint: nothing to compare, so it is recorded from now on
    RunDir.create(tmp_path / "b", CONFIG).close()
    stored = json.loads((tmp_path / "b" / "config.json").read_text())
    del stored["identity"]
    atomic_write_json(tmp_path / "b" / "config.json", stored)
    with RunDir.create(tmp_path / "b", CONFIG, resume=True, identity={"data_fingerprint": "f00d"}) as run:
        stored = run.read_config()
    assert stored["identity"] == {"data_fingerprint": "f00d"}
    assert stored["resumes"][-1]["identity_added"] == {"data_fingerprint": "f00d"}
    with pytest.raises(IdentityMismatch):
        RunDir.create(tmp_path / "b", CONFIG, resume=True, identity={"data_fingerprint": "beef"})
    # no data (an online run): nothing recorded, nothing compared
    with RunDir.create(tmp_path / "c", CONFIG, identity={"data_fingerprint": None}) as run:
        assert run.read_config()["identity"] == {}


def test_config_diff_paths() -> None:
    assert config_diff({"a": 1, "b": {"c": 2}}, {"a": 1.0, "b": {"c": 3}, "d": 0}) == ["b.c", "d"]
    assert config_diff({"a": True}, {"a": 1}) == ["a"]


def test_resume_with_more_steps_unfinishes_run(tmp_path: Path) -> None:
    with RunDir.create(tmp_path, CONFIG) as run:
        run.write_summary({"status": "finished", "score": 1.5})
    assert is_finished(tmp_path)
    with RunDir.create(tmp_path, CONFIG, resume=True) as run:  # same config: still finished
        assert run.is_finished()
        assert run.read_summary() == {"status": "finished", "score": 1.5}
    with RunDir.create(tmp_path, {**CONFIG, "steps": 2000}, resume=True) as run:
        assert not run.is_finished()
        assert run.read_summary() is None
    assert json.loads((tmp_path / "summary.previous.json").read_text())["score"] == 1.5


def test_is_finished_variants(tmp_path: Path) -> None:
    assert not is_finished(tmp_path / "absent")
    with RunDir.create(tmp_path, CONFIG) as run:
        assert not run.is_finished()
        run.write_summary({"status": "diverged"})
        assert not run.is_finished()
        (tmp_path / "summary.json").write_text("{torn")
        assert not run.is_finished()


# --------------------------------------------------------------------------- locking


def test_second_locker_fails_naming_pid(tmp_path: Path) -> None:
    with RunDir.create(tmp_path, CONFIG):
        with pytest.raises(RunLocked) as err:
            RunDir.create(tmp_path, CONFIG, resume=True)
        assert f"pid {os.getpid()}" in str(err.value)
        assert "\n" not in str(err.value)
    RunDir.create(tmp_path, CONFIG, resume=True).close()  # released on exit


def test_lock_held_by_other_process(tmp_path: Path) -> None:
    lock_path = tmp_path / ".lock"
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from fdivrl.runs.lock import RunLock
        lock = RunLock({str(lock_path)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunLocked, match=f"pid {proc.pid} "):
            RunLock(lock_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    # the kernel dropped the dead holder's lock: it is taken over
    with RunLock(lock_path) as lock:
        assert lock.held
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()


def test_stale_lock_file_taken_over(tmp_path: Path) -> None:
    (tmp_path / ".lock").write_text(json.dumps({"pid": 999_999_999, "host": "elsewhere", "since": "long ago"}))
    RunDir.create(tmp_path, CONFIG).close()
    assert (tmp_path / ".lock").read_text() == ""  # released lock leaves an empty file


# --------------------------------------------------------------------------- atomic writes, JSONL


def test_atomic_json_leaves_no_temp_and_survives_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": np.float32(1.5), "y": np.arange(3), "z": jnp.int32(4)})
    assert json.loads(target.read_text()) == {"x": 1.5, "y": [0, 1, 2], "z": 4}
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text())["x"] == 1.5  # old content intact
    assert _no_temp_files(tmp_path)


def test_leftover_temp_files_cleaned_on_create(tmp_path: Path) -> None:
    RunDir.create(tmp_path, CONFIG).close()
    (tmp_path / ".summary.json.tmp-abc").write_text("x")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".ckpt-0000000010.npz.tmp-xyz").write_bytes(b"x")
    RunDir.create(tmp_path, CONFIG, resume=True).close()
    assert _no_temp_files(tmp_path)


def test_torn_last_line_tolerated_and_repaired(tmp_path: Path) -> None:
    with RunDir.create(tmp_path, CONFIG) as run:
        run.log_metrics({"step": 1, "loss": 0.5})
        run.log_metrics({"step": 2, "loss": 0.25})
    with open(tmp_path / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 3, "lo')  # crash mid-write
    with pytest.warns(RunWarning, match="torn"):
        assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
    with RunDir.create(tmp_path, CONFIG, resume=True) as run, pytest.warns(RunWarning, match="torn"):
        run.log_metrics({"step": 3, "loss": 0.125})
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_corrupt_middle_line_raises(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(FdivrlError, match=r"m\.jsonl:2"):
        read_jsonl(path)


def test_log_record_needs_int_step(tmp_path: Path) -> None:
    with RunDir.create(tmp_path, CONFIG) as run:
        run.log_metrics({"step": np.int64(4), "x": np.float32(1.0)})
        with pytest.raises(TypeError):
            run.log_metrics({"loss": 1.0})
        assert run.read_metrics() == [{"step": 4, "x": 1.0}]


def test_truncate_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(0, 50, 10)))
    mtime = path.stat().st_mtime_ns
    assert truncate_jsonl(path, 100) == 0
    assert path.stat().st_mtime_ns == mtime  # nothing to do: not rewritten
    assert truncate_jsonl(path, 25) == 2
    assert [r["step"] for r in read_jsonl(path)] == [0, 10, 20]
    assert truncate_jsonl(path, None) == 3
    assert read_jsonl(path) == []
    assert _no_temp_files(tmp_path)


def _train(run: RunDir, start: int, stop: int, every: int, state: dict) -> dict:
    """A fake training loop: log each step, eval every 4th, checkpoint every ``every``."""
    for step in range(start, stop):
        state = {"w": state["w"] + 1.0, "step": step}
        run.log_metrics({"step": step, "w": float(state["w"][0])})
        if step % 4 == 0:
            run.log_eval({"step": step, "ret": step * 2})
        if step % every == 0:
            run.save_checkpoint(step, state)
    return state


def test_resumed_logs_equal_uninterrupted_logs(tmp_path: Path) -> None:
    init = {"w": np.zeros(3, np.float32), "step": 0}
    with RunDir.create(tmp_path / "full", CONFIG) as run:
        _train(run, 1, 31, 10, init)
    with RunDir.create(tmp_path / "cut", CONFIG) as run:
        _train(run, 1, 27, 10, init)  # "crashes" after step 26; last checkpoint is step 20
    with RunDir.create(tmp_path / "cut", CONFIG, resume=True) as run:
        restored = run.restore(init)
        assert restored is not None
        state, ckpt = restored
        assert ckpt.step == 20 and state["step"] == 20
        np.testing.assert_array_equal(state["w"], np.full(3, 20.0, np.float32))
        assert run.read_metrics()[-1]["step"] == 20
        _train(run, ckpt.step + 1, 31, 10, state)
    for name in ("metrics.jsonl", "eval.jsonl"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes()


def test_resume_without_checkpoint_clears_logs(tmp_path: Path) -> None:
    with RunDir.create(tmp_path, CONFIG) as run:
        run.log_metrics({"step": 1})
    with RunDir.create(tmp_path, CONFIG, resume=True) as run:
        assert run.restore({"a": np.zeros(1)}) is None
        assert run.read_metrics() == []


# --------------------------------------------------------------------------- checkpoints


class _MLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(1)(nn.relu(nn.Dense(8)(x)))


_MODEL = _MLP()
_TX = optax.adam(3e-4)  # static (non-leaf) parts of the TrainState come from the template


def _state(seed: int) -> dict:
    key = jax.random.PRNGKey(seed)  # raw uint32 key
    params = _MODEL.init(key, jnp.zeros((1, 3)))
    ts = TrainState.create(apply_fn=_MODEL.apply, params=params, tx=_TX)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    ts = ts.apply_gradients(grads=grads)  # non-trivial adam moments, step = 1
    return {
        "actor": ts,
        "rng": jax.random.split(key, 2)[0],
        "typed_rng": jax.random.split(jax.random.key(seed + 1), 3),
        "priorities": jax.random.uniform(key, (1000,), jnp.float32) + seed,
        "counts": jnp.arange(5, dtype=jnp.int32) * (seed + 1),
        "half": jnp.arange(4, dtype=jnp.bfloat16) / (seed + 3),  # .npy cannot name bfloat16
        "np_buffer": np.arange(12, dtype=np.float64).reshape(3, 4) * (seed + 1),
        "ids": np.arange(4, dtype=np.uint32) + seed,
        "scalars": (seed + 7, float(seed) / 3, np.float32(seed) / 7, True),
        "nothing": None,
    }


def _assert_tree_equal(a: object, b: object) -> None:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        assert type(x) is type(y)
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(jax.random.key_data(x), jax.random.key_data(y))
        elif isinstance(x, (jax.Array, np.ndarray, np.generic)):
            assert x.dtype == y.dtype and np.shape(x) == np.shape(y)
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
        else:
            assert x == y


def test_checkpoint_round_trip_exact(tmp_path: Path) -> None:
    saved = _state(1)
    save_checkpoint(tmp_path, 7, saved, meta={"phase": "online", "lr": np.float32(0.5)})
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.step == 7 and ckpt.meta == {"phase": "online", "lr": 0.5}
    restored = ckpt.restore(_state(0))  # a template with other values
    _assert_tree_equal(restored, saved)
    assert restored["rng"].dtype == jnp.uint32
    assert restored["actor"].step == 1 and restored["actor"].apply_fn == saved["actor"].apply_fn
    # restored keys and optimizer states are usable
    jax.random.normal(restored["typed_rng"][0])
    restored["actor"].apply_gradients(grads=jax.tree_util.tree_map(jnp.ones_like, restored["actor"].params))
    assert _no_temp_files(tmp_path)


def test_checkpoint_mismatch_raises(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, {"a": np.zeros(3, np.float32), "b": jnp.zeros(2)})
    ckpt = load_checkpoint(list_checkpoints(tmp_path)[-1][1])
    with pytest.raises(FdivrlError, match="shape"):
        ckpt.restore({"a": np.zeros(4, np.float32), "b": jnp.zeros(2)})
    with pytest.raises(FdivrlError, match="dtype"):
        ckpt.restore({"a": np.zeros(3, np.float64), "b": jnp.zeros(2)})
    with pytest.raises(FdivrlError, match="leaves"):
        ckpt.restore({"a": np.zeros(3, np.float32)})
    with pytest.raises(FdivrlError, match=r"\['c'\]"):
        ckpt.restore({"a": np.zeros(3, np.float32), "c": jnp.zeros(2)})


def test_checkpoint_restores_one_subtree_by_prefix(tmp_path: Path) -> None:
    saved = _state(1)
    save_checkpoint(tmp_path, 3, saved)
    ckpt = latest_checkpoint(tmp_path)
    params = ckpt.restore(_state(0)["actor"].params, prefix="['actor'].params")
    _assert_tree_equal(params, saved["actor"].params)
    np.testing.assert_array_equal(ckpt.restore(np.zeros(5, np.int32), prefix="['counts']"), saved["counts"])
    save_checkpoint(tmp_path / "names", 1, {"w": np.ones(2, np.float32), "w_ema": np.zeros(3, np.float32)})
    named = latest_checkpoint(tmp_path / "names")
    np.testing.assert_array_equal(named.restore(np.zeros(2, np.float32), prefix="['w']"), np.ones(2))  # not w_ema
    with pytest.raises(FdivrlError, match=r"0 leaves under \['critic'\]"):
        ckpt.restore(_state(0)["actor"].params, prefix="['critic']")
    with pytest.raises(FdivrlError, match="shape"):
        ckpt.restore(np.zeros(4, np.int32), prefix="['counts']")


def test_keep_last_n(tmp_path: Path) -> None:
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, {"s": jnp.int32(step)}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [30, 40]
    save_checkpoint(tmp_path, 50, {"s": jnp.int32(50)}, keep=3)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [30, 40, 50]
    with pytest.raises(ConfigError):
        save_checkpoint(tmp_path, 60, {"s": jnp.int32(60)}, keep=0)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_latest_checkpoint_skipped(tmp_path: Path, damage: str) -> None:
    template = {"p": np.zeros(1000, np.float32)}
    with RunDir.create(tmp_path, CONFIG) as run:
        run.save_checkpoint(10, {"p": np.full(1000, 1.0, np.float32)})
        run.save_checkpoint(20, {"p": np.full(1000, 2.0, np.float32)})
    newest = tmp_path / "checkpoints" / "ckpt-0000000020.npz"
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        del data[len(data) // 2 :]
    else:  # a flipped bit inside the array data: only the checksum notices
        data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))
    with pytest.warns(RunWarning, match="ckpt-0000000020"):
        ckpt = latest_checkpoint(tmp_path / "checkpoints")
    assert ckpt is not None and ckpt.step == 10
    with RunDir.create(tmp_path, CONFIG, resume=True) as run, pytest.warns(RunWarning):
        restored = run.restore(template)
    assert restored is not None
    assert restored[1].step == 10 and float(restored[0]["p"][0]) == 1.0
    assert (tmp_path / "checkpoints" / "ckpt-0000000020.npz.corrupt").exists()
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [10]


def test_no_checkpoint_returns_none(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_large_priorities_checkpoint(tmp_path: Path) -> None:
    big = {"priorities": np.random.default_rng(0).random(1_000_000, dtype=np.float32), "key": jax.random.PRNGKey(3)}
    t0 = time.perf_counter()
    save_checkpoint(tmp_path, 1, big)
    restored = latest_checkpoint(tmp_path).restore(big)  # type: ignore[union-attr]
    assert time.perf_counter() - t0 < 10
    _assert_tree_equal(restored, big)


# --------------------------------------------------------------------------- NaN policy, versions


def test_check_finite_names_metric_and_step() -> None:
    check_finite({"critic_loss": 1.0, "alpha": jnp.float32(0.2), "phase": "online"}, step=5)
    with pytest.raises(TrainingDiverged) as err:
        check_finite({"critic_loss": 1.0, "actor_loss": float("nan")}, step=1234, last_checkpoint_step=1000)
    msg = str(err.value)
    assert "actor_loss" in msg and "1234" in msg and "checkpoint (step 1000) is kept" in msg
    assert "critic_loss" not in msg and "\n" not in msg
    with pytest.raises(TrainingDiverged, match="q_values"):
        check_finite({"q_values": jnp.array([1.0, jnp.inf])}, step=1)
    assert TrainingDiverged.exit_code == 5


def test_versions_keys() -> None:
    v = versions()
    assert set(v) >= {"python", "jax", "jaxlib", "flax", "optax", "numpy", "minari", "gymnasium"}
    assert v["jax"] == jax.__version__
