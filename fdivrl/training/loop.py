"""The run loop every mode shares: run directory, resume, logging, evaluation, checkpoints, summary.

Offline, online and finetune differ only in how a chunk of training is produced (a `Mode`); what
happens at a chunk's end (NaN check, metrics rows, evaluation and checkpoint when due, progress,
the summary) is written once here, so the modes cannot drift apart in how they record a run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np

from fdivrl import compile_cache
from fdivrl.analysis import activity, results, values
from fdivrl.config import ADDED_FIELDS, RESUMABLE_CHANGES, TrainConfig
from fdivrl.core import divergences as D
from fdivrl.data import datasets as minari_data
from fdivrl.learning.learner import Learner, LearnerState
from fdivrl.runs import loggers, stop
from fdivrl.runs import rundir as runs
from fdivrl.training import evaluation

Evaluation = list[dict[str, Any]]
"""One evaluation: a record per seed, as eval.jsonl holds them."""


class Reporter:
    """Where progress goes; the CLI passes a rich progress bar, tests a silent one."""

    def start(self, total: int, done: int, description: str) -> None: ...

    def advance(self, step: int, updates_per_s: float, last_eval: str | None) -> None: ...

    def message(self, text: str) -> None: ...

    def stop(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Chunk:
    """What one `Mode.advance` produced; the mode decides what is due, the loop does it."""

    progress: int
    rows: list[dict[str, float]] | None
    """One metrics row per seed, or None when this chunk logs nothing."""
    rate: float
    """Progress per second, for the progress bar."""
    evaluate: bool
    checkpoint: bool


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a segment (one call, possibly resumed) ended; a mode's summary fields come from it."""

    start: int
    """Progress when this segment began (after a restore)."""
    progress: int
    evaluations: list[Evaluation]
    """Every evaluation of the run, oldest first (those before a resume read back from eval.jsonl)."""
    elapsed: float


class Mode(Protocol):
    """How one kind of run trains; it holds the learner state between chunks."""

    record: dict[str, Any]
    """config.json's record: the config plus the facts about data or env the run depends on."""
    identity: dict[str, str | None]
    """What must not change across resumes beyond the record (the data's fingerprint)."""
    description: str
    total: int
    """Progress at which the run is done (offline: gradient steps; online: pretrain + env steps)."""
    headline: str
    """The evaluation key the progress bar shows."""

    def init(self) -> Any:
        """Build the initial state inside the run directory; returns the checkpoint tree."""

    def tree(self) -> Any:
        """The current checkpoint tree (same structure as init's)."""

    def load(self, tree: Any) -> None:
        """Adopt a tree restored from a checkpoint."""

    def advance(self, progress: int) -> Chunk: ...

    def evaluate(self, n_episodes: int, step: int) -> Evaluation: ...

    def summary(self, outcome: Outcome) -> dict[str, Any]:
        """The mode's own summary.json fields."""

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class _WallClock:
    """A run's wall time: this segment's since `start` plus what earlier segments' last checkpoint
    recorded (None: unknown, a checkpoint written before fdivrl recorded it)."""

    start: float
    before: float | None

    def total(self) -> float | None:
        return None if self.before is None else self.before + time.perf_counter() - self.start


def train(
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    reporter: Reporter | None = None,
    on_chunk: Callable[[int], None] | None = None,
    log: str = "none",
    stop_diverged: bool = False,
) -> dict[str, Any]:
    """Train `cfg.seeds` in `cfg.mode` and write the run directory `out`; returns summary.json.

    on_chunk(progress) is called after every chunk has been logged, evaluated and checkpointed.
    stop_diverged ends the run once every seed's values have diverged (fdivrl.analysis.values; only
    where the task's returns are bounded): the rest of the steps cannot give a score that says
    anything about the per_type (the seed's JS diverges within 4k steps on AntMaze). The run then
    takes its final evaluation and checkpoint at that step and its summary says `stopped_early`.
    summary.json's `wall_s` is the run's wall time over all its segments up to their last
    checkpoint (work lost to an interruption is not counted); None when a segment was resumed from a
    checkpoint that did not record it.
    """
    t_start = time.perf_counter()
    cfg.validate()
    compile_cache.atomic_entries()  # a worker bench started inherits the cache, not enable()'s patch
    # the modes import this module, so they are looked up here
    if cfg.mode == "offline":
        from fdivrl.training.offline import OfflineMode as make_mode
    else:
        from fdivrl.training.online import OnlineMode as make_mode
    mode: Mode = make_mode(cfg)
    reporter = reporter or Reporter()
    with runs.RunDir.create(
        out,
        mode.record,
        resume=resume,
        allowed_changes=RESUMABLE_CHANGES,
        added_fields=ADDED_FIELDS,
        seeds={"seeds": list(cfg.seeds)},
        identity=mode.identity,
    ) as rundir:
        logger = loggers.make_logger(log, Path(out), mode.record, name=Path(out).name)
        template = mode.init()
        restored = rundir.restore(template) if resume else None
        start, wall_before = 0, 0.0
        if restored is not None:
            tree, ckpt = restored
            mode.load(tree)
            start = ckpt.step  # restore() has cut the logs back to this step
            wall_before = (ckpt.meta or {}).get(runs.WALL_KEY)
            reporter.message(f"resumed {out} from step {start}")
        if start >= mode.total and rundir.is_finished():
            reporter.message(f"{out} is already finished at step {start}")
            return rundir.read_summary() or {}
        # a finished summary before the last step: an early stop (a damaged one is rebuilt at the end)
        previous = rundir.read_summary() if restored is not None and rundir.is_finished() else None
        early = (previous or {}).get("stopped_early") or {}
        if early and stop_diverged:  # stopped by the same rule before: nothing more to train
            reporter.message(f"{out} stopped early at step {early.get('step')}: {early.get('reason')}")
            return previous or {}
        if previous is not None:
            # trained on past an early stop: its summary no longer describes the run, nor does the stop's
            # off-schedule evaluation (an online score averages the last evaluations)
            rundir.retire_summary()
            if early.get("extra_evaluation"):
                rundir.drop_evals(start)
        evaluations = evals_by_step(rundir.read_evals()) if restored is not None else []
        stored_json = rundir.read_config()
        stored = stored_json["config"]
        # checked from the config as stored, as the readers of older runs check them
        bounds = values.bounds_of(results.task_of(stored), stored)
        # pretraining (finetune) is not part of a run's steps: the rule watches the run proper
        counted_from = cfg.online.pretrain_steps if cfg.mode != "offline" else 0
        watch = None
        if stop_diverged:  # a resumed run's logged rows first: a seed may have diverged before the stop
            watch = _DivergenceWatch(bounds, counted_from, rundir.read_metrics() if restored is not None else [])
        reporter.start(mode.total, start, mode.description)
        t_run = time.perf_counter()
        clock = _WallClock(t_start, wall_before)
        try:
            with stop.deferred_stop() as stop_requested:
                progress, new, stopped = _train(
                    mode,
                    cfg,
                    rundir,
                    logger,
                    reporter,
                    on_chunk,
                    start,
                    restored is not None,
                    clock,
                    stop_requested,
                    watch,
                )
                late_signal = stop_requested()  # came during the last chunk: the run ends first
        finally:  # also on an error or a stop, so no progress display is left running
            mode.close()
            reporter.stop()
        logger.close()
        elapsed = time.perf_counter() - t_run
        if evaluations and not new:  # resumed at (or past) the last evaluation: eval.jsonl holds it
            step = evaluations[-1][0]["step"]
            reporter.message(f"{out}: summary rebuilt from the evaluation at step {step} in eval.jsonl")
        evaluations += new
        if stopped:
            reporter.message(f"{out}: {stopped['reason']}")
        summary = {
            "status": "finished",
            "per_type": cfg.per_type,
            "mode": cfg.mode,
            **mode.summary(Outcome(start, progress, evaluations, elapsed)),
            "seeds": list(cfg.seeds),
            "identity": stored_json.get("identity", {}),  # what the run recorded, resumes included
            "wall_s": clock.total(),
            "final_eval": summarize_evals(evaluations[-1]) if evaluations else None,
            "activity": activity.summarize(cfg.replay.prioritized, metrics := rundir.read_metrics()),
            "values": values.check(metrics, bounds),
        }
        if stopped:  # in the run's own steps (summary["steps"]), as cfg.steps counts them
            summary["stopped_early"] = {"step": summary["steps"], "of": cfg.steps, **stopped}
        rundir.write_summary(summary)
        if late_signal is not None:  # still a request to stop: a sweep must not go on to its next run
            raise stop.StopRequested(f"{late_signal} during the last chunk of {out}: the run finished first")
        return summary


def _train(
    mode: Mode,
    cfg: TrainConfig,
    rundir: runs.RunDir,
    logger: loggers.Logger,
    reporter: Reporter,
    on_chunk: Callable[[int], None] | None,
    progress: int,
    restored: bool,
    clock: _WallClock,
    stop_requested: Callable[[], str | None],
    watch: _DivergenceWatch | None = None,
) -> tuple[int, list[Evaluation], dict[str, Any] | None]:
    """The chunks from `progress` to the end, each logged, evaluated and checkpointed as it asks, then
    reported and passed to on_chunk; returns the final progress, this segment's evaluations and why
    it stopped early ({"reason", "extra_evaluation"}; None: it did not; see `watch`). A stop request
    (SIGINT, SIGTERM) checkpoints the chunk just done and raises StopRequested."""
    last_ckpt = progress if restored else None
    evaluations: list[Evaluation] = []
    last_eval: str | None = None
    stopped: dict[str, Any] | None = None
    while progress < mode.total and stopped is None:
        chunk = mode.advance(progress)
        progress = chunk.progress
        rows = []
        for seed, row in zip(cfg.seeds, chunk.rows, strict=True) if chunk.rows is not None else ():
            runs.check_finite(row, progress, last_ckpt)  # before the checkpoint: the last one on disk stays good
            rows.append({"step": progress, "seed": seed, **row})
            rundir.log_metrics(rows[-1])
            logger.log(progress, row, f"seed{seed}/train")
        if watch is not None and watch.counted_from < progress < mode.total:
            reason = watch.update(rows, cfg.seeds)
            stopped = {"reason": reason, "extra_evaluation": not chunk.evaluate} if reason else None
        n_eps = cfg.final_eval_episodes if progress >= mode.total or stopped else cfg.eval_episodes
        if (chunk.evaluate or stopped) and n_eps > 0:
            evals = mode.evaluate(n_eps, progress)
            evaluations.append(evals)
            for e in evals:
                rundir.log_eval(e)
                logger.log(progress, {k: v for k, v in e.items() if isinstance(v, float)}, f"seed{e['seed']}/eval")
            last_eval = f"{np.mean([e[mode.headline] for e in evals]):.1f}"
        if chunk.checkpoint or stopped:
            rundir.save_checkpoint(progress, mode.tree(), meta={runs.WALL_KEY: clock.total()})
            last_ckpt = progress
        reporter.advance(progress, chunk.rate, last_eval)
        if on_chunk is not None:
            on_chunk(progress)
        signal_name = stop_requested()
        if signal_name is not None and progress < mode.total and not stopped:
            if last_ckpt != progress:
                rundir.save_checkpoint(progress, mode.tree(), meta={runs.WALL_KEY: clock.total()})
            raise stop.StopRequested(
                f"{signal_name} at step {progress} of {mode.total}: checkpoint saved in {rundir.path}; "
                "fdivrl train --resume (or the same fdivrl bench command) continues from it"
            )
    return progress, evaluations, stopped


class _DivergenceWatch:
    """Which seeds' values have diverged so far (values.check over the rows it was shown, a resumed
    run's logged ones first), for train(stop_diverged=True)."""

    def __init__(self, bounds: tuple[float, float] | None, counted_from: int, logged: list[dict[str, Any]]) -> None:
        self.bounds = bounds
        self.counted_from = counted_from
        """The progress the run's own steps start at (after pretraining); the rule watches only past it."""
        self.diverged: dict[int, int] = {}
        self.update([r for r in logged if r.get("step", 0) > counted_from], ())

    def update(self, rows: list[dict[str, Any]], seeds: Sequence[int]) -> str | None:
        """Take in `rows`; why to stop when every one of `seeds` has diverged, else None."""
        for s in values.check(rows, self.bounds)["per_seed"]:
            if s["diverged_at"] is not None:
                self.diverged.setdefault(s["seed"], s["diverged_at"])
        if not seeds or any(seed not in self.diverged for seed in seeds):
            return None
        when = ", ".join(f"seed {seed} at step {self.diverged[seed]:,}" for seed in seeds)
        return f"stopped early: every seed's values diverged ({when}; {values.RULE})"


def default_out(cfg: TrainConfig) -> Path:
    """runs/<dataset or env>/<per_type>[-<mode>]-<preset>-<seeds>; offline runs carry no mode tag."""
    seeds = f"s{cfg.seeds[0]}" + (f"x{len(cfg.seeds)}" if len(cfg.seeds) > 1 else "")
    where = (cfg.env if cfg.mode == "online" else cfg.dataset) or "env"
    tags = (cfg.per_type, *([cfg.mode] if cfg.mode != "offline" else []), cfg.preset, seeds)
    return Path("runs") / where.replace("/", "_") / "-".join(tags)


def dataset_record(info: minari_data.DatasetInfo) -> dict[str, Any]:
    """The dataset facts a run depends on (not where the file is or whether it came from cache)."""
    keys = (
        "dataset_id",
        "env_id",
        "n_episodes",
        "n_transitions",
        "obs_dim",
        "act_dim",
        "obs_keys",
        "reward_shift",
        "minari_version",
        "is_local_standin",
        "ref_min_score",
        "ref_max_score",
    )
    d = info.to_dict()
    return {k: d[k] for k in keys}


def make_learner(
    cfg: TrainConfig, obs_dim: int, act_dim: int, target_bounds: tuple[float, float] | None = None
) -> Learner:
    return Learner(D.get(cfg.per_type), cfg.divergence, cfg.replay, cfg.learner, obs_dim, act_dim, target_bounds)


def evaluate_seeds(
    learner: Learner, state: LearnerState, info: minari_data.DatasetInfo, cfg: TrainConfig, n_episodes: int, step: int
) -> Evaluation:
    """One evaluation per seed in the dataset's eval env, deterministic actions.

    The eval env is minari's eval_env_spec (fixed start and goal, the goal does not end the episode),
    which yields both labeled scores from one rollout: success at any step gives the D4RL-style score
    (100 × success rate), the return gives minari's normalized score.
    """
    return evaluate_policies(
        learner,
        state,
        cfg.seeds,
        lambda: minari_data.recover_eval_env(info),
        evaluation.dict_obs_fn(info.obs_keys) if info.obs_keys else None,
        n_episodes,
        step,
        ref=info.reference_scores,
    )


def evaluate_policies(
    learner: Learner,
    state: LearnerState,
    seeds: tuple[int, ...],
    make_env: Callable[[], Any],
    obs_fn: Callable[[Any], np.ndarray] | None,
    n_episodes: int,
    step: int,
    ref: tuple[float | None, float | None] = (None, None),
    to_env_action: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Evaluation:
    """Each seed's deterministic policy for n_episodes in make_env(); one record per seed."""
    act = jax.jit(learner.act)
    scale = to_env_action or (lambda a: a)
    out = []
    for i, seed in enumerate(seeds):
        params = jax.tree_util.tree_map(lambda x, i=i: x[i], state.actor.params)

        def policy(obs: np.ndarray, params=params) -> np.ndarray:
            return scale(np.asarray(act(params, obs)))

        result = evaluation.evaluate(
            make_env,
            policy,
            n_episodes=n_episodes,
            # distinct, reproducible start states per (seed, step)
            seed=int(np.random.SeedSequence([seed, step]).generate_state(1)[0]),
            n_envs=min(10, n_episodes),
            obs_fn=obs_fn,
        )
        rec = result.to_dict(*ref, per_episode=False)
        rec["eval_seed"] = rec.pop("seed")
        out.append({"step": step, "seed": seed, **rec})
    return out


def summarize_evals(evals: Evaluation) -> dict[str, Any]:
    """Mean over seeds of the final evaluation, plus the per-seed records."""
    keys = ("mean_return", "success_rate", "d4rl_score", "normalized_score_x100")
    out: dict[str, Any] = {}
    for k in keys:
        vals = [e[k] for e in evals if k in e]
        if vals:
            out[k] = float(np.mean(vals))
    out["per_seed"] = evals
    return out


def evals_by_step(records: list[dict[str, Any]]) -> list[Evaluation]:
    """eval.jsonl's records grouped into evaluations, oldest first."""
    by_step: dict[int, Evaluation] = {}
    for r in records:
        if "seed" in r:
            by_step.setdefault(int(r["step"]), []).append(r)
    return [by_step[s] for s in sorted(by_step)]
