"""Reliability diagram of a propensity model: mean predicted propensity vs observed rate per bin."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def write_calibration_plot(table: pd.DataFrame, out_dir: Path) -> None:
    """``table`` has columns bin, n, pred_mean, obs_rate (see lure.propensity.metrics.calibration_table)."""
    write_text(out_dir / "calibration.csv", table.to_csv(index=False))
    with png_figure(out_dir / "calibration.png", figsize=(4.4, 4.0)) as (_, ax):
        hi = float(max(table["pred_mean"].max(), table["obs_rate"].max(), 1e-9)) if len(table) else 1.0
        ax.plot([0, hi], [0, hi], color="grey", lw=0.8, ls="--", label="perfect calibration")
        ax.plot(table["pred_mean"], table["obs_rate"], marker="o", label="model")
        ax.set_xlabel("mean predicted propensity")
        ax.set_ylabel("observed rate")
        ax.set_title("Propensity calibration")
        ax.legend(fontsize=8)
