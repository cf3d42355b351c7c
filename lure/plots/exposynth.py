"""ExpoSynth's exposure per popularity bin: the preset's target, what the synthetic log achieved, and the real log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lure.io import write_text
from lure.plots.base import grouped_bars, png_figure

#: The series of the exposure chart, in drawing order.
SERIES = ("target", "achieved", "real")


def exposure_frame(target: np.ndarray, achieved: np.ndarray, real: np.ndarray) -> pd.DataFrame:
    """Long format: one row per (popularity bin, series) with its share."""
    n = len(target)
    values = {"target": target, "achieved": achieved, "real": real}
    return pd.DataFrame([{"pop_bin": b, "series": s, "share": float(values[s][b])} for b in range(n) for s in SERIES])


def draw_exposure(ax: Any, frame: pd.DataFrame) -> None:
    """Grouped bars: one group per bin, one bar per series."""
    grouped_bars(ax, frame, "pop_bin", "series", "share")
    ax.set_xlabel("popularity bin (0 = most popular)")
    ax.set_ylabel("share of interactions")
    ax.set_title("ExpoSynth exposure: target vs achieved (synthetic) vs real")
    ax.legend(fontsize=7)


def write_exposure_plot(frame: pd.DataFrame, out_dir: Path) -> None:
    """``exposure.csv`` and ``exposure.png`` in ``out_dir``."""
    write_text(out_dir / "exposure.csv", frame.to_csv(index=False))
    with png_figure(out_dir / "exposure.png", figsize=(6, 3.4)) as (_, ax):
        draw_exposure(ax, frame)
