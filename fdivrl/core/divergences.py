"""The per_type registry: one entry per f-divergence or replay baseline.

Each entry answers three questions as pure JAX functions of ``z = δ/β`` (usable under jit, vmap
and grad): the replay priority weight, the per-sample value loss ``ℓ(z) = f*(z) − z`` whose
minimizer over V is the multiplier λ, and the policy-extraction weight. The closed forms and the
reasons for every clip are in ``docs/theory.md``; the names below follow its table.

Closed forms are written once, generic over the array namespace (``numpy`` for the float64
normalization in :func:`optimal_ratio`, ``jax.numpy`` for training), so the optimum that is checked
against the numerical solver is the very function the learner uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from fdivrl.errors import ConfigError, UnknownPerType

Array = Any  # a jax or numpy array
Fn = Callable[[Array, Any], Array]  # (x, xp) -> array, xp is numpy or jax.numpy

LOG2 = math.log(2.0)

__all__ = [
    "CHI2",
    "HELLINGER",
    "JS",
    "JS_EXACT",
    "KL",
    "NEYMAN",
    "PER",
    "REGISTRY",
    "REVERSE_KL",
    "SIGMOID",
    "UNIFORM",
    "Baseline",
    "CriticPriority",
    "Divergence",
    "DivergenceConfig",
    "FDivergence",
    "SeedJS",
    "Uniform",
    "get",
    "multiplier",
    "names",
    "optimal_ratio",
]


@dataclass(frozen=True)
class DivergenceConfig:
    """Hyperparameters that shape a per_type's weights and losses (ROER's names where it has them)."""

    beta: float = 0.4
    """Temperature β of the regularizer: z = δ/β for priorities, (Q − V)/β for the value loss."""
    max_clip: float = 50.0
    """Cap on priority weights. The seed's JS also clips z to ±max_clip, as it specifies."""
    min_clip: float = 1.0
    """Floor of the stored loss weights in weight mode (ROER: 10 or 1 per task; 0 keeps every weight free)."""
    lower_clip: float | None = None
    """Lower clip of a fresh weight before the EMA update; None takes the per_type's default
    (1 where w* is unbounded above, as ROER's KL; js_min_weight for the seed's JS; 0 for sigmoid)."""
    gumbel_max_clip: float = 7.0
    """Value loss turns linear where w*(z) = exp(gumbel_max_clip) (z = 7 for KL, as in ROER/XQL);
    the seed's JS clips z to ±gumbel_max_clip instead, as it specifies."""
    js_min_weight: float = 0.5
    """Lowest priority weight of the seed's JS."""
    js_max_weight: float = 2.0
    """Highest priority weight of the seed's JS."""
    per_alpha: float = 0.4
    """PER exponent α in |δ|^α."""
    policy_max_weight: float = 100.0
    """Cap on policy-extraction (AWR) weights."""

    def validate(self) -> DivergenceConfig:
        """Raise ConfigError naming the first bad value; return self so calls chain."""
        finite = {k: v for k, v in vars(self).items() if v is not None}
        for key, value in finite.items():
            if not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value}")
        positive = ("beta", "max_clip", "gumbel_max_clip", "policy_max_weight")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in ("min_clip", "js_min_weight", "per_alpha"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.js_min_weight >= self.js_max_weight:
            raise ConfigError(f"js_min_weight ({self.js_min_weight}) must be < js_max_weight ({self.js_max_weight})")
        if self.lower_clip is not None and not 0 <= self.lower_clip <= self.max_clip:
            raise ConfigError(f"lower_clip must lie in [0, max_clip={self.max_clip}], got {self.lower_clip}")
        if self.min_clip > self.max_clip:
            raise ConfigError(f"min_clip ({self.min_clip}) must be <= max_clip ({self.max_clip})")
        return self


@dataclass(frozen=True)
class Divergence:
    """A per_type. Subclasses give the three functions of z; this base holds what they share."""

    name: str
    summary: str

    has_closed_form = False
    prioritized = True
    critic_priority: ClassVar[bool] = False
    """Priorities from the critic's TD error |Q − target| (PER, as ROER's code) instead of the value
    network's δ = r + γV(s') − V(s)."""
    caveat: ClassVar[str | None] = None
    """What a user training with this per_type must know (printed by `fdivrl train`), or None."""

    def weight(self, z: Array, cfg: DivergenceConfig) -> Array:
        """Replay priority weight, capped at cfg.max_clip."""
        raise NotImplementedError

    def loss(self, z: Array, cfg: DivergenceConfig) -> Array:
        """Per-sample value loss; finite with finite gradients for every finite z."""
        raise NotImplementedError

    def loss_normalizer(self, z: Array, cfg: DivergenceConfig) -> Array:
        """Positive per-sample terms whose batch mean the value loss is divided by (under stop_gradient)."""
        raise NotImplementedError

    def policy_weight(self, z: Array, cfg: DivergenceConfig) -> Array:
        """Weight of a dataset action in policy extraction (AWR for KL), capped."""
        raise NotImplementedError

    @property
    def beta_scale(self) -> float:
        """Factor on a task's β (tuned for KL) in the presets; 1 unless the value loss is more
        optimistic than KL's (FDivergence.curvature)."""
        return 1.0

    def lower_clip(self, cfg: DivergenceConfig) -> float:
        """Lower clip of fresh weights in ROER's weight-mode update (docs/theory.md §4)."""
        return cfg.lower_clip if cfg.lower_clip is not None else self.default_lower_clip(cfg)

    def default_lower_clip(self, cfg: DivergenceConfig) -> float:
        return 0.0

    def value_loss(self, q: Array, v: Array, cfg: DivergenceConfig, sample_w: Array | None = None) -> Array:
        """Batch value loss on z = (Q − V)/β: the dual loss whose minimizer over V is λ(s).

        ``sample_w`` weights each sample in both means (the buffer weights of a prioritized batch,
        so the minimizer stays the buffer's multiplier); None means a uniform batch."""
        z = (q - v) / cfg.beta
        w = jnp.ones_like(z) if sample_w is None else sample_w
        norm = jax.lax.stop_gradient(jnp.mean(w * self.loss_normalizer(z, cfg)))
        return jnp.mean(w * self.loss(z, cfg)) / norm


@dataclass(frozen=True)
class FDivergence(Divergence):
    """A divergence with a normalized generator f (f(1) = 0, f'(1) = 0) and closed-form optimum."""

    f: Fn = None  # type: ignore[assignment]
    f_prime: Fn = None  # type: ignore[assignment]
    ratio: Fn = None  # type: ignore[assignment]
    """w*(z) = (f')⁻¹(z), clipped at 0 where the inverse goes negative."""
    conj: Fn = None  # type: ignore[assignment]
    """Convex conjugate f*(y)."""
    z_max: float = math.inf
    """Upper end of the domain of w*(z) (a pole), inf when unbounded."""
    w_sup: float = math.inf
    """Supremum of w*(z) (2 for sigmoid): a clip at or above it is never reached, so its z is +inf."""

    has_closed_form = True

    @property
    def curvature(self) -> float:
        """κ = w*″(0) / w*′(0) = −f‴(1) / f″(1)²: KL 1, JS-exact 3, sigmoid 0.

        Why it matters: for Q spread with variance σ² around its mean in a state, the value loss's
        minimizer sits κ·σ²/(2β) above the mean (second order in σ/β); through the bootstrap
        Q ← r + γV(s') that bias adds up over the horizon. Central differences in float64, rounded
        to 3 decimals (the exact values are simple rationals)."""
        h = 1e-4
        w = [float(self.ratio(np.float64(z), np)) for z in (-h, 0.0, h)]
        return round(((w[2] - 2 * w[1] + w[0]) / h**2) / ((w[2] - w[0]) / (2 * h)), 3)

    @property
    def beta_scale(self) -> float:
        """max(1, κ): a task's β is tuned for KL (κ = 1); a divergence whose value loss is more
        optimistic (JS-exact, hellinger: 3) gets κ·β, KL's second-order optimism, and one that is
        less optimistic (sigmoid, chi2) keeps β, where a smaller one would only sharpen its
        priorities. Without it JS-exact's V on the umaze stand-in climbed from −17 to −6 while
        KL's settled near −35 (docs/presets.md)."""
        return max(1.0, self.curvature)

    def z_at(self, w: float) -> float:
        """The z where w*(z) = w, i.e. f'(w); the clip points of weights and losses (+inf when w*
        never reaches w, so the clip is a no-op)."""
        if w >= self.w_sup:
            return math.inf
        return float(self.f_prime(np.float64(w), np))

    def weight(self, z: Array, cfg: DivergenceConfig) -> Array:
        return self.ratio(jnp.minimum(z, self.z_at(cfg.max_clip)), jnp)

    def loss(self, z: Array, cfg: DivergenceConfig) -> Array:
        zc = jnp.minimum(z, self.z_at(math.exp(cfg.gumbel_max_clip)))
        # below the clip ℓ = f*(z) − z exactly; above it the tangent line at the clip point
        return self.conj(zc, jnp) - zc + (z - zc) * (self.ratio(zc, jnp) - 1.0)

    def loss_normalizer(self, z: Array, cfg: DivergenceConfig) -> Array:
        zc = jnp.minimum(z, self.z_at(math.exp(cfg.gumbel_max_clip)))
        return jnp.maximum(1.0, self.ratio(zc, jnp))

    def policy_weight(self, z: Array, cfg: DivergenceConfig) -> Array:
        return self.ratio(jnp.minimum(z, self.z_at(cfg.policy_max_weight)), jnp)

    def default_lower_clip(self, cfg: DivergenceConfig) -> float:
        """ROER's lower clip 1 (KL's) for weights unbounded above, 0 for bounded ones (sigmoid).

        With 1 a fresh weight never drops below the buffer's average: items with negative TD errors
        keep their share and the normalized weights cannot pile onto a few items. JS-exact with 0 on
        the umaze stand-in: ESS fraction 0.12 at 100k steps and V drifting up after 50k; with 1: ESS
        0.39 and V flat (docs/presets.md). A bounded weight clipped at 1 would only range over [1, 2]."""
        return 1.0 if math.isinf(self.w_sup) else 0.0


@dataclass(frozen=True)
class SeedJS(Divergence):
    """The seed document's JS, exactly as specified: sigmoid priorities and a softplus value loss.

    Not the JS optimum (see JS-exact, sigmoid and docs/theory.md §3); its value loss has no minimizer in V.
    Policy extraction uses the same scaled sigmoid weight, the seed's only weight function.
    """

    caveat = (
        "JS is the seed's heuristic, trained as specified: its value loss has no minimizer, so V climbs "
        "without bound, the TD errors turn very negative and every sample gets the floor weight js_min: "
        "priorities become uniform and the offline actor reduces to behaviour cloning. Two per_types that "
        "work: JS-exact is the Jensen–Shannon optimum e^z/(2 − e^z) (unbounded, pole at z = log 2) with its "
        "dual value loss; sigmoid keeps the seed's bounded σ-shaped weights, 2σ(z), with the divergence and "
        "value loss they are exactly optimal for (`fdivrl divergences`, docs/theory.md §3)."
    )

    def weight(self, z: Array, cfg: DivergenceConfig) -> Array:
        s = jax.nn.sigmoid(jnp.clip(z, -cfg.max_clip, cfg.max_clip))
        return cfg.js_min_weight + s * (cfg.js_max_weight - cfg.js_min_weight)

    def loss(self, z: Array, cfg: DivergenceConfig) -> Array:
        zc = jnp.clip(z, -cfg.gumbel_max_clip, cfg.gumbel_max_clip)
        return jax.nn.softplus(zc) - LOG2

    def loss_normalizer(self, z: Array, cfg: DivergenceConfig) -> Array:
        zc = jnp.clip(z, -cfg.gumbel_max_clip, cfg.gumbel_max_clip)
        return jnp.maximum(0.5, jax.nn.sigmoid(zc))

    def policy_weight(self, z: Array, cfg: DivergenceConfig) -> Array:
        return self.weight(z, cfg)

    def default_lower_clip(self, cfg: DivergenceConfig) -> float:
        return cfg.js_min_weight


@dataclass(frozen=True)
class Baseline(Divergence):
    """A replay baseline: its own priority, KL's value loss and policy extraction (XQL/ROER's)."""

    priority: Callable[[Array, DivergenceConfig], Array] = None  # type: ignore[assignment]

    def weight(self, z: Array, cfg: DivergenceConfig) -> Array:
        return self.priority(z, cfg)

    def loss(self, z: Array, cfg: DivergenceConfig) -> Array:
        return KL.loss(z, cfg)

    def loss_normalizer(self, z: Array, cfg: DivergenceConfig) -> Array:
        return KL.loss_normalizer(z, cfg)

    def policy_weight(self, z: Array, cfg: DivergenceConfig) -> Array:
        return KL.policy_weight(z, cfg)


@dataclass(frozen=True)
class Uniform(Baseline):
    prioritized = False


def _chi2_conj(y: Array, xp: Any) -> Array:
    y = xp.maximum(y, -2.0)  # f* is flat (−1) below −2, where w* = 0
    return y + y * y / 4.0


KL = FDivergence(
    name="KL",
    summary="ROER: w* = exp(z), Gumbel (XQL) value loss",
    f=lambda w, xp: w * xp.log(w) - w + 1.0,
    f_prime=lambda w, xp: xp.log(w),
    ratio=lambda z, xp: xp.exp(z),
    conj=lambda y, xp: xp.exp(y) - 1.0,
)

JS_EXACT = FDivergence(
    name="JS-exact",
    summary="Jensen–Shannon optimum: w* = e^z/(2 − e^z), pole at z = log 2",
    f=lambda w, xp: w * xp.log(w) - (w + 1.0) * xp.log((w + 1.0) / 2.0),
    f_prime=lambda w, xp: xp.log(2.0 * w / (w + 1.0)),
    ratio=lambda z, xp: xp.exp(z) / (2.0 - xp.exp(z)),
    conj=lambda y, xp: -xp.log(2.0 - xp.exp(y)),
    z_max=LOG2,
)

REVERSE_KL = FDivergence(
    name="reverse-KL",
    summary="reverse KL: w* = 1/(1 − z)",
    f=lambda w, xp: -xp.log(w) + w - 1.0,
    f_prime=lambda w, xp: 1.0 - 1.0 / w,
    ratio=lambda z, xp: 1.0 / (1.0 - z),
    conj=lambda y, xp: -xp.log(1.0 - y),
    z_max=1.0,
)

CHI2 = FDivergence(
    name="chi2",
    summary="Pearson χ²: w* = max(0, 1 + z/2)",
    f=lambda w, xp: (w - 1.0) ** 2,
    f_prime=lambda w, xp: 2.0 * (w - 1.0),
    ratio=lambda z, xp: xp.maximum(0.0, 1.0 + z / 2.0),
    conj=_chi2_conj,
)

NEYMAN = FDivergence(
    name="neyman",
    summary="Neyman χ²: w* = 1/√(1 − z)",
    f=lambda w, xp: (w - 1.0) ** 2 / w,
    f_prime=lambda w, xp: 1.0 - 1.0 / (w * w),
    ratio=lambda z, xp: 1.0 / xp.sqrt(1.0 - z),
    conj=lambda y, xp: 2.0 - 2.0 * xp.sqrt(1.0 - y),
    z_max=1.0,
)

HELLINGER = FDivergence(
    name="hellinger",
    summary="squared Hellinger: w* = 1/(1 − z)²",
    f=lambda w, xp: (xp.sqrt(w) - 1.0) ** 2,
    f_prime=lambda w, xp: 1.0 - 1.0 / xp.sqrt(w),
    ratio=lambda z, xp: 1.0 / (1.0 - z) ** 2,
    conj=lambda y, xp: y / (1.0 - y),
    z_max=1.0,
)

SIGMOID = FDivergence(
    name="sigmoid",
    summary="the seed's σ-shaped weights with the divergence they are exactly optimal for: w* = 2σ(z)",
    f=lambda w, xp: w * xp.log(w) + (2.0 - w) * xp.log(2.0 - w),
    f_prime=lambda w, xp: xp.log(w / (2.0 - w)),
    ratio=lambda z, xp: 1.0 + xp.tanh(z / 2.0),  # = 2σ(z), with finite gradients for any z
    # 2·softplus(y) − 2 log 2; logaddexp stays finite for large |y| in both namespaces
    conj=lambda y, xp: 2.0 * xp.logaddexp(0.0, y) - 2.0 * LOG2,
    w_sup=2.0,
)

JS = SeedJS(name="JS", summary="the seed's JS: sigmoid priority in [js_min, js_max], softplus loss")

UNIFORM = Uniform(
    name="uniform",
    summary="baseline: weight 1 (plain SAC/XQL replay); KL value loss",
    priority=lambda z, cfg: jnp.ones_like(z),
)


@dataclass(frozen=True)
class CriticPriority(Baseline):
    """A baseline whose priority is a function of the critic's TD error (classic PER)."""

    critic_priority = True


PER = CriticPriority(
    name="PER",
    summary="baseline: |δ_Q|^α of the critic's TD error, set directly (ROER's PER); KL value loss",
    # |δ| is kept off 0 so that |δ|^α (α < 1) and its gradient stay finite
    priority=lambda z, cfg: jnp.maximum(jnp.abs(z * cfg.beta), 1e-12) ** cfg.per_alpha,
)

REGISTRY: dict[str, Divergence] = {
    d.name.lower(): d for d in (UNIFORM, PER, KL, JS, JS_EXACT, SIGMOID, CHI2, NEYMAN, HELLINGER, REVERSE_KL)
}


def names() -> list[str]:
    """Registered per_types in display order."""
    return [d.name for d in REGISTRY.values()]


def get(name: str) -> Divergence:
    """Look a per_type up by name, case-insensitively."""
    try:
        return REGISTRY[name.strip().lower()]
    except KeyError:
        raise UnknownPerType(f"unknown per_type {name!r}; choose one of: {', '.join(names())}") from None


def _normalized_probs(n: int, probs: Array | None) -> np.ndarray:
    if probs is None:
        return np.full(n, 1.0 / n)
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (n,) or np.any(p < 0) or not np.isfinite(p).all() or p.sum() <= 0:
        raise ConfigError("probs must be non-negative, finite, one per advantage and not all zero")
    return p / p.sum()


def multiplier(div: FDivergence, advantages: Array, beta: float, probs: Array | None = None) -> float:
    """The λ that normalizes w*((A − λ)/β) under the buffer weights: a bracketed root in float64."""
    a = np.asarray(advantages, dtype=np.float64)
    p = _normalized_probs(a.size, probs)
    a_top = a[p > 0].max()

    def excess(lam: float) -> float:
        return float(p @ div.ratio((a - lam) / beta, np)) - 1.0

    hi = a_top + beta  # every z <= −1: every w* < 1
    if math.isinf(div.z_max):
        lo = a[p > 0].min() - beta  # every z >= 1: every w* > 1
    else:
        # just inside the pole of the top sample, close enough that its weight exceeds 1/p
        for eps in 10.0 ** -np.arange(1, 16):
            lo = a_top - beta * div.z_max + beta * eps
            with np.errstate(over="ignore", divide="ignore"):
                if excess(lo) > 0:
                    break
        else:  # pragma: no cover - only a degenerate float64 buffer lands here
            raise ConfigError("could not bracket the multiplier: advantages too spread for float64")
    return optimize.brentq(excess, lo, hi, xtol=1e-15 * max(1.0, abs(hi)), rtol=1e-15, maxiter=500)


def optimal_ratio(name: str, advantages: Array, beta: float, probs: Array | None = None) -> np.ndarray:
    """The optimum w* of the occupancy problem, normalized so that E_probs[w*] = 1 (float64).

    For the seed's ``JS`` it returns the seed's sigmoid weights normalized the same way, so the
    two can be compared; baselines have no optimum and raise ConfigError.
    """
    if beta <= 0 or not math.isfinite(beta):
        raise ConfigError(f"beta must be > 0, got {beta}")
    div = get(name)
    a = np.asarray(advantages, dtype=np.float64).ravel()
    p = _normalized_probs(a.size, probs)
    if isinstance(div, SeedJS):
        cfg = DivergenceConfig(beta=beta)
        z = np.clip(a / beta, -cfg.max_clip, cfg.max_clip)
        w = cfg.js_min_weight + (cfg.js_max_weight - cfg.js_min_weight) / (1.0 + np.exp(-z))
        return w / (p @ w)
    if not isinstance(div, FDivergence):
        raise ConfigError(f"per_type {div.name!r} is a baseline with no optimal ratio")
    w = div.ratio((a - multiplier(div, a, beta, p)) / beta, np)
    return w / (p @ w)  # the root is exact to ~1e-15 in λ; this removes the last ulps near a pole
