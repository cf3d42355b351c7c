"""Estimate vs target per model: how far naive, IPS and SNIPS land from the truth (or the MAR estimate)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure

MARKERS = {"naive": "o", "ips": "s", "snips": "^"}


def write_estimates_plot(tidy: pd.DataFrame, out_dir: Path, metric: str = "recall_at_10") -> None:
    """``tidy`` has columns model, metric, estimator, value, target (one row per model × metric × estimator)."""
    write_text(out_dir / "estimates.csv", tidy.to_csv(index=False))
    rows = tidy[(tidy["metric"] == metric) & tidy["estimator"].isin(list(MARKERS)) & tidy["target"].notna()]
    with png_figure(out_dir / "estimates.png", figsize=(5.2, 4.2)) as (_, ax):
        if not rows.empty:
            lo = float(min(rows["value"].min(), rows["target"].min()))
            hi = float(max(rows["value"].max(), rows["target"].max()))
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="estimate = target")
            for est, marker in MARKERS.items():
                part = rows[rows["estimator"] == est]
                ax.scatter(part["target"], part["value"], marker=marker, label=est)
            for _, r in rows[rows["estimator"] == "naive"].iterrows():
                ax.annotate(
                    r["model"], (r["target"], r["value"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
            ax.legend(fontsize=8)
        ax.set_xlabel(f"target {metric} (truth / MAR)")
        ax.set_ylabel(f"estimated {metric}")
        ax.set_title("Offline estimates vs target")
