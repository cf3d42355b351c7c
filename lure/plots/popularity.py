"""The long tail of item popularity that exposure bias creates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def popularity_curve(items: pd.DataFrame) -> pd.DataFrame:
    """Items ranked by interaction count."""
    counts = items["popularity"].sort_values(ascending=False).to_numpy()
    return pd.DataFrame({"rank": range(1, len(counts) + 1), "interactions": counts})


def draw_popularity(ax: Any, curve: pd.DataFrame) -> None:
    """Interactions against rank on log-log axes. Items without interactions have no place on a log axis; they are
    left out and counted in the legend rather than drawn at a made-up floor."""
    drawn = curve[curve["interactions"] > 0]
    unseen = len(curve) - len(drawn)
    label = f"{len(drawn)} items" + (f" ({unseen} more with no interaction, not drawn)" if unseen else "")
    ax.plot(drawn["rank"], drawn["interactions"], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("item rank (log)")
    ax.set_ylabel("interactions (log)")
    ax.set_title("Popularity long tail")
    ax.legend(fontsize=7)


def write_popularity_plot(items_parquet: Path, out_dir: Path) -> None:
    curve = popularity_curve(pd.read_parquet(items_parquet, columns=["popularity"]))
    write_text(out_dir / "popularity.csv", curve.to_csv(index=False))
    with png_figure(out_dir / "popularity.png") as (_, ax):
        draw_popularity(ax, curve)
