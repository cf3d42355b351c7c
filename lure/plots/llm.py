"""Language-bias diagnostics of the generative recommenders (GDRT Figs. 2-4 and 7-9), as CSV (DVC plots) + PNG.

The item groups G1…Gn are the catalogue sorted by Eq. 2 relevance (how likely the model finds a title from the
auxiliary tokens alone, without the history) and cut into n equal-size groups; G1 is the most relevant, as the paper
numbers them (docs/gdrt.md, "Metrics"). Each figure says so, since "G3" means nothing on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure

#: Readable names of the attribution ratios (``Attribution.ratios()`` keys).
RATIO_LABELS = {
    "ratio_task_to_history": "task text / history",
    "ratio_first_token_to_history": "first title token / history",
}
#: The reference distribution in top1_groups.csv: the groups of the test targets themselves.
REFERENCE = "test targets"
GROUPS_NOTE = "items in equal-size groups by Eq. 2 relevance to the auxiliary tokens"


def group_label(group: int, n_groups: int) -> str:
    """``G1 (most relevant)``, ``G2``, …, ``Gn (least relevant)``: the legend and tick text of group ``group``."""
    if group == 1:
        return "G1 (most relevant)"
    if group == n_groups:
        return f"G{group} (least relevant)"
    return f"G{group}"


def draw_attribution(ax: Any, rows: pd.DataFrame) -> None:
    """Grouped bars, one group per model, one bar per ratio, each labelled with its value (a ratio near 0 has no
    visible bar); the dashed line marks 1 (as much attribution as the history)."""
    models = list(dict.fromkeys(rows["model"]))
    ratios = list(dict.fromkeys(rows["ratio"]))
    width = 0.8 / max(len(ratios), 1)
    for j, ratio in enumerate(ratios):
        part = rows[rows["ratio"] == ratio].set_index("model").reindex(models)
        bars = ax.bar(np.arange(len(models)) + j * width, part["value"], width, label=RATIO_LABELS.get(ratio, ratio))
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(np.arange(len(models)) + width * (len(ratios) - 1) / 2, models)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="= history (1)")
    ax.margins(y=0.12)
    ax.set_ylabel("mean attribution / mean attribution of the history")
    ax.set_title("Feature-ablation attribution, relative to the history")
    ax.legend(fontsize=7)


def write_attribution_plot(rows: pd.DataFrame, out_dir: Path) -> None:
    """Figs. 2/7: auxiliary-to-interaction attribution ratios per model (columns model, ratio, value)."""
    write_text(out_dir / "attribution.csv", rows.to_csv(index=False))
    with png_figure(out_dir / "attribution.png", figsize=(6.0, 3.8)) as (_, ax):
        draw_attribution(ax, rows)


def draw_top1_groups(ax: Any, rows: pd.DataFrame) -> None:
    """Bars per group, one per recommender, on a 0-1 scale; the test targets' own distribution (what an unbiased
    recommender would match) as a black line across each group."""
    groups = sorted(int(g) for g in rows["group"].unique())
    n = max(groups, default=0)
    models = [m for m in dict.fromkeys(rows["model"]) if m != REFERENCE]
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(groups))
    for j, model in enumerate(models):
        part = rows[rows["model"] == model].set_index("group").reindex(groups)
        ax.bar(x - 0.4 + (j + 0.5) * width, part["share"], width, label=model)
    ref = rows[rows["model"] == REFERENCE].set_index("group").reindex(groups)
    if ref["share"].notna().any():
        ax.hlines(ref["share"], x - 0.45, x + 0.45, colors="black", lw=1.6, label=f"{REFERENCE} (reference)")
    ax.set_xticks(x, [group_label(g, n).replace(" (", "\n(") for g in groups], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"item group ({GROUPS_NOTE})", fontsize=8)
    ax.set_ylabel("share of top-1 recommendations")
    ax.set_title("Top-1 recommendations per item group")
    ax.legend(fontsize=7)


def write_top1_groups_plot(rows: pd.DataFrame, out_dir: Path) -> None:
    """Figs. 3/8: share of top-1 recommendations per relevance group, per model and for the test targets
    (columns model, group, share; group 1 = most relevant to the auxiliary tokens, as the paper numbers them)."""
    write_text(out_dir / "top1_groups.csv", rows.to_csv(index=False))
    with png_figure(out_dir / "top1_groups.png", figsize=(6.4, 4.0)) as (_, ax):
        draw_top1_groups(ax, rows)


def draw_course(fig: Any, axes: Any, rows: pd.DataFrame) -> None:
    """One panel per model, one line per group, all panels on the same 0-1 scale and colours (viridis: G1 dark,
    the least relevant group light), one legend for all saying what the groups are."""
    import matplotlib

    axes = np.atleast_1d(axes)
    models = list(dict.fromkeys(rows["model"])) or ["-"]
    groups = sorted(int(g) for g in rows["group"].unique())
    n = max(groups, default=0)
    cmap = matplotlib.colormaps["viridis"]
    colours = {g: cmap(0.9 * i / max(len(groups) - 1, 1)) for i, g in enumerate(groups)}
    for a, model in zip(axes, models, strict=True):
        part = rows[rows["model"] == model]
        for g in groups:
            line = part[part["group"] == g].sort_values("step")
            a.plot(line["step"], line["share"], marker="o", ms=3, color=colours[g], label=group_label(g, n))
        a.set_title(model)
        a.set_xlabel("training step")
        a.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("share of top-1 recommendations")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        title = "item group\n(equal-size groups by Eq. 2\nrelevance to the auxiliary tokens)"
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, title=title)
        fig.legends[-1].get_title().set_fontsize(7)
    fig.suptitle("Top-1 share per item group during training")


def write_course_plot(rows: pd.DataFrame, out_dir: Path) -> None:
    """Figs. 4/9: share of top-1 recommendations per relevance group over training (columns model, step, group,
    share)."""
    write_text(out_dir / "course.csv", rows.to_csv(index=False))
    models = list(dict.fromkeys(rows["model"])) or ["-"]
    with png_figure(out_dir / "course.png", figsize=(3.0 * len(models) + 1.0, 3.3), ncols=len(models)) as (fig, axes):
        draw_course(fig, axes, rows)
