"""Reliability diagram of a propensity model: mean predicted propensity vs observed rate per bin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def draw_calibration(ax: Any, table: pd.DataFrame) -> None:
    """Observed rate against mean predicted propensity, per bin, with the line y = x, both axes on one scale.
    Propensities are skewed (most bins sit near 0), so the axes are logarithmic when every value is positive;
    a bin with no observed interaction (rate 0) keeps them linear."""
    pred, obs = table["pred_mean"], table["obs_rate"]
    log = bool(len(table)) and bool((pred > 0).all() and (obs > 0).all())
    if len(table):
        lo = float(min(pred.min(), obs.min())) / 1.5 if log else 0.0
        hi = float(max(pred.max(), obs.max(), 1e-9)) * (1.5 if log else 1.05)
    else:
        lo, hi = 0.0, 1.0
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="perfect calibration")
    ax.plot(pred, obs, marker="o", label="model (one point per bin)")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    suffix = " (log)" if log else ""
    ax.set_xlabel("mean predicted propensity" + suffix)
    ax.set_ylabel("observed rate" + suffix)
    ax.set_title("Propensity calibration")
    ax.legend(fontsize=8)


def write_calibration_plot(table: pd.DataFrame, out_dir: Path) -> None:
    """``table`` has columns bin, n, pred_mean, obs_rate (see lure.propensity.metrics.calibration_table)."""
    write_text(out_dir / "calibration.csv", table.to_csv(index=False))
    with png_figure(out_dir / "calibration.png", figsize=(4.6, 4.4)) as (_, ax):
        draw_calibration(ax, table)
