"""Figures. matplotlib is imported lazily with the Agg backend so headless machines never need a display."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_divergences(path: Path, cfg) -> Path:
    """Weight functions (log scale, caps included) and value losses of every per_type, side by side."""
    import jax.numpy as jnp

    from fdivrl.core import divergences as D

    plt = _pyplot()
    z = np.linspace(-5.0, 5.0, 801)
    zj = jnp.asarray(z, dtype=jnp.float32)
    fig, (ax_w, ax_l) = plt.subplots(1, 2, figsize=(13, 5))
    colors = plt.get_cmap("tab10").colors
    for color, div in zip(colors, D.REGISTRY.values(), strict=False):
        style = dict(color=color, ls="-" if isinstance(div, D.FDivergence) else "--", label=div.name)
        ax_w.plot(z, np.asarray(div.weight(zj, cfg)), **style)
        if not isinstance(div, D.Baseline):  # baselines borrow KL's loss: one KL curve is enough
            ax_l.plot(z, np.asarray(div.loss(zj, cfg)), **style)
    ax_w.set(
        yscale="log",
        xlabel="z = δ/β",
        ylabel="priority weight",
        title=f"priority weights (capped at max_clip = {cfg.max_clip:g})",
    )
    ax_l.set(
        xlabel="z = (Q − V)/β",
        ylabel="ℓ(z)",
        ylim=(-1.0, 8.0),
        title="value losses ℓ(z) = f*(z) − z (linear past the clip)",
    )
    for ax in (ax_w, ax_l):
        ax.grid(alpha=0.3)
        ax.axvline(np.log(2.0), color="grey", lw=0.6, ls=":")
        ax.legend(fontsize=8)
    fig.suptitle(
        "fdivrl per_types: JS = the seed's sigmoid heuristic, JS-exact = the JS optimum (pole at log 2), "
        "sigmoid = 2σ(z), exact for its own f"
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _save(fig, stem: Path) -> list[Path]:
    """PNG for a glance, SVG for papers."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p, dpi=120)
    return paths


def _colors(plt, by_task: dict[str, dict[str, object]]) -> dict[str, tuple]:
    """One color per per_type across all panels."""
    names = list(dict.fromkeys(p for by_type in by_task.values() for p in by_type))
    cycle = plt.get_cmap("tab10").colors
    return {p: cycle[i % len(cycle)] for i, p in enumerate(names)}


NO_BAND = "n = 1: no interval"
"""What a curve from a single run is labelled with: its CI rows are NaN (stats.bootstrap_mean_band)."""


def _has_band(band: np.ndarray) -> bool:
    return bool(np.isfinite(band[1:]).any())


_NONE_INACTIVE: Mapping[str, Collection[str]] = MappingProxyType({})

INACTIVE = "inactive"
"""The legend mark of a per_type whose priorities did not act on a task: its curve is uniform replay."""


def _mark(per_type: str, task: str, inactive: Mapping[str, Collection[str]]) -> tuple[str, str]:
    """Legend label and line style: an inactive per_type is marked and dashed, so its curve is not
    read as its priorities' effect."""
    if per_type in inactive.get(task, ()):
        return f"{per_type} ({INACTIVE})", "--"
    return per_type, "-"


def learning_curves_title(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]) -> str:
    """The figure's title; it claims a 95% CI only for curves that have one."""
    bands = [_has_band(band) for by_type in curves.values() for _, band in by_type.values()]
    if all(bands):
        return "learning curves: mean over seeds, 95% bootstrap CI"
    if not any(bands):
        return f"learning curves: mean over seeds ({NO_BAND})"
    return f"learning curves: mean over seeds, 95% bootstrap CI where n ≥ 2 ({NO_BAND}: marked in the legend)"


def plot_learning_curves(
    stem: Path,
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    ylabel: str,
    inactive: Mapping[str, Collection[str]] = _NONE_INACTIVE,
) -> list[Path]:
    """One panel per task: each per_type's seed mean over training steps with its 95% CI band.

    `curves`: task -> per_type -> (steps, array (3, n_steps) of mean, CI low, CI high); NaN CI rows
    (a single run) draw no band and say so in the legend. `inactive`: task -> per_types whose
    priorities did not act there, drawn dashed and marked in the legend.
    """
    plt = _pyplot()
    tasks = list(curves) or ["(no evaluations logged)"]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(7.0, 3.6 * len(tasks)), squeeze=False)
    colors = _colors(plt, curves)
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        for per_type, (steps, band) in curves.get(task, {}).items():
            label, ls = _mark(per_type, task, inactive)
            label += "" if _has_band(band) else f" ({NO_BAND})"
            marker = "o" if len(steps) < 20 else None
            ax.plot(steps, band[0], color=colors[per_type], ls=ls, marker=marker, label=label)
            if _has_band(band):
                ax.fill_between(steps, band[1], band[2], color=colors[per_type], alpha=0.2, lw=0)
        ax.set(title=task, xlabel="steps", ylabel=ylabel)
        ax.grid(alpha=0.3)
        if curves.get(task):
            ax.legend(fontsize=8)
    fig.suptitle(learning_curves_title(curves))
    fig.tight_layout()
    paths = _save(fig, stem)
    plt.close(fig)
    return paths


def plot_priority_weights(
    stem: Path,
    data: dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]],
    inactive: Mapping[str, Collection[str]] = _NONE_INACTIVE,
) -> list[Path]:
    """Per task: each per_type's stored priority weights over training (mean line, min-max band, log
    scale) and their effective sample size fraction — how peaked a distribution each per_type made.

    `data`: task -> per_type -> metric key (priority_weight_mean/min/max, priority_ess_frac) -> (steps, values);
    `inactive` as in plot_learning_curves.
    """
    plt = _pyplot()
    tasks = list(data) or ["(no priority statistics logged)"]
    fig, axes = plt.subplots(len(tasks), 2, figsize=(13.0, 3.6 * len(tasks)), squeeze=False)
    colors = _colors(plt, data)
    for (ax_w, ax_e), task in zip(axes, tasks, strict=True):
        for per_type, keys in data.get(task, {}).items():
            color = colors[per_type]
            label, ls = _mark(per_type, task, inactive)
            line = dict(color=color, ls=ls, label=label)
            if "priority_weight_mean" in keys:
                steps, mean = keys["priority_weight_mean"]
                ax_w.plot(steps, mean, **line)
                if "priority_weight_min" in keys and "priority_weight_max" in keys:
                    ax_w.fill_between(
                        steps,
                        keys["priority_weight_min"][1],
                        keys["priority_weight_max"][1],
                        color=color,
                        alpha=0.15,
                        lw=0,
                    )
            if "priority_ess_frac" in keys:
                ax_e.plot(*keys["priority_ess_frac"], **line)
        ax_w.set(title=f"{task}: priority weights (mean, min–max)", xlabel="steps", ylabel="weight", yscale="log")
        ax_e.set(title=f"{task}: effective sample size / N", xlabel="steps", ylabel="ESS fraction", ylim=(0, 1.05))
        for ax in (ax_w, ax_e):
            ax.grid(alpha=0.3)
            if data.get(task):
                ax.legend(fontsize=8)
    fig.tight_layout()
    paths = _save(fig, stem)
    plt.close(fig)
    return paths
