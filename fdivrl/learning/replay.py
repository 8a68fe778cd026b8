"""Replay priorities: ROER loss weights with uniform sampling, or proportional sampling from a sum tree.

Two mechanisms (``docs/theory.md`` §4), one API the learner calls inside its jitted step::

    idx, loss_w = sample(state, key, batch_size, cfg)   # indices into the transition arrays
    ...                                                  # losses weighted by loss_w
    state = update(state, idx, raw, cfg)                 # raw = fresh priority weights of idx

- ``mode="weight"`` (what ROER's released code does): every stored transition carries a loss weight
  ``w_i`` (initially 1); sampling is uniform over the valid items and ``loss_w = w[idx]``.
- ``mode="sample"`` (classic PER): sample ``i`` with probability ``p_i / Σp`` from a sum tree and
  correct with importance weights ``(N·P(i))^(−β_IS) / max``.
- ``prioritized=False``: uniform replay, loss weights 1, ``update`` is a no-op.

Everything is a pure function of a :class:`ReplayState` pytree and a static :class:`ReplayConfig`,
so it runs under ``jit``, inside ``lax.scan`` and under ``vmap`` over a leading seed axis.
Valid items are always the prefix ``[0, size)`` of the buffer.

Performance contract (``docs/references.md`` §4): ``sample`` + ``update`` cost O(B log N); only
:func:`init`, :func:`set_size`, :func:`rebuild` and :func:`stats` are O(N) and belong outside the
per-step path (``rebuild`` once per fused chunk, ``stats`` once per log line). Inside a scanned step,
do not read ``state.weights`` or ``state.tree`` yourself between ``sample`` and ``update``: XLA can
only update the O(N) arrays in place when every read of them is ordered before the write, and an
unrelated read makes it copy the whole array every step. ``sample`` makes its returned indices
depend on its own reads for exactly this reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from fdivrl import checks
from fdivrl.errors import ConfigError

MODES = ("weight", "sample")
SCHEMES = ("avg", "exp", "direct")
PRIORITY_FLOOR = 1e-6
"""Smallest sum-tree priority of a valid item, so that an item whose fresh weight clips to 0 (a
divergence with lower_clip 0) keeps a chance to be resampled and have its priority revised."""
_TINY = float(jnp.finfo(jnp.float32).tiny)


@dataclass(frozen=True)
class ReplayConfig:
    """How priorities become training signal; frozen and hashable so it can be a static jit argument."""

    mode: str = "weight"
    """"weight": ROER loss weights with uniform sampling; "sample": proportional sampling (sum tree)."""
    scheme: str = "avg"
    """Weight-mode update: "avg" (ROER's EMA), "exp" (normalized power of the fresh weight) or
    "direct" (the fresh weight over its batch mean, no EMA: ROER's PER baseline)."""
    ema: float = 0.01
    """λ_ema of the "avg" scheme (ROER's per_beta). Each visit moves a weight by at most this
    fraction, so what matters is ema × visits per item: ROER's 0.01 over a 1M-step run is ~2.6."""
    alpha: float = 0.4
    """Exponent of the "exp" scheme (ROER's per_alpha)."""
    lower_clip: float = 1.0
    """Lower clip of a fresh weight (1 for KL as ROER; a divergence whose optimum reaches 0 uses 0)."""
    max_clip: float = 50.0
    """Upper clip of a fresh weight."""
    min_clip: float = 1.0
    """Floor of the stored loss weights in weight mode. New items start at max(1, min_clip), where
    the floor and the normalization put an average item, so visit order alone makes no spread."""
    importance_exponent: float = 0.4
    """β_IS of the importance weights in sample mode (0: no correction, 1: full correction)."""
    prioritized: bool = True
    """False: uniform replay whatever the mode; weights stay 1 and update does nothing."""

    def validate(self) -> ReplayConfig:
        """Raise ConfigError naming the first bad value; return self so calls chain."""
        checks.choice("priority_mode", self.mode, MODES)
        checks.choice("scheme", self.scheme, SCHEMES)
        if not isinstance(self.prioritized, bool):
            raise ConfigError(f"prioritized must be true or false, got {self.prioritized!r}")
        numbers = ("ema", "alpha", "lower_clip", "max_clip", "min_clip", "importance_exponent")
        for key in numbers:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value!r}")
            if value < 0:
                raise ConfigError(f"{key} must be >= 0, got {value}")
        if not 0 < self.ema <= 1:
            raise ConfigError(f"--ema must lie in (0, 1], got {self.ema}")
        if self.max_clip <= 0:
            raise ConfigError(f"max_clip must be > 0, got {self.max_clip}")
        if self.lower_clip > self.max_clip:
            raise ConfigError(f"lower_clip ({self.lower_clip}) must be <= max_clip ({self.max_clip})")
        if self.min_clip > self.max_clip:
            raise ConfigError(f"min_clip ({self.min_clip}) must be <= max_clip ({self.max_clip})")
        if self.importance_exponent > 1:
            raise ConfigError(f"importance_exponent must lie in [0, 1], got {self.importance_exponent}")
        return self


# --------------------------------------------------------------------------------------------------
# Sum tree
#
# Flat float32 array of 2·L nodes, L = capacity rounded up to a power of two: node 1 is the root,
# node n has children 2n and 2n+1, leaf j lives at node L + j, node 0 is unused. Every write
# recomputes each ancestor as the float32 sum of its two children, so the invariant
# ``parent == left + right`` holds bit for bit after every operation (no delta accumulation, hence
# no drift between interior nodes); padding leaves beyond the capacity stay 0.
# --------------------------------------------------------------------------------------------------


class SumTree(NamedTuple):
    """A sum tree over ``num_leaves(tree)`` float32 priorities (a pytree: jit/scan/vmap friendly)."""

    nodes: jax.Array


def num_leaves(tree: SumTree) -> int:
    """Leaves of the tree (a power of two, >= the capacity it was made for); static."""
    return tree.nodes.shape[-1] // 2


def _depth(tree: SumTree) -> int:
    return num_leaves(tree).bit_length() - 1


def tree_from_leaves(leaves: jax.Array) -> SumTree:
    """Build all interior nodes from leaf priorities in O(L) (the padding to a power of two is 0)."""
    leaves = jnp.asarray(leaves, jnp.float32)
    n = leaves.shape[-1]
    size = 1 << max(n - 1, 0).bit_length()
    leaves = jnp.pad(leaves, (0, size - n))
    levels = [leaves]
    while levels[-1].shape[-1] > 1:
        pairs = levels[-1].reshape(-1, 2)
        levels.append(pairs[:, 0] + pairs[:, 1])  # the exact float32 op tree_set uses
    return SumTree(jnp.concatenate([jnp.zeros(1, jnp.float32), *levels[::-1]]))


def tree_init(capacity: int, size: int | jax.Array = 0, priority: float = 1.0) -> SumTree:
    """A tree whose first ``size`` leaves hold ``priority`` and the rest 0."""
    if capacity < 1:
        raise ConfigError(f"replay capacity must be >= 1, got {capacity}")
    leaves = jnp.where(jnp.arange(capacity) < size, jnp.float32(priority), jnp.float32(0))
    return tree_from_leaves(leaves)


def tree_leaves(tree: SumTree) -> jax.Array:
    """The ``num_leaves`` leaf priorities (a view of the node array)."""
    return tree.nodes[num_leaves(tree) :]


def tree_total(tree: SumTree) -> jax.Array:
    """Σ of all leaves (the root)."""
    return tree.nodes[1]


def tree_rebuild(tree: SumTree) -> SumTree:
    """Recompute every interior node from the leaves, O(L).

    :func:`tree_set` keeps the tree consistent by construction, so this is a no-op on trees made
    here; it exists to repair trees edited by hand or restored from elsewhere, and the learner calls
    it once per fused chunk as cheap insurance against float32 drift (flashbax issue #52)."""
    return tree_from_leaves(tree_leaves(tree))


def _write_leaves(flat: jax.Array, base: jax.Array, leaf: jax.Array, value: jax.Array, n_leaves: int) -> jax.Array:
    """Sequential single-leaf writes into trees of ``n_leaves`` leaves stored back to back in
    ``flat`` (write k goes to the tree starting at ``base[k]``), each followed by recomputing its
    ancestors from their children. Scalar dynamic slices only, which XLA CPU does in place."""
    depth = n_leaves.bit_length() - 1

    def write_one(flat: jax.Array, item: tuple[jax.Array, ...]) -> tuple[jax.Array, None]:
        base, leaf, value = item
        node = leaf + n_leaves
        flat = lax.dynamic_update_slice(flat, value[None], (base + node,))

        def up(_: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            flat, node = carry
            node = node // 2
            children = lax.dynamic_slice(flat, (base + 2 * node,), (2,))
            return lax.dynamic_update_slice(flat, (children[0] + children[1])[None], (base + node,)), node

        flat, _ = lax.fori_loop(0, depth, up, (flat, node), unroll=min(depth, 4) or 1)
        return flat, None

    flat, _ = lax.scan(write_one, flat, (base, leaf, value))
    return flat


@jax.custom_batching.custom_vmap
def _scatter_set(weights: jax.Array, idx: jax.Array, values: jax.Array) -> jax.Array:
    """weights.at[idx].set(values): an in-place scatter on XLA CPU."""
    return weights.at[idx].set(values)


@_scatter_set.def_vmap
def _scatter_set_vmap(
    axis_size: int, in_batched: list[bool], weights: jax.Array, idx: jax.Array, values: jax.Array
) -> tuple[jax.Array, bool]:
    # Plain vmap makes a 2-D scatter that XLA CPU compiles into a loop over all S·N elements
    # (~1.3 ms per step at N = 1e6); on the flattened array it stays an in-place 1-D scatter.
    w_b, i_b, v_b = in_batched
    weights = weights if w_b else jnp.broadcast_to(weights, (axis_size, *weights.shape))
    idx = idx if i_b else jnp.broadcast_to(idx, (axis_size, *idx.shape))
    values = values if v_b else jnp.broadcast_to(values, (axis_size, *values.shape))
    n = weights.shape[1]
    flat_idx = (idx + n * jnp.arange(axis_size, dtype=idx.dtype)[:, None]).ravel()
    return weights.reshape(-1).at[flat_idx].set(values.ravel()).reshape(weights.shape), True


@jax.custom_batching.custom_vmap
def _set_leaves(nodes: jax.Array, idx: jax.Array, values: jax.Array) -> jax.Array:
    return _write_leaves(nodes, jnp.zeros_like(idx), idx, values, nodes.shape[-1] // 2)


@_set_leaves.def_vmap
def _set_leaves_vmap(
    axis_size: int, in_batched: list[bool], nodes: jax.Array, idx: jax.Array, values: jax.Array
) -> tuple[jax.Array, bool]:
    # Plain vmap would turn every scalar slice into a batched scatter/gather, ~100x slower on CPU
    # (10 ms instead of 0.1 ms per B = 256 update at N = 1e6). Instead lay the S trees back to back
    # in one flat array and run the same scalar scan over the S·B writes, batch-major so each
    # tree still sees its own writes in order.
    nodes, idx, values = (
        x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
        for x, batched in zip((nodes, idx, values), in_batched, strict=True)
    )
    width = nodes.shape[-1]
    base = jnp.broadcast_to(jnp.arange(axis_size, dtype=jnp.int32)[:, None] * width, idx.shape)
    flat = _write_leaves(nodes.reshape(-1), base.T.reshape(-1), idx.T.reshape(-1), values.T.reshape(-1), width // 2)
    return flat.reshape(axis_size, width), True


def tree_set(tree: SumTree, idx: jax.Array, values: jax.Array) -> SumTree:
    """Write ``values[k]`` to leaf ``idx[k]`` in order, O(B log L). Requires 0 <= idx < capacity.

    A ``lax.scan`` of single-leaf writes, each followed by recomputing its ancestors from their
    children: on CPU this beats any vectorized scatter (docs/references.md §4), and being sequential it
    gives duplicate indices plain last-write-wins semantics with a consistent tree. Under ``vmap``
    (one tree per seed) a custom batching rule keeps the same scalar scan over all trees' writes."""
    idx = jnp.asarray(idx, jnp.int32).reshape(-1)
    values = jnp.broadcast_to(jnp.asarray(values, jnp.float32), idx.shape)
    return SumTree(_set_leaves(tree.nodes, idx, values))


def tree_sample(tree: SumTree, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Stratified proportional sampling: (leaf indices int32[B], their probabilities float32[B]).

    Draw ``u_b`` uniformly in the b-th of B equal slices of [0, total) and descend all B in parallel,
    one tree level per ``fori_loop`` iteration (O(B log L)). Zero-priority leaves are never returned,
    even with float32 round-off: u is clamped below the total, and the descent never enters a child
    of zero mass (it takes the sibling, which then holds all of its parent's mass). Requires
    total > 0 (a non-empty buffer). Probabilities are computed inside the descent so that no read of
    the node array escapes it (see the module docstring on in-place updates)."""
    n_leaves, depth = num_leaves(tree), _depth(tree)
    total = tree_total(tree)
    strata = jnp.arange(batch_size, dtype=jnp.float32) + jax.random.uniform(key, (batch_size,))
    u = jnp.minimum(strata / batch_size * total, jnp.nextafter(total, jnp.float32(0)))
    pairs = tree.nodes.reshape(-1, 2)  # row n = children (2n, 2n+1) of node n: one gather per level

    def descend(_: int, carry: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
        node, u, _prob = carry
        children = pairs[node]
        left, right = children[..., 0], children[..., 1]
        go_right = ((u >= left) & (right > 0)) | (left <= 0)
        u = jnp.where(go_right, u - left, u)
        prob = jnp.where(go_right, right, left) / total
        return 2 * node + go_right.astype(jnp.int32), u, prob

    start = (jnp.ones(batch_size, jnp.int32), u, jnp.ones(batch_size, jnp.float32))
    node, _, prob = lax.fori_loop(0, depth, descend, start)
    return node - n_leaves, prob


# --------------------------------------------------------------------------------------------------
# Replay state
# --------------------------------------------------------------------------------------------------


class ReplayState(NamedTuple):
    """Per-seed replay priorities; only the arrays the configured mode needs are allocated."""

    weights: jax.Array | None
    """float32[capacity] ROER loss weights (weight mode), else None."""
    tree: SumTree | None
    """Sum tree of priorities (sample mode), else None."""
    size: jax.Array
    """int32 scalar: items [0, size) are valid."""
    capacity: jax.Array
    """int32 scalar: the buffer's capacity (size never exceeds it)."""
    max_priority: jax.Array
    """float32 scalar: largest priority written so far (sample mode; new items get it). Starts at 1."""


def init(capacity: int, size: int | jax.Array, cfg: ReplayConfig) -> ReplayState:
    """A buffer of ``capacity`` slots whose first ``size`` are valid with priority/weight 1. O(N)."""
    cfg.validate()
    if capacity < 1:
        raise ConfigError(f"replay capacity must be >= 1, got {capacity}")
    size = jnp.minimum(jnp.asarray(size, jnp.int32), capacity)
    weights = tree = None
    if cfg.prioritized and cfg.mode == "weight":
        weights = jnp.full(capacity, initial_weight(cfg), jnp.float32)
    elif cfg.prioritized:
        tree = tree_init(capacity, size, 1.0)
    return ReplayState(weights, tree, size, jnp.asarray(capacity, jnp.int32), jnp.ones((), jnp.float32))


def initial_weight(cfg: ReplayConfig) -> float:
    """Stored weight of an item never visited (weight mode): an average item's, max(1, min_clip)."""
    return max(1.0, float(cfg.min_clip))


def replicate(state: ReplayState, num_seeds: int) -> ReplayState:
    """Stack ``num_seeds`` copies along a new leading axis, for a seed-vmapped learner."""
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_seeds, *x.shape)), state)


def _new_size(state: ReplayState, idx: jax.Array) -> jax.Array:
    grown = jnp.max(idx, initial=-1) + 1
    return jnp.minimum(jnp.maximum(state.size, grown), state.capacity).astype(jnp.int32)


def add(state: ReplayState, idx: jax.Array, cfg: ReplayConfig) -> ReplayState:
    """Mark slots ``idx`` (just written by the data side) as fresh items, O(B log N).

    Fresh items get :func:`initial_weight` (weight mode) or the largest priority seen so far (sample mode, so every
    new item is sampled soon, as in PER). ``size`` grows to cover ``max(idx) + 1``, capped at the
    capacity, which is right for a ring buffer that writes ``(ptr + arange(k)) % capacity``.
    Every index must be < capacity."""
    idx = jnp.asarray(idx, jnp.int32).reshape(-1)
    weights, tree = state.weights, state.tree
    if cfg.prioritized and cfg.mode == "weight":
        weights = _scatter_set(weights, idx, jnp.full(idx.shape, initial_weight(cfg), weights.dtype))
    elif cfg.prioritized:
        tree = tree_set(tree, idx, jnp.broadcast_to(state.max_priority, idx.shape))
    return state._replace(weights=weights, tree=tree, size=_new_size(state, idx))


def set_size(state: ReplayState, size: int | jax.Array, cfg: ReplayConfig) -> ReplayState:
    """Declare items [0, size) valid, O(N): for bulk loads, not per step.

    Items that become valid get fresh priority (as :func:`add`); items beyond the new size get
    probability 0 in sample mode. ``size`` is capped at the capacity."""
    new = jnp.clip(jnp.asarray(size, jnp.int32), 0, state.capacity)
    weights, tree = state.weights, state.tree
    if cfg.prioritized and cfg.mode == "weight":
        slot = jnp.arange(weights.shape[-1])
        weights = jnp.where((slot >= state.size) & (slot < new), jnp.float32(initial_weight(cfg)), weights)
    elif cfg.prioritized:
        leaves = tree_leaves(tree)
        slot = jnp.arange(leaves.shape[-1])
        fresh = jnp.where(slot < state.size, leaves, state.max_priority)
        tree = tree_from_leaves(jnp.where(slot < new, fresh, jnp.float32(0)))
    return state._replace(weights=weights, tree=tree, size=new)


def rebuild(state: ReplayState, cfg: ReplayConfig) -> ReplayState:
    """Rebuild the sum tree from its leaves (sample mode; a no-op otherwise). O(N): once per chunk."""
    if cfg.prioritized and cfg.mode == "sample":
        return state._replace(tree=tree_rebuild(state.tree))
    return state


def sample(state: ReplayState, key: jax.Array, batch_size: int, cfg: ReplayConfig) -> tuple[jax.Array, jax.Array]:
    """Draw a batch: (indices int32[B], loss weights float32[B]); see :func:`sample_batch`."""
    idx, loss_w, _ = sample_batch(state, key, batch_size, cfg)
    return idx, loss_w


def sample_batch(
    state: ReplayState, key: jax.Array, batch_size: int, cfg: ReplayConfig
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draw a batch: (indices int32[B], loss weights float32[B], buffer weights float32[B]).

    Weight mode: uniform over [0, size), loss weights = stored weights. Sample mode: proportional to
    the priorities (stratified), loss weights = importance weights ``(N·P(i))^(−β_IS)`` divided by
    their batch max, N = size. Not prioritized: uniform, weights 1. Requires size >= 1.

    Buffer weights turn a batch mean into an unbiased estimate of the mean over the buffer:
    ``1/(N·P(i))`` in sample mode, 1 otherwise. Losses that must see the buffer's distribution (the
    value loss whose minimizer is the buffer's multiplier, the actor) are weighted by them, so both
    mechanisms train the same objectives in expectation; only the critic sees the priorities."""
    ones = jnp.ones(batch_size, jnp.float32)
    if not cfg.prioritized or cfg.mode == "weight":
        idx = jax.random.randint(key, (batch_size,), 0, state.size, dtype=jnp.int32)
        if not cfg.prioritized:
            return idx, ones, ones
        loss_w = state.weights[idx]
        # A no-op (stored weights are always finite) that makes idx depend on the read above: the
        # later update writes at idx, so XLA can order the read first and write the O(N) array in
        # place; without it the learner, whose fresh priorities do not depend on the loss weights,
        # would copy the whole array every step (benchmarks/replay_ops.py counts those copies).
        return jnp.where(jnp.isfinite(loss_w), idx, 0), loss_w, ones
    # Every read of the tree happens inside the descent loop, whose output idx the update consumes.
    idx, prob = tree_sample(state.tree, key, batch_size)
    n_prob = state.size.astype(jnp.float32) * prob
    iw = n_prob ** jnp.float32(-cfg.importance_exponent)
    return idx, iw / jnp.max(iw), 1.0 / n_prob


def _clip_raw(raw: jax.Array, cfg: ReplayConfig) -> jax.Array:
    # A NaN weight (a diverged step) becomes lower_clip so it cannot poison the stored priorities;
    # the learner's own NaN check on its losses is what reports the divergence.
    raw = jnp.nan_to_num(jnp.asarray(raw, jnp.float32), nan=cfg.lower_clip)
    return jnp.clip(raw, cfg.lower_clip, cfg.max_clip)


def _last_occurrence(idx: jax.Array) -> jax.Array:
    """For each position k, the last position holding the same index: O(B²) compares, tiny for
    B ≤ 1024, and it makes a scatter with duplicates deterministic (all duplicates write one value)."""
    pos = jnp.arange(idx.shape[-1], dtype=jnp.int32)
    same = idx[:, None] == idx[None, :]
    return jnp.max(jnp.where(same, pos[None, :], -1), axis=1)


def update(state: ReplayState, idx: jax.Array, raw: jax.Array, cfg: ReplayConfig) -> ReplayState:
    """Write fresh priority weights ``raw`` (float32[B]) for the sampled ``idx``, O(B log N).

    Weight mode, "avg" (ROER): ``e = clip(raw, lower_clip, max_clip)``, ``e ← e / mean(w[idx]·e)``,
    ``w[idx] ← max((ema·e + 1 − ema)·w[idx], min_clip)``. Weight mode, "exp":
    ``c = clip(raw, lower_clip, max_clip)^alpha``, ``w[idx] ← max(c / mean(c), min_clip)``; "direct":
    the same with alpha = 1 (the fresh weight itself, normalized by its batch mean).
    Sample mode: leaf ``idx`` ← ``max(clip(raw, lower_clip, max_clip), PRIORITY_FLOOR)``.
    Not prioritized: unchanged.

    Duplicate indices: the batch means include every occurrence, and the last occurrence's new
    value is the one stored (in both modes)."""
    if not cfg.prioritized:
        return state
    idx = jnp.asarray(idx, jnp.int32).reshape(-1)
    fresh = _clip_raw(raw, cfg)
    if cfg.mode == "sample":
        prio = jnp.maximum(fresh, jnp.float32(PRIORITY_FLOOR))
        max_priority = jnp.maximum(state.max_priority, jnp.max(prio))
        return state._replace(tree=tree_set(state.tree, idx, prio), max_priority=max_priority)

    if cfg.scheme == "avg":
        w_old = state.weights[idx]
        e = fresh / jnp.maximum(jnp.mean(w_old * fresh), _TINY)
        w_new = (cfg.ema * e + (1.0 - cfg.ema)) * w_old
    else:
        c = fresh ** jnp.float32(cfg.alpha) if cfg.scheme == "exp" else fresh
        w_new = c / jnp.maximum(jnp.mean(c), _TINY)
    w_new = jnp.maximum(w_new, jnp.float32(cfg.min_clip))
    weights = _scatter_set(state.weights, idx, w_new[_last_occurrence(idx)])
    return state._replace(weights=weights)


def floor_and_cap(cfg: ReplayConfig) -> tuple[float, float]:
    """The values a stored weight (weight mode) or priority (sample mode) cannot go below or above:
    weights are floored at min_clip and have no cap (the cap acts on fresh weights, before the
    normalization); priorities are clipped to [max(lower_clip, PRIORITY_FLOOR), max_clip]."""
    if cfg.mode == "weight":
        return float(cfg.min_clip), math.inf
    return max(float(cfg.lower_clip), PRIORITY_FLOOR), float(cfg.max_clip)


def stats(state: ReplayState, cfg: ReplayConfig) -> dict[str, jax.Array]:
    """Summary of the valid items' weights (weight mode) or priorities (sample mode), O(N).

    Keys: weight_mean, weight_max, weight_min, ess_frac = (Σp)² / (N·Σp²) ∈ (0, 1] (1: uniform),
    floor_frac and cap_frac = fractions of items at the floor / cap of :func:`floor_and_cap`
    (within 1e-5 relative). These say whether priorities act: a run whose weights all sit at one
    floor trained with uniform replay whatever its per_type. All 0 for an empty buffer."""
    if not cfg.prioritized:
        one = jnp.where(state.size > 0, jnp.float32(1), jnp.float32(0))
        zero = jnp.float32(0)
        return {
            "weight_mean": one,
            "weight_max": one,
            "weight_min": one,
            "ess_frac": one,
            "floor_frac": zero,
            "cap_frac": zero,
        }
    values = state.weights if cfg.mode == "weight" else tree_leaves(state.tree)
    valid = jnp.arange(values.shape[-1]) < state.size
    n = jnp.maximum(state.size, 1).astype(jnp.float32)
    v = jnp.where(valid, values, 0.0)
    total, total_sq = jnp.sum(v), jnp.sum(v * v)
    nonempty = state.size > 0
    zero = jnp.float32(0)
    floor, cap = floor_and_cap(cfg)
    at_floor = valid & (values <= jnp.float32(floor) * (1 + 1e-5))
    at_cap = valid & (values >= jnp.float32(cap) * (1 - 1e-5)) if math.isfinite(cap) else jnp.zeros_like(valid)
    return {
        "weight_mean": total / n,
        "weight_max": jnp.where(nonempty, jnp.max(jnp.where(valid, values, -jnp.inf)), zero),
        "weight_min": jnp.where(nonempty, jnp.min(jnp.where(valid, values, jnp.inf)), zero),
        "ess_frac": jnp.where(nonempty, total * total / (n * jnp.maximum(total_sq, _TINY)), zero),
        "floor_frac": jnp.sum(at_floor) / n,
        "cap_frac": jnp.sum(at_cap) / n,
    }
