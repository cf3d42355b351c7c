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
