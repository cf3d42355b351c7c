"""The long tail of item popularity that exposure bias creates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lure.io import write_text
from lure.plots.base import png_figure


def popularity_curve(items: pd.DataFrame) -> pd.DataFrame:
    """Items ranked by interaction count."""
    counts = items["popularity"].sort_values(ascending=False).to_numpy()
    return pd.DataFrame({"rank": range(1, len(counts) + 1), "interactions": counts})


def write_popularity_plot(items_parquet: Path, out_dir: Path) -> None:
    curve = popularity_curve(pd.read_parquet(items_parquet, columns=["popularity"]))
    write_text(out_dir / "popularity.csv", curve.to_csv(index=False))
    with png_figure(out_dir / "popularity.png") as (_, ax):
        ax.plot(curve["rank"], curve["interactions"].clip(lower=0.5))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("item rank")
        ax.set_ylabel("interactions")
        ax.set_title("Popularity long tail")
