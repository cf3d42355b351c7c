"""Shared plumbing: a headless matplotlib figure saved atomically as PNG."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lure.io import write_with


@contextmanager
def png_figure(path: Path, figsize: tuple[float, float] = (5, 3.2)) -> Iterator[Any]:
    """Yield (fig, ax); on exit lay the figure out and write it to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, dpi=110)
    try:
        yield fig, ax
        fig.tight_layout()
        write_with(path, lambda p: fig.savefig(p, format="png"))
    finally:
        plt.close(fig)
