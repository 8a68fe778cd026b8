"""Figures. matplotlib is imported lazily with the Agg backend so headless machines never need a display."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_divergences(path: Path, cfg) -> Path:
    """Weight functions (log scale, caps included) and value losses of every per_type, side by side."""
    import jax.numpy as jnp

    from fdivrl import divergences as D

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
    fig.suptitle("fdivrl per_types: JS = the seed's sigmoid heuristic, JS-exact = the JS optimum (pole at log 2)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
