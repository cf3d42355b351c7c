"""Shared plumbing: a headless matplotlib figure saved atomically as PNG."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lure.io import write_with


@contextmanager
def png_figure(path: Path, figsize: tuple[float, float] = (5, 3.2), ncols: int = 1) -> Iterator[Any]:
    """Yield (fig, ax) (``ax`` an array of ``ncols`` axes when ncols > 1); on exit lay out and write ``path``
    atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, ncols, figsize=figsize, dpi=110)
    if ncols > 1:
        ax = ax.reshape(-1)
    try:
        yield fig, ax
        fig.tight_layout()
        # "tight" keeps what lies outside the axes grid (a legend beside the panels) inside the image
        write_with(path, lambda p: fig.savefig(p, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)


def grouped_bars(
    ax: Any,
    frame: Any,
    group: str,
    series: str,
    value: str,
    low: str | None = None,
    high: str | None = None,
) -> list[Any]:
    """Bars of ``value`` side by side: one group per distinct ``group`` (in order of appearance), one bar per
    ``series`` within it, an error bar from ``low`` to ``high`` where given (and not all NaN). Returns the groups."""
    import numpy as np

    groups = list(dict.fromkeys(frame[group]))
    names = list(dict.fromkeys(frame[series]))
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        rows = frame[frame[series] == name].set_index(group).reindex(groups)
        x = np.arange(len(groups)) + (k - (len(names) - 1) / 2) * width
        heights = rows[value].to_numpy(np.float64)
        err = None
        if low is not None and high is not None:
            below = heights - rows[low].to_numpy(np.float64)
            above = rows[high].to_numpy(np.float64) - heights
            err = None if np.isnan(below).all() else np.vstack([below, above])
        ax.bar(x, heights, width, yerr=err, capsize=2 if err is not None else 0, label=name)
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups], fontsize=7)
    return groups
