"""What a synthetic log is worth (issue 15, point 3): volume, acceptance, where its exposure went and how plausible
its transitions are.

* accept ratio = accepted steps / attempted steps (users x T), LURE §4.3's "accept ratio";
* tail ratio, ours = share of synthetic rows on items of our popularity bins >= ``tail_from`` (the least popular
  40 % of items under 5 bins); the paper's = share on items of its bins >= 3, its bins counting up to the most
  popular (the most popular 40 % of the items with an interaction): LURE §4.3's "tail ratio 0.607 (pop_bin >= 3)"
  is that share;
* KL(achieved || target) over our bins: sum_b p_b log(p_b / q_b), p the synthetic rows' bin shares, q the preset's
  target (0 log 0 = 0; infinite when a bin with rows has q_b = 0);
* constraint shares: accepted steps by the constraint that accepted them;
* implausible share: synthetic transitions (previous item -> synthetic item) whose primary-genre pair never occurs
  among the real consecutive interactions;
* constraint violation share: synthetic transitions the acceptance rule refuses (T < transition_min and S < delta,
  or the same item): 0 with the constraints on, what they filter with them off (the ablation).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lure.exposynth.constraints import REASONS


def tail_from(n_bins: int) -> int:
    """First bin of the tail under both definitions: the last 40 % of bins (3 of 5; the public code's threshold)."""
    return n_bins - max(1, round(0.4 * n_bins))


def bin_distribution(items: np.ndarray, pop_bin: np.ndarray, n_bins: int) -> np.ndarray:
    """Share of the rows ``items`` in each of our popularity bins (zeros without rows)."""
    counts = np.bincount(np.asarray(pop_bin)[np.asarray(items, dtype=np.int64)], minlength=n_bins).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats (0 log 0 = 0; inf where p_b > 0 = q_b)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if (p[q == 0] > 0).any():
        return math.inf
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def tail_ratios(items: np.ndarray, pop_bin: np.ndarray, paper_bin: np.ndarray, n_bins: int) -> dict[str, float | None]:
    """Both tail ratios of the rows ``items`` (None without rows): ours on ``pop_bin`` (0 = head), the paper's on
    its own bins ``paper_bin`` (n_bins - 1 = head; :func:`lure.exposynth.presets.paper_bins`)."""
    if not len(items):
        return {"tail_ratio": None, "tail_ratio_paper": None}
    rows = np.asarray(items, dtype=np.int64)
    start = tail_from(n_bins)
    return {
        "tail_ratio": float(np.mean(np.asarray(pop_bin)[rows] >= start)),
        "tail_ratio_paper": float(np.mean(np.asarray(paper_bin)[rows] >= start)),
    }


def constraint_shares(constraint: pd.Series) -> dict[str, float]:
    """Share of accepted steps per constraint (every reason listed, 0 included)."""
    counts = constraint.value_counts()
    total = int(counts.sum())
    return {r: (float(counts.get(r, 0)) / total if total else 0.0) for r in REASONS}


def previous_items(train: pd.DataFrame, synthetic: pd.DataFrame, advancing: bool) -> np.ndarray:
    """The item each synthetic row follows: the user's previous synthetic row when the previous item advances (its
    last real item for the first), else always the last real item."""
    last_real = train.sort_values(["user_id", "timestamp"], kind="stable").groupby("user_id")["item_id"].last()
    first = last_real.reindex(synthetic["user_id"]).to_numpy(dtype=np.int64)
    if not advancing:
        return first
    prev = synthetic.groupby("user_id")["item_id"].shift(1)
    return np.where(prev.isna().to_numpy(), first, prev.fillna(-1).to_numpy(dtype=np.int64))
