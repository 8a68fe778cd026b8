"""The occupancy problem of docs/theory.md §1 solved numerically, knowing only f and f'.

This is the independent check of every closed form: it never uses w*(z) or f*, only the generator,
so agreement with :func:`fdivrl.core.divergences.optimal_ratio` tests the algebra, not a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from fdivrl.core.divergences import FDivergence

W_FLOOR = 1e-12  # generators like −log w are undefined at 0: keep iterates strictly positive
LIFT = 1e-7
"""Where the Newton polish treats a point as off the lower bound (and where it restarts a point the
KKT conditions say should not be there)."""


def _upper(div: FDivergence) -> float | None:
    """Upper bound of the iterates: inside a bounded ratio's range (sigmoid's f lives on [0, 2])."""
    return None if np.isinf(div.w_sup) else div.w_sup - W_FLOOR


def objective(div: FDivergence, w: np.ndarray, advantages: np.ndarray, beta: float, probs: np.ndarray) -> float:
    """E_b[w·A] − β·E_b[f(w)], the quantity the optimal ratio maximizes."""
    w = np.clip(np.asarray(w, dtype=np.float64), W_FLOOR, _upper(div))
    return float(probs @ (w * advantages) - beta * (probs @ div.f(w, np)))


@dataclass(frozen=True)
class PrimalSolution:
    w: np.ndarray
    objective: float
    multiplier: float
    """λ recovered from stationarity, A − λ = β f'(w), averaged over the points with w > 0."""


def solve_primal(
    div: FDivergence, advantages: np.ndarray, beta: float, probs: np.ndarray | None = None
) -> PrimalSolution:
    """Maximize the primal by SLSQP under E_b[w] = 1, w ≥ 0, then polish with a Newton step.

    SLSQP alone stops around 1e-6 relative accuracy; the polish solves the same KKT system
    (stationarity for the free points plus the constraint) with f'' from finite differences of f',
    which still never touches the closed-form inverse.
    """
    a = np.asarray(advantages, dtype=np.float64).ravel()
    n = a.size
    p = np.full(n, 1.0 / n) if probs is None else np.asarray(probs, dtype=np.float64) / np.sum(probs)

    def neg(w: np.ndarray) -> float:
        return -(p @ (w * a) - beta * (p @ div.f(w, np)))

    def neg_grad(w: np.ndarray) -> np.ndarray:
        return -(p * a - beta * p * div.f_prime(w, np))

    res = optimize.minimize(
        neg,
        np.ones(n),
        jac=neg_grad,
        method="SLSQP",
        bounds=[(W_FLOOR, _upper(div))] * n,
        constraints=[{"type": "eq", "fun": lambda w: p @ w - 1.0, "jac": lambda w: p}],
        options={"ftol": 1e-15, "maxiter": 2000},
    )
    w = np.clip(res.x, W_FLOOR, _upper(div))
    w = _polish(div, w, a, beta, p)
    free = w > 1e-9
    lam = float(np.mean(a[free] - beta * div.f_prime(w[free], np)))
    return PrimalSolution(w=w, objective=objective(div, w, a, beta, p), multiplier=lam)


def _polish(div: FDivergence, w: np.ndarray, a: np.ndarray, beta: float, p: np.ndarray) -> np.ndarray:
    """Newton iterations on the KKT system, starting from SLSQP's answer.

    A point SLSQP left at the lower bound stays there only if the KKT conditions hold there
    (A − λ ≤ β f'(w) near 0); otherwise it is freed and Newton moves it. SLSQP alone can stall with
    points stuck at the bound for generators whose f' → −∞ at 0 (reverse KL, Neyman, Hellinger)."""
    w = np.where(w > LIFT, w, W_FLOOR)
    for _ in range(400):
        free = w > LIFT / 2
        lam = np.sum(p[free] * (a[free] - beta * div.f_prime(w[free], np))) / np.sum(p[free])
        wants_up = ~free & (a - lam > beta * div.f_prime(np.float64(LIFT), np))
        if np.any(wants_up):
            w = w.copy()
            w[wants_up] = LIFT
            free = free | wants_up
        wf = w[free]
        h = 1e-6 * np.minimum(np.maximum(wf, 1e-3), np.minimum(wf, div.w_sup - wf))
        fpp = (div.f_prime(wf + h, np) - div.f_prime(wf - h, np)) / (2 * h)
        # stationarity r = A − λ − β f'(w) = 0 and constraint Σ p w = 1, eliminated for dλ
        r = a[free] - lam - beta * div.f_prime(wf, np)
        c = 1.0 - np.sum(p[free] * wf)
        inv = 1.0 / (beta * fpp)
        dlam = (c - np.sum(p[free] * inv * r)) / -np.sum(p[free] * inv)
        dw = inv * (r - dlam)
        step = 1.0
        while np.any(wf + step * dw <= 0) or np.any(wf + step * dw >= div.w_sup):
            step /= 2
        w = w.copy()
        w[free] = wf + step * dw
        if not np.any(wants_up) and np.max(np.abs(step * dw)) < 1e-14 * max(1.0, np.max(wf)):
            break
    return w
