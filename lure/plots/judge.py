"""LURE Table 1 as a chart: every recommender's RJS with its CI, overall and per popularity bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def draw_rjs(ax: Any, table: pd.DataFrame) -> None:
    """Grouped bars: one group per bucket, one bar per model, the bootstrap CI as an error bar."""
    buckets = list(dict.fromkeys(table["bucket"]))
    models = list(dict.fromkeys(table["model"]))
    width = 0.8 / max(len(models), 1)
    for k, model in enumerate(models):
        rows = table[table["model"] == model].set_index("bucket").reindex(buckets)
        x = np.arange(len(buckets)) + (k - (len(models) - 1) / 2) * width
        low = (rows["RJS"] - rows["RJS_ci_low"]).to_numpy(np.float64)
        high = (rows["RJS_ci_high"] - rows["RJS"]).to_numpy(np.float64)
        err = None if np.isnan(low).all() else np.vstack([low, high])
        ax.bar(x, rows["RJS"].to_numpy(np.float64), width, yerr=err, capsize=2, label=model)
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xticks(np.arange(len(buckets)), buckets, fontsize=7)
    ax.set_ylabel("RJS (tau_w)")
    ax.set_title("Agreement with the judge by popularity bucket (0 = most popular)")
    ax.legend(fontsize=7, ncol=min(len(models), 4))


def write_rjs_plot(table: pd.DataFrame, out_dir: Path) -> None:
    """``rjs.csv`` (model, bucket, RJS, its CI, PairAUC_IPS) and ``rjs.png`` in ``out_dir``."""
    columns = ["model", "bucket", "RJS", "RJS_ci_low", "RJS_ci_high", "PairAUC_IPS", "pairs"]
    write_text(out_dir / "rjs.csv", table[columns].to_csv(index=False))
    with png_figure(out_dir / "rjs.png", figsize=(7, 3.6)) as (_, ax):
        draw_rjs(ax, table)
