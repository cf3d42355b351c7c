"""LURE Table 1 as a chart: every recommender's RJS with its CI, overall and per popularity bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lure.io import write_text
from lure.plots.base import grouped_bars, png_figure


def draw_rjs(ax: Any, table: pd.DataFrame) -> None:
    """Grouped bars: one group per bucket, one bar per model, the bootstrap CI as an error bar."""
    grouped_bars(ax, table, "bucket", "model", "RJS", "RJS_ci_low", "RJS_ci_high")
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_ylabel("RJS (tau_w)")
    ax.set_title("Agreement with the judge by popularity bucket (0 = most popular)")
    ax.legend(fontsize=7, ncol=min(table["model"].nunique(), 4))


def write_rjs_plot(table: pd.DataFrame, out_dir: Path) -> None:
    """``rjs.csv`` (model, bucket, RJS, its CI, PairAUC_IPS) and ``rjs.png`` in ``out_dir``."""
    columns = ["model", "bucket", "RJS", "RJS_ci_low", "RJS_ci_high", "PairAUC_IPS", "pairs"]
    write_text(out_dir / "rjs.csv", table[columns].to_csv(index=False))
    with png_figure(out_dir / "rjs.png", figsize=(7, 3.6)) as (_, ax):
        draw_rjs(ax, table)
