"""Plots a person would rather look at than a table: each as a CSV for ``dvc plots`` and a PNG next to it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lure.io import write_text, write_with


def popularity_curve(items: pd.DataFrame) -> pd.DataFrame:
    """Items ranked by interaction count: the long tail that exposure bias creates."""
    counts = items["popularity"].sort_values(ascending=False).to_numpy()
    return pd.DataFrame({"rank": range(1, len(counts) + 1), "interactions": counts})


def write_popularity_plot(items_parquet: Path, out_dir: Path) -> None:
    curve = popularity_curve(pd.read_parquet(items_parquet, columns=["popularity"]))
    write_text(out_dir / "popularity.csv", curve.to_csv(index=False))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.plot(curve["rank"], curve["interactions"].clip(lower=0.5))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("item rank")
    ax.set_ylabel("interactions")
    ax.set_title("Popularity long tail")
    fig.tight_layout()
    write_with(out_dir / "popularity.png", lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
