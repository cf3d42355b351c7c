"""Language-bias diagnostics of the generative recommenders (GDRT Figs. 2-4 and 7-9), as CSV (DVC plots) + PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def write_attribution_plot(rows: pd.DataFrame, out_dir: Path) -> None:
    """Figs. 2/7: auxiliary-to-interaction attribution ratios per model (columns model, ratio, value)."""
    write_text(out_dir / "attribution.csv", rows.to_csv(index=False))
    with png_figure(out_dir / "attribution.png", figsize=(5.6, 3.4)) as (_, ax):
        models = list(dict.fromkeys(rows["model"]))
        ratios = list(dict.fromkeys(rows["ratio"]))
        width = 0.8 / max(len(ratios), 1)
        for j, ratio in enumerate(ratios):
            part = rows[rows["ratio"] == ratio].set_index("model").reindex(models)
            ax.bar(np.arange(len(models)) + j * width, part["value"], width, label=ratio)
        ax.set_xticks(np.arange(len(models)) + width * (len(ratios) - 1) / 2, models)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_ylabel("attribution ratio (aux / history)")
        ax.set_title("Feature-ablation attribution")
        ax.legend(fontsize=7)


def write_top1_groups_plot(rows: pd.DataFrame, out_dir: Path) -> None:
    """Figs. 3/8: share of top-1 recommendations per relevance group, per model and for the test targets
    (columns model, group, share; group 1 = most relevant to the auxiliary tokens, as the paper numbers them)."""
    write_text(out_dir / "top1_groups.csv", rows.to_csv(index=False))
    with png_figure(out_dir / "top1_groups.png", figsize=(5.6, 3.4)) as (_, ax):
        models = list(dict.fromkeys(rows["model"]))
        groups = sorted(rows["group"].unique())
        width = 0.8 / max(len(models), 1)
        for j, model in enumerate(models):
            part = rows[rows["model"] == model].set_index("group").reindex(groups)
            ax.bar(np.arange(len(groups)) + j * width, part["share"], width, label=model)
        ax.set_xticks(np.arange(len(groups)) + width * (len(models) - 1) / 2, [f"G{g}" for g in groups])
        ax.set_xlabel("item group by Eq. 2 relevance (G1 = most relevant to auxiliary tokens)")
        ax.set_ylabel("share of top-1")
        ax.legend(fontsize=7)


def write_course_plot(rows: pd.DataFrame, out_dir: Path) -> None:
    """Figs. 4/9: share of top-1 recommendations per relevance group over training (columns model, step, group,
    share)."""
    write_text(out_dir / "course.csv", rows.to_csv(index=False))
    models = list(dict.fromkeys(rows["model"])) or ["-"]
    with png_figure(out_dir / "course.png", figsize=(3.2 * len(models), 3.2), ncols=len(models)) as (_, axes):
        for a, model in zip(np.atleast_1d(axes), models, strict=True):
            part = rows[rows["model"] == model]
            for g in sorted(part["group"].unique()):
                line = part[part["group"] == g].sort_values("step")
                a.plot(line["step"], line["share"], marker="o", ms=3, label=f"G{g}")
            a.set_title(model)
            a.set_xlabel("training step")
            a.set_ylabel("share of top-1")
        np.atleast_1d(axes)[0].legend(fontsize=7)
