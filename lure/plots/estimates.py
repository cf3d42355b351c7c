"""Estimate vs target per model: how far naive, IPS and SNIPS land from the truth (or the MAR estimate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure

MARKERS = {"naive": "o", "ips": "s", "snips": "^", "ips_global_sn": "D"}
#: Horizontal offset of each estimator's marker and interval, in points: the three estimates of a model share
#: its target (x), so undodged their intervals would lie on top of each other.
DODGE = {"naive": -6.0, "ips": -2.0, "snips": 2.0, "ips_global_sn": 6.0}
#: Estimators that can be the target (``summary.target`` of ``evaluate``): the truth on the simulated world, the
#: MAR estimate on a real dataset.
TARGETS = ("truth", "mar")


def target_name(tidy: pd.DataFrame) -> str:
    """Which estimator the ``target`` column holds: the one of :data:`TARGETS` whose value equals the target in
    every one of its rows ('target' when none does)."""
    for name in TARGETS:
        rows = tidy[tidy["estimator"] == name]
        if len(rows) and (rows["value"] == rows["target"]).all():
            return name
    return "target"


def draw_estimates(ax: Any, tidy: pd.DataFrame, metric: str = "recall_at_10") -> None:
    """One point per model and estimator at (target, estimate) with the estimate's confidence interval as a
    vertical bar and the target's as a horizontal one, the line estimate = target, both axes from 0."""
    from matplotlib.transforms import ScaledTranslation

    rows = tidy[(tidy["metric"] == metric) & tidy["estimator"].isin(list(MARKERS)) & tidy["target"].notna()]
    target = target_name(tidy)
    label = metric.replace("_at_", "@")
    ax.set_xlabel(f"{target} {label}")
    ax.set_ylabel(f"estimated {label}")
    ax.set_title(f"Offline estimates vs {target}: {label}")
    if rows.empty:
        return
    own = tidy[(tidy["metric"] == metric) & (tidy["estimator"] == target)].set_index("model")
    hi_x = float(rows["target"].max()) * 1.12
    hi_y = float(max(rows["ci_high"].max(), rows["value"].max())) * 1.05
    ax.plot([0, hi_x], [0, hi_x], color="grey", lw=0.8, ls="--", label=f"estimate = {target}")
    for est, marker in MARKERS.items():
        part = rows[rows["estimator"] == est]
        if part.empty:
            continue
        xerr = None
        if not own.empty:
            tci = own.reindex(part["model"])
            xerr = [
                (part["target"].to_numpy() - tci["ci_low"].to_numpy()).clip(min=0),
                (tci["ci_high"].to_numpy() - part["target"].to_numpy()).clip(min=0),
            ]
        yerr = [
            (part["value"] - part["ci_low"]).clip(lower=0).to_numpy(),
            (part["ci_high"] - part["value"]).clip(lower=0).to_numpy(),
        ]
        shift = ScaledTranslation(DODGE[est] / 72, 0, ax.figure.dpi_scale_trans)
        ax.errorbar(
            part["target"],
            part["value"],
            yerr=yerr,
            xerr=xerr,
            fmt=marker,
            ms=5,
            elinewidth=0.9,
            capsize=2,
            label=est,
            gid=f"estimates-{est}",
            transform=ax.transData + shift,
        )
    for _, r in rows[rows["estimator"] == "naive"].iterrows():
        ax.annotate(r["model"], (r["target"], r["value"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlim(0, hi_x)
    ax.set_ylim(0, hi_y)
    ax.legend(fontsize=8, title="bars: confidence intervals", title_fontsize=7, loc="upper left")


def write_estimates_plot(tidy: pd.DataFrame, out_dir: Path, metric: str = "recall_at_10") -> None:
    """``tidy`` has columns model, metric, estimator, value, ci_low, ci_high, target (one row per model × metric ×
    estimator; lure.evaluation.results_frame)."""
    write_text(out_dir / "estimates.csv", tidy.to_csv(index=False))
    with png_figure(out_dir / "estimates.png", figsize=(5.4, 4.4)) as (_, ax):
        draw_estimates(ax, tidy, metric)
