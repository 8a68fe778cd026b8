"""`fdivrl divergences`: every per_type's weights side by side, checked against a numerical solver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fdivrl.cli.common import (
    app,
    console,
    count_option,
    usable_dir,
)
from fdivrl.core import divergences as D
from fdivrl.errors import ConfigError


@app.command()
def divergences(
    out: Annotated[Path, typer.Option(help="PNG of weight functions and value losses.")] = Path("divergences.png"),
    beta: Annotated[float, typer.Option(help="Temperature used for PER's |δ| = |z|·β.")] = 1.0,
    max_clip: Annotated[float, typer.Option(help="Cap on priority weights.")] = 50.0,
    instances: Annotated[int, typer.Option(help="Random instances for the solver check.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the random instances.")] = 0,
    plot: Annotated[bool, typer.Option(help="Write the PNG.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print everything as one JSON object.")] = False,
) -> None:
    """Every per_type's weights side by side, each closed form checked against a numerical solver."""
    from fdivrl.analysis.plots import plot_divergences
    from fdivrl.core import report as R

    cfg = D.DivergenceConfig(beta=beta, max_clip=max_clip).validate()
    count_option("--instances", instances)
    if plot:
        if out.is_dir():
            raise ConfigError(f"--out {out} is a directory; name the PNG file to write")
        usable_dir("--out's directory", out.parent)
    weights = R.weight_table(cfg)
    exact = R.exact_ratio_table()
    checks = R.solver_check(seed=seed, instances=instances)
    seed_cmp = R.seed_comparison()
    png = str(plot_divergences(out, cfg)) if plot else None
    if json_out:
        print(
            json.dumps(
                {
                    "z": list(R.TABLE_Z),
                    "weights": weights,
                    "exact_ratio": exact,
                    "solver_check": [vars(c) for c in checks],
                    "seed_vs_exact": vars(seed_cmp),
                    "plot": png,
                }
            )
        )
        return
    table = Table(
        title=f"priority weight at z = δ/β (caps: max_clip = {cfg.max_clip:g}; exact w* in brackets where capped)"
    )
    table.add_column("per_type", no_wrap=True)
    for z in R.TABLE_Z:
        table.add_column(f"{z:+g}", justify="right")
    for name, row in weights.items():
        cells = []
        for i, w in enumerate(row):
            cell = f"{w:.4g}"
            if name in exact and abs(exact[name][i] - w) > 1e-3 * max(1.0, w):
                e = exact[name][i]
                cell += " [∞]" if e == float("inf") else f" [{e:.4g}]"
            cells.append(cell)
        table.add_row(name, *cells)
    console.print(table)
    check = Table(title=f"closed form vs numerical solver ({instances} random instances, non-uniform buffers)")
    for col in ("per_type", "max |w* − w_solver|", "max |λ_dual − λ|", "objective at w*"):
        check.add_column(col, justify="right")
    for c in checks:
        check.add_row(c.name, f"{c.max_weight_error:.1e}", f"{c.max_lambda_error:.1e}", f"{c.objective_optimum:.5f}")
    console.print(check)
    tb = seed_cmp.top_bottom
    console.print(
        "The seed's JS is not the JS optimum (50 points, uniform buffer, A ~ N(0,1), β = 1): "
        f"top/bottom weight JS-exact {tb['JS-exact'][0]:.3g}/{tb['JS-exact'][1]:.3g}, "
        f"seed JS {tb['JS'][0]:.3g}/{tb['JS'][1]:.3g}, sigmoid {tb['sigmoid'][0]:.3g}/{tb['sigmoid'][1]:.3g}, "
        f"KL {tb['KL'][0]:.3g}/{tb['KL'][1]:.3g}; "
        f"JS objective {seed_cmp.js_objective_optimum:.3f} at the optimum vs "
        f"{seed_cmp.js_objective_seed:.3f} at the seed's weights."
    )
    if png:
        console.print(f"plot written to {png}")
