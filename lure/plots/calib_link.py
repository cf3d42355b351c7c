"""Calib-Link (LURE §2.3, Fig. 1): the isotonic map g from RJS to Delta Recall^IPS, with one point per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def draw_calib_link(ax: Any, points: pd.DataFrame, reference: str, reason: str | None) -> None:
    """Each model at (RJS, Delta Recall), labelled; g as the line through its fitted values (sorted by RJS)."""
    ax.scatter(points["rjs"], points["delta_recall"], zorder=3, label="models")
    for row in points.itertuples():
        ax.annotate(str(row.model), (row.rjs, row.delta_recall), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if points["g"].notna().all() and len(points):
        ax.plot(points["rjs"], points["g"], color="C1", label="isotonic g")
    if reason:
        ax.text(0.02, 0.02, reason, transform=ax.transAxes, fontsize=7, wrap=True, va="bottom")
    ax.axhline(0.0, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("RJS (tau_w)")
    ax.set_ylabel(f"Delta Recall^IPS vs {reference}")
    ax.set_title("Calib-Link")
    if len(points):
        ax.legend(fontsize=8)


def write_calib_link_plot(points: pd.DataFrame, out_dir: Path, reference: str, reason: str | None = None) -> None:
    """``calib_link.csv`` (model, rjs, delta_recall, g, loo_abs_error) and ``calib_link.png`` in ``out_dir``."""
    write_text(out_dir / "calib_link.csv", points.to_csv(index=False))
    with png_figure(out_dir / "calib_link.png", figsize=(5, 3.6)) as (_, ax):
        draw_calib_link(ax, points, reference, reason)
