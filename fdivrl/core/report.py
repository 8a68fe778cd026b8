"""What `fdivrl divergences` shows: weights side by side, and each closed form against the solver."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from scipy import optimize

from fdivrl.core import divergences as D
from fdivrl.core.primal import objective, solve_primal

TABLE_Z = (-5.0, -3.0, -1.0, 0.0, 1.0, 3.0, 5.0)  # the seed's §9 grid of δ/β


def weight_table(cfg: D.DivergenceConfig, zs: tuple[float, ...] = TABLE_Z) -> dict[str, list[float]]:
    """Priority weight of every per_type at each z, as the learner computes it (caps included)."""
    z = jnp.asarray(zs, dtype=jnp.float32)
    return {d.name: [float(x) for x in d.weight(z, cfg)] for d in D.REGISTRY.values()}


def exact_ratio_table(zs: tuple[float, ...] = TABLE_Z) -> dict[str, list[float]]:
    """Uncapped w*(z) of the closed forms in float64; inf past a pole (what the caps hide)."""
    z = np.asarray(zs, dtype=np.float64)
    out = {}
    for d in D.REGISTRY.values():
        if isinstance(d, D.FDivergence):
            with np.errstate(all="ignore"):
                w = d.ratio(z, np)
            out[d.name] = [float(x) if zz < d.z_max else float("inf") for x, zz in zip(w, z, strict=True)]
    return out


@dataclass(frozen=True)
class SolverCheck:
    name: str
    instances: int
    max_weight_error: float
    """max |w*_closed − w_solver| over all points of all instances."""
    max_lambda_error: float
    """max |λ from the dual loss minimized over a constant V − λ of the closed form|."""
    objective_optimum: float
    """Primal objective at the optimum on the first instance."""


def random_instance(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Advantages, non-uniform buffer weights and a temperature, as in docs/theory.md's checks."""
    return rng.normal(0.0, 1.5, n), rng.dirichlet(np.ones(n)), float(rng.uniform(0.5, 2.0))


def dual_multiplier(div: D.FDivergence, a: np.ndarray, beta: float, p: np.ndarray) -> float:
    """Minimize λ + β E_b[f*((A − λ)/β)] over λ numerically (the value loss over a constant V)."""
    lo = a.max() - beta * div.z_max + 1e-9 if np.isfinite(div.z_max) else a.min() - 50 * beta
    hi = a.max() + 50 * beta

    def dual(lam: float) -> float:
        return lam + beta * float(p @ div.conj((a - lam) / beta, np))

    res = optimize.minimize_scalar(dual, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    return float(res.x)


def solver_check(seed: int = 0, instances: int = 5, n: int = 30) -> list[SolverCheck]:
    """Each closed form against the primal solver and the dual minimizer on random instances."""
    rng = np.random.default_rng(seed)
    cases = [random_instance(rng, n) for _ in range(instances)]
    checks = []
    for div in D.REGISTRY.values():
        if not isinstance(div, D.FDivergence):
            continue
        w_err = lam_err = 0.0
        for a, p, beta in cases:
            w = D.optimal_ratio(div.name, a, beta, p)
            w_err = max(w_err, float(np.max(np.abs(solve_primal(div, a, beta, p).w - w))))
            lam = D.multiplier(div, a, beta, p)
            lam_err = max(lam_err, abs(dual_multiplier(div, a, beta, p) - lam))
        a, p, beta = cases[0]
        best = objective(div, D.optimal_ratio(div.name, a, beta, p), a, beta, p)
        checks.append(SolverCheck(div.name, instances, w_err, lam_err, best))
    return checks


@dataclass(frozen=True)
class SeedComparison:
    """docs/theory.md §3's instance: the seed's JS weights against the JS optimum, sigmoid and KL."""

    top_bottom: dict[str, tuple[float, float]]
    js_objective_optimum: float
    js_objective_seed: float


def seed_comparison(n: int = 50, beta: float = 1.0, seed: int = 0) -> SeedComparison:
    a = np.random.default_rng(seed).normal(size=n)
    p = np.full(n, 1.0 / n)
    order = np.argsort(a)
    ws = {name: D.optimal_ratio(name, a, beta) for name in ("KL", "JS", "JS-exact", "sigmoid")}
    tb = {name: (float(w[order[-1]]), float(w[order[0]])) for name, w in ws.items()}
    return SeedComparison(
        top_bottom=tb,
        js_objective_optimum=objective(D.JS_EXACT, ws["JS-exact"], a, beta, p),
        js_objective_seed=objective(D.JS_EXACT, ws["JS"], a, beta, p),
    )
