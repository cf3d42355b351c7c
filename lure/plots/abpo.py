"""ABPO's per-round chart: each method's true CTR, accuracy and exposure bias after every round (round 0 = the SFT
recommender every method starts from)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def rounds_frame(
    round_0: Mapping[str, Any], rounds: Mapping[str, Sequence[Mapping[str, Any]]], metrics: Sequence[str]
) -> pd.DataFrame:
    """Long format: one row per (metric, method, round) with its value; round 0 (shared) repeated per method."""
    rows = []
    for method, per_round in rounds.items():
        for r, values in enumerate([round_0, *per_round]):
            rows += [
                {"metric": m, "method": method, "round": r, "value": values.get(m)} for m in metrics if m in values
            ]
    return pd.DataFrame(rows, columns=["metric", "method", "round", "value"])


def write_rounds_plot(frame: pd.DataFrame, out_dir: Path) -> None:
    """``rounds.csv`` and ``rounds.png`` (one panel per metric, one line per method) in ``out_dir``."""
    write_text(out_dir / "rounds.csv", frame.to_csv(index=False))
    metrics = list(dict.fromkeys(frame["metric"]))
    with png_figure(out_dir / "rounds.png", figsize=(3.0 * len(metrics), 2.8), ncols=len(metrics)) as (_, axes):
        for ax, metric in zip(list(axes) if len(metrics) > 1 else [axes], metrics, strict=True):
            part = frame[frame["metric"] == metric]
            for method, line in part.groupby("method", sort=False):
                ax.plot(line["round"], line["value"].astype(float), marker="o", label=str(method))
            ax.set_xticks(sorted(part["round"].unique()))
            ax.set_xlabel("round", fontsize=8)
            ax.set_title(metric, fontsize=9)
        (list(axes) if len(metrics) > 1 else [axes])[0].legend(fontsize=7)
