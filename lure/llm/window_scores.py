"""Scores of a zoo model fitted on the window protocol (``lure.llm.data.fit_window_model``) for a set of windows:
the one rule every consumer uses (the window evaluation, RecLAIF's baselines, ABPO's zoo prior)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def window_scores(model: Any, windows: pd.DataFrame) -> np.ndarray:
    """(windows, items) scores: a sequential model reads each window's own history, any other its user."""
    if hasattr(model, "score_histories"):
        return np.asarray(model.score_histories([np.asarray(h, dtype=np.int64) for h in windows["history"]]))
    return np.asarray(model.score(windows["user_id"].to_numpy()))
