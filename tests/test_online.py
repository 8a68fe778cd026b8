"""Online SAC+ROER: the learner's online step, the ring buffer, finetune prefill and the CLI end to end."""

from __future__ import annotations

import json

import gymnasium as gym
import jax
import jax.numpy as jnp
import minari
import numpy as np
import pytest

from fdivrl import config as C
from fdivrl.cli.app import main
from fdivrl.core import divergences as D
from fdivrl.data import datasets as minari_data
from fdivrl.errors import ConfigError
from fdivrl.learning.learner import Batch, Learner, LearnerConfig, to_batch
from fdivrl.learning.replay import ReplayConfig
from fdivrl.runs.io import read_jsonl
from fdivrl.training.loop import train
from fdivrl.training.online import _score, env_info, gym_env_info, prefill


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def make_learner(per_type: str = "KL", mode: str = "weight", **learner) -> Learner:
    div = D.get(per_type)
    cfg = C.with_overrides(
        C.preset_config("quick", None, per_type, mode="online", env="Hopper-v5"),
        replay={"mode": mode},
        learner={"hidden": (32, 32), "batch_size": 16, **learner},
    )
    return Learner(div, cfg.divergence, cfg.replay, cfg.learner, obs_dim=5, act_dim=2)


def random_batch(n: int, obs_dim: int = 5, act_dim: int = 2, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        observations=jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
        actions=jnp.asarray(rng.uniform(-1, 1, size=(n, act_dim)), jnp.float32),
        rewards=jnp.asarray(rng.normal(size=n), jnp.float32),
        next_observations=jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
        masks=jnp.asarray(rng.uniform(size=n) > 0.1, jnp.float32),
    )


@pytest.mark.parametrize(("per_type", "mode"), [("KL", "weight"), ("JS", "weight"), ("PER", "sample")])
def test_online_steps_change_every_network_and_stay_finite(per_type, mode):
    learner = make_learner(per_type, mode)
    data = jax.tree_util.tree_map(lambda x: x[None], random_batch(64))
    state = learner.init_seeds([0], 64, online=True)
    before = jax.tree_util.tree_map(np.asarray, state)
    program = learner.compiled_online(3)
    new = jax.tree_util.tree_map(lambda x: x[:, :4], data)
    state, data, metrics = program(state, data, new, jnp.asarray(0, jnp.int32))
    # PER's priorities come from the critic's TD error (ROER's code): it needs no V, so V stays
    uses_v = not learner.div.critic_priority
    for name in ("actor", "critic", "value", "temperature"):
        old = jax.tree_util.tree_leaves(getattr(before, name).params)
        now = jax.tree_util.tree_leaves(getattr(state, name).params)
        moved = any(not np.allclose(a, b) for a, b in zip(old, now, strict=True))
        assert moved == (uses_v or name != "value"), name
    assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())
    assert {"temperature", "entropy", "critic_loss", "priority_raw_mean"} <= set(metrics)
    assert ("value_loss" in metrics) == uses_v
    assert int(state.step[0]) == 3


def test_uniform_replay_skips_value_and_priorities_and_is_otherwise_the_same_step():
    """Plain SAC leaves V and the replay alone; actor, critic and α move exactly as a prioritized
    step's do while every stored weight is still 1 (same keys, same batch)."""
    after = {}
    for per_type in ("uniform", "KL"):
        data = jax.tree_util.tree_map(lambda x: x[None], random_batch(64))  # donated by the program
        new = jax.tree_util.tree_map(lambda x: x[:, :4], data)
        learner = make_learner(per_type, "weight", critic_loss="mse")  # ROER's Huber only rescales
        state = learner.init_seeds([0], 64, online=True)
        before = jax.tree_util.tree_map(np.asarray, state)
        state, _, metrics = learner.compiled_online(1)(state, data, new, jnp.asarray(0, jnp.int32))
        after[per_type] = (before, state, metrics)
    before, uniform, metrics = after["uniform"]
    assert "value_loss" not in metrics and "priority_raw_mean" not in metrics
    for old, now in zip(jax.tree_util.tree_leaves(before.value), jax.tree_util.tree_leaves(uniform.value), strict=True):
        np.testing.assert_array_equal(old, np.asarray(now))
    _, kl, _ = after["KL"]
    for name in ("actor", "critic", "target_critic", "temperature"):
        got, want = getattr(uniform, name), getattr(kl, name)
        got, want = (got.params, want.params) if name != "target_critic" else (got, want)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7, err_msg=name)


def test_gradient_penalty_matches_per_head_input_gradients():
    """The penalty term equals λ·Σ_heads mean over samples of max(‖∇_a Q_h(s, a)‖ − 1, 0)² (ROER sums the
    two heads' penalties; an average over heads would halve λ_gp)."""
    off, on = make_learner(grad_penalty=0.0), make_learner(grad_penalty=2.5)
    b = random_batch(8)
    params = off.critic_def.init(jax.random.PRNGKey(1), b.observations, b.actions)
    # scale the weights up so that some gradient norms exceed 1 and the penalty is active
    params = jax.tree_util.tree_map(lambda x: 8.0 * x, params)
    target, w = jnp.zeros(8), jnp.ones(8)
    plain, q = off.online_critic_loss(params, b.observations, b.actions, target, w)
    with_gp, _ = on.online_critic_loss(params, b.observations, b.actions, target, w)
    expected = 0.0
    for h in range(q.shape[0]):
        for i in range(8):

            def q_h(a, h=h, i=i):
                return off.critic_def.apply(params, b.observations[i : i + 1], a[None])[h, 0]

            g = np.asarray(jax.grad(q_h)(b.actions[i]))
            expected += max(np.linalg.norm(g) - 1.0, 0.0) ** 2
    expected = 2.5 * expected / 8
    assert expected > 0
    np.testing.assert_allclose(float(with_gp - plain), expected, rtol=1e-4)


def test_insert_wraps_the_ring_buffer_and_marks_fresh_items():
    learner = make_learner("PER", "sample")
    state = learner.init(jax.random.PRNGKey(0), 0, capacity=6, online=True)
    data = jax.tree_util.tree_map(lambda x: jnp.zeros((6, *x.shape[1:]), x.dtype), random_batch(1))
    new = random_batch(4, seed=3)
    state, data = learner.insert(state, data, new, jnp.asarray(4, jnp.int32))
    np.testing.assert_array_equal(np.asarray(data.rewards)[[4, 5, 0, 1]], np.asarray(new.rewards))
    np.testing.assert_array_equal(np.asarray(data.rewards)[[2, 3]], 0.0)
    assert int(state.replay.size) == 6  # the wrapped write reached the last slot


def test_finetune_prefill_keeps_the_dataset_intact(tiny_dataset_id):
    transitions, info = minari_data.load(tiny_dataset_id, reward_shift=-1.0)
    buffer = prefill(to_batch(transitions), capacity=info.n_transitions + 50)
    n = info.n_transitions
    assert buffer.rewards.shape[0] == n + 50
    episodes = list(minari.load_dataset(tiny_dataset_id).iterate_episodes())
    assert n == sum(len(e.rewards) for e in episodes)
    raw_rewards = np.concatenate([e.rewards for e in episodes])
    np.testing.assert_allclose(np.asarray(buffer.rewards[:n]), raw_rewards - 1.0)  # shifted exactly once
    terms = np.concatenate([e.terminations for e in episodes])
    np.testing.assert_array_equal(np.asarray(buffer.masks[:n]), 1.0 - terms)  # truncations never cut
    np.testing.assert_array_equal(np.asarray(buffer.rewards[n:]), 0.0)
    with pytest.raises(ConfigError, match="whole dataset"):
        prefill(to_batch(transitions), capacity=n - 1)


def test_cli_online_smoke_writes_a_run_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--mode", "online", "--env", "InvertedPendulum-v5", "--per-type", "KL", "--steps", "120"]
    argv += ["--start-steps", "40", "--chunk", "20", "--eval-every", "60", "--eval-episodes", "1", "--batch-size", "16"]
    argv += ["--buffer-size", "500"]
    argv += ["--seeds", "2", "--out", str(out), "--json", "--quiet"]
    code, stdout, err = cli(argv, capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["status"] == "finished" and summary["mode"] == "online" and summary["steps"] == 120
    assert summary["env"] == "InvertedPendulum-v5" and summary["seeds"] == [0, 1]
    assert summary["score"]["n_evaluations"] == 2
    # InvertedPendulum has no goal: no success rate or D4RL-style score anywhere, not a made-up 0
    success_keys = {"success_rate", "d4rl_score", "successes", "train_success"}
    evals = read_jsonl(out / "eval.jsonl")
    assert evals and all(not success_keys & e.keys() and "mean_return" in e for e in evals)
    assert not success_keys & summary["score"].keys() and "mean_return" in summary["score"]
    assert all(not success_keys & e.keys() for e in summary["final_eval"]["per_seed"])
    metrics = read_jsonl(out / "metrics.jsonl")
    assert any("train_return" in m for m in metrics) and not any(success_keys & m.keys() for m in metrics)
    assert {m["seed"] for m in metrics} == {0, 1}
    learned = [m for m in metrics if "critic_loss" in m]
    assert learned and all(np.isfinite(m["critic_loss"]) and m["temperature"] > 0 for m in learned)
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["learner"]["grad_penalty"] == 1.0 and config["learner"]["layer_norm"] == []

    # a longer --steps resumes from the last checkpoint and finishes
    assert argv[7:9] == ["--steps", "120"]
    code, stdout, err = cli([*argv[:8], "160", *argv[9:], "--resume"], capsys)
    assert code == 0, err
    resumed = json.loads(stdout)
    assert resumed["steps"] == 160
    steps = [m["step"] for m in read_jsonl(out / "metrics.jsonl") if m["seed"] == 0]
    assert steps == sorted(set(steps)) and steps[-1] == 160


def test_finetune_prefills_pretrains_and_goes_online(tiny_dataset_id, tmp_path):
    cfg = C.with_overrides(
        C.preset_config("quick", tiny_dataset_id, "JS-exact", mode="finetune"),
        top={"steps": 40, "chunk": 20, "eval_every": 40, "eval_episodes": 1, "final_eval_episodes": 1},
        learner={"hidden": (32, 32), "batch_size": 16},
        online={"pretrain_steps": 30, "buffer_size": 1000, "start_steps": 0},
    )
    assert C.preset_config("quick", tiny_dataset_id, "KL", mode="finetune").online.start_steps == 10_000  # ROER
    assert cfg.reward_shift == -1.0
    summary = train(cfg, tmp_path / "ft")
    assert summary["status"] == "finished" and summary["pretrain_steps"] == 30 and summary["steps"] == 40
    assert {"d4rl_score", "normalized_score_x100"} <= set(summary["final_eval"])
    metrics = read_jsonl(tmp_path / "ft" / "metrics.jsonl")
    assert metrics[0]["pretrain"] == 1.0 and metrics[0]["step"] == 30
    assert metrics[-1]["step"] == 70 and metrics[-1]["env_step"] == 40.0


class DictEnv(gym.Env):
    observation_space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,))})
    action_space = gym.spaces.Box(-1, 1, (1,))


@pytest.mark.parametrize(
    ("env_id", "message"),
    [("NoSuchEnv-v0", "unknown or unusable env"), ("CartPole-v1", "Discrete action space")],
)
def test_bad_envs_are_one_line_errors(env_id, message, tmp_path, capsys):
    code, _, err = cli(["train", "--mode", "online", "--env", env_id, "--out", str(tmp_path / "r")], capsys)
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_dict_observations_need_known_keys():
    with pytest.raises(ConfigError, match="dict observations"):
        env_info(DictEnv, "dict-env", ("observation",))
    antmaze = gym_env_info("AntMaze_UMaze-v4", ("achieved_goal", "observation", "desired_goal"))
    assert (antmaze.obs_dim, antmaze.act_dim) == (31, 8)


def test_online_options_are_checked(capsys):
    code, _, err = cli(["train", "--mode", "online"], capsys)
    assert code != 0 and "--env" in err
    code, _, err = cli(["train", "--mode", "offline", "--utd", "2"], capsys)
    assert code != 0 and "--utd" in err
    code, _, err = cli(["train", "--mode", "online", "--env", "Hopper-v5", "--start-steps", "-1"], capsys)
    assert code != 0 and "--start-steps" in err


def test_online_presets_carry_roer_settings():
    hopper = C.preset_config("paper", None, "KL", mode="online", env="Hopper-v5")
    assert (hopper.divergence.beta, hopper.divergence.max_clip) == (0.4, 100.0)
    assert hopper.steps == 1_000_000 and hopper.eval_every == 5000 and hopper.eval_episodes == 10
    assert hopper.learner.critic_loss == "huber" and hopper.online.start_steps == 10_000
    uniform = C.preset_config("paper", None, "uniform", mode="online", env="Hopper-v5")
    assert uniform.learner.critic_loss == "mse"
    assert hopper.divergence.min_clip == 1.0  # quick and paper: KL's own lower clip, ROER's 10 under roer
    roer = C.preset_config("roer", None, "KL", mode="online", env="Hopper-v5")
    assert (roer.divergence.beta, roer.divergence.min_clip, roer.divergence.max_clip) == (0.4, 10.0, 100.0)
    ft = C.preset_config("roer", "D4RL/antmaze/umaze-v1", "KL", mode="finetune")
    assert (ft.divergence.beta, ft.divergence.min_clip, ft.steps, ft.eval_episodes) == (0.4, 10.0, 2_000_000, 100)
    assert ft.online.start_steps == 10_000  # ROER's code takes its random steps in this protocol too
    assert LearnerConfig().grad_penalty == 0.0 and ReplayConfig().mode == "weight"


def test_score_is_the_mean_of_each_seeds_last_evaluations():
    """ROER's score from hand-built evaluations: 12 evaluation steps of seeds 3 and 7, the last 10 count."""

    def record(step: int, seed: int) -> dict:
        d4rl = 10.0 * step + seed  # seed 3 at steps 3..12: mean 75 + 3; seed 7: 75 + 7
        rec = {"step": step, "seed": seed, "d4rl_score": d4rl, "mean_return": 2.0 * d4rl, "success_rate": d4rl / 100}
        if seed == 3:
            rec["normalized_score_x100"] = float(step)
        elif step == 12:
            rec["normalized_score_x100"] = 1.0  # seed 7 has it only in its final evaluation: left out
        return rec

    evals_all = [[record(step, seed) for seed in (3, 7)] for step in range(1, 13)]
    score = _score(evals_all, last=10)
    assert score["n_evaluations"] == 10
    per_seed = {e["seed"]: e for e in score["per_seed"]}
    assert [e["seed"] for e in score["per_seed"]] == [3, 7]
    assert per_seed[3] == pytest.approx(
        {"seed": 3, "d4rl_score": 78.0, "mean_return": 156.0, "success_rate": 0.78, "normalized_score_x100": 7.5}
    )
    assert per_seed[7] == pytest.approx({"seed": 7, "d4rl_score": 82.0, "mean_return": 164.0, "success_rate": 0.82})
    # the top-level means ROER reports are the means over seeds of the per-seed values
    assert score["d4rl_score"] == pytest.approx(np.mean([78.0, 82.0]))
    assert score["mean_return"] == pytest.approx(np.mean([156.0, 164.0]))
    assert json.loads(json.dumps(score)) == score  # summary.json-ready
    assert _score([], last=10) is None
    assert _score(evals_all[:4], last=10)["per_seed"][0]["d4rl_score"] == pytest.approx(25.0 + 3)
    goalless = [[{k: v for k, v in e.items() if k == "seed" or k == "mean_return"} for e in ev] for ev in evals_all]
    assert set(_score(goalless, last=10)) == {"n_evaluations", "mean_return", "per_seed"}
