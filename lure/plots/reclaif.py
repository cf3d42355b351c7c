"""RecLAIF's Figure 3: each metric of the recommender after SFT and after every DPO iteration, with intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def model_label(model: str) -> str:
    """The paper's names: 'SFT', 'DPO-Iter1', ..."""
    return "SFT" if model == "sft" else model.replace("dpo-", "DPO-Iter")


def iterations_frame(summary: Mapping[str, Any], models: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Long format: one row per (metric, step) with mean, ci_low, ci_high; step 0 = ``models[0]`` (SFT)."""
    rows = []
    for metric in metrics:
        for step, model in enumerate(models):
            value = summary[model][metric]
            rows.append({"metric": metric, "step": step, "model": model, **value})
    return pd.DataFrame(rows, columns=["metric", "step", "model", "mean", "ci_low", "ci_high"])


def write_iterations_plot(frame: pd.DataFrame, out_dir: Path) -> None:
    """``iterations.csv`` and ``iterations.png`` (one panel per metric) in ``out_dir``."""
    write_text(out_dir / "iterations.csv", frame.to_csv(index=False))
    metrics = list(dict.fromkeys(frame["metric"]))
    with png_figure(out_dir / "iterations.png", figsize=(3.0 * len(metrics), 2.8), ncols=len(metrics)) as (_, axes):
        for ax, metric in zip(list(axes) if len(metrics) > 1 else [axes], metrics, strict=True):
            part = frame[frame["metric"] == metric]
            mean = part["mean"].astype(float)
            low = (mean - part["ci_low"].astype(float)).fillna(0).clip(lower=0)
            high = (part["ci_high"].astype(float) - mean).fillna(0).clip(lower=0)
            ax.errorbar(part["step"], mean, yerr=[low, high], marker="o", capsize=3)
            ax.set_xticks(list(part["step"]), [model_label(m) for m in part["model"]], fontsize=7)
            ax.set_title(metric, fontsize=9)
