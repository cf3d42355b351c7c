"""Evaluation splits of the canonical interactions (input must be in canonical sequence order).

* Leave-last-out (LOO): per user, the last interaction is the test target, the second-last the validation
  target, the rest is training (the usual protocol of sequential recommenders, SASRec and LLM4Rec papers).
* Sliding window (GDRT's protocol): every interaction with at least one earlier interaction of the same user
  becomes a sample (history = at most ``history_max`` most recent earlier items, target = the interaction);
  samples are split globally by target time, so no sample in a later split is older than one in an earlier
  split (no leakage from the future into training).
* Holdout: per user, the last ``ceil(fraction * n_u)`` interactions are the test set (at least one, and at least
  one stays in training); users with fewer than two interactions are in training only. "Last" is the canonical
  sequence order: chronological where the source has time, a seeded random order where it has none (prepare
  shuffles those sources within each user), so there it is a seeded random per-user split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

WINDOW_COLUMNS = ["user_id", "history", "item_id", "timestamp"]
#: ceil(fraction * n) is taken of (fraction * n - _CEIL_EPS): 0.1 * 30 is 3.0000000000000004 in floating point,
#: and the holdout of 30 interactions at 10 % must be 3, not 4.
_CEIL_EPS = 1e-9


def loo_split(interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, valid, test). A user with one interaction only has a test row; with two, valid + test."""
    from_end = interactions.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    parts = (interactions[from_end >= 2], interactions[from_end == 1], interactions[from_end == 0])
    return tuple(p.reset_index(drop=True) for p in parts)  # type: ignore[return-value]


def window_samples(interactions: pd.DataFrame, history_max: int) -> pd.DataFrame:
    """One row per interaction at sequence position j >= 1: history = items[j - min(j, H) : j] (oldest first).

    ``history`` holds int64 numpy arrays (list<int64> in parquet); ``item_id`` and ``timestamp`` are the
    target's. Rows are in canonical order (user, position). Built with index arithmetic on the flat item
    array (no Python loop), so millions of samples take seconds.
    """
    users = interactions["user_id"].to_numpy()
    items = interactions["item_id"].to_numpy(dtype=np.int64)
    n = len(users)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if n else np.empty(0, np.int64)
    seg_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    pos = np.arange(n) - seg_start  # position of each interaction within its user's sequence
    rows = np.flatnonzero(pos >= 1)
    lengths = np.minimum(pos[rows], history_max)
    offsets = np.r_[0, np.cumsum(lengths)]
    # Values of sample r: items[rows[r] - lengths[r] + 0 ... rows[r] - 1].
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    values = items[np.repeat(rows - lengths, lengths) + within]
    history = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.int64()))
    return pd.DataFrame(
        {
            "user_id": users[rows].astype(np.int64),
            # An object column of int64 arrays: it round-trips through parquet as list<int64> with any reader
            # (an ArrowDtype column stores pandas metadata some pyarrow versions cannot read back).
            "history": history.to_numpy(zero_copy_only=False),
            "item_id": items[rows],
            "timestamp": interactions["timestamp"].to_numpy(dtype=np.int64)[rows],
        }
    )


def window_split(samples: pd.DataFrame, ratios: Sequence[float]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Sort samples by target time (ties: user, then position) and cut at the cumulative ratios.

    Cut points are round(N * r_train) and round(N * (r_train + r_valid)). Each part is returned in canonical
    (user, position) order; max train target time <= min valid target time <= ... holds by construction.
    """
    n = len(samples)
    order = np.lexsort((np.arange(n), samples["user_id"].to_numpy(), samples["timestamp"].to_numpy()))
    cut1 = int(round(n * ratios[0]))
    cut2 = max(cut1, int(round(n * (ratios[0] + ratios[1]))))
    parts = (np.sort(order[:cut1]), np.sort(order[cut1:cut2]), np.sort(order[cut2:]))
    return tuple(samples.iloc[p].reset_index(drop=True) for p in parts)  # type: ignore[return-value]


def holdout_sizes(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Test size per user: ceil(fraction * n), clipped to [1, n - 1]; 0 for users with fewer than 2."""
    n = np.asarray(counts, dtype=np.int64)
    size = np.ceil(fraction * n - _CEIL_EPS).astype(np.int64)
    return np.where(n >= 2, np.clip(size, 1, np.maximum(n - 1, 1)), 0)


def holdout_split(interactions: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): each user's last ``holdout_sizes`` interactions in canonical order go to test.

    Both parts keep the canonical order and the interaction columns.
    """
    users = interactions.groupby("user_id", sort=False)["item_id"]
    counts = users.transform("size").to_numpy()
    from_end = users.cumcount(ascending=False).to_numpy()
    test = from_end < holdout_sizes(counts, fraction)
    return interactions[~test].reset_index(drop=True), interactions[test].reset_index(drop=True)
