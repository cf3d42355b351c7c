"""Item-side fairness of recommendations: GDRT's MGU@K and DGU@K over relevance groups, one implementation.

GDRT §4.1.4 (after IFairLRS [24]): items are split into G equal-size groups by their relevance to the auxiliary
tokens (Eq. 2, group 0 = most relevant = the paper's "Group 1"); for each group g,

    GU(g) = share of group-g items among the top-K recommendations − share of group-g items in the histories

and MGU@K = (1/G) Σ_g |GU(g)|, DGU@K = max_g GU(g) − min_g GU(g). See :func:`group_unfairness` for the readings
chosen where the paper gives the metrics in words only. Items are any hashable keys (item ids in the pipeline).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np


def item_groups_by_relevance(
    items: Sequence[Hashable], relevance: np.ndarray | Sequence[float], n_groups: int
) -> dict[Hashable, int]:
    """Item → group id, items "sorted and evenly divided" by Eq. 2 relevance (§2.2.2, reused by §4.1.4).

    Group 0 holds the highest-relevance items (the paper's Group 1). Even division = equal counts by rank
    (group = rank·G // n, so sizes differ by at most one); ties are broken by input order (stable sort).
    """
    r = np.asarray(relevance, dtype=np.float64).reshape(-1)
    if len(items) != r.size:
        raise ValueError(f"{len(items)} items but {r.size} relevance scores")
    if not np.all(np.isfinite(r)):
        raise ValueError("relevance scores must be finite")
    if len(set(items)) != len(items):
        raise ValueError("items must be unique")
    if not 1 <= n_groups <= max(r.size, 1):
        raise ValueError(f"cannot split {r.size} items into {n_groups} groups")
    order = np.argsort(-r, kind="stable")
    groups = np.empty(r.size, dtype=np.int64)
    groups[order] = np.arange(r.size) * n_groups // r.size  # §2.2.2: sorted, evenly divided
    return {t: int(g) for t, g in zip(items, groups, strict=True)}


def _group_counts(
    lists: Sequence[Sequence[Hashable]],
    item_group: Mapping[Hashable, int],
    n_groups: int,
    unknown: Literal["raise", "skip"],
) -> np.ndarray:
    """``(n_lists, G)`` counts of each group per list; unknown items raise or are dropped from the denominator."""
    counts = np.zeros((len(lists), n_groups))
    for i, items in enumerate(lists):
        for t in items:
            g = item_group.get(t)
            if g is None:
                if unknown == "raise":
                    raise KeyError(f"item not in the item-group map: {t!r}")
                continue
            counts[i, g] += 1
    return counts


def group_unfairness(
    ranked: Sequence[Sequence[Hashable]],
    histories: Sequence[Sequence[Hashable]],
    item_group: Mapping[Hashable, int],
    k: int,
    n_groups: int,
    average: Literal["pooled", "user"],
    unknown: Literal["raise", "skip"] = "raise",
) -> np.ndarray:
    """Signed per-group discrepancy GU(g) = rec share − history share (§4.1.4), shape ``(G,)``.

    Readings (the paper gives these metrics in words only and cites IFairLRS [24] for them):

    * ``average="pooled"`` (IFairLRS's group-level definition): shares over *all* users' top-K items and *all*
      users' history items taken together. Item-side fairness is an exposure property of the system, and per-user
      shares over ~10-item histories are very noisy. ``"user"`` computes both shares per user and averages the
      per-user GU vectors (users with an empty top-K or history are skipped).
    * The discrepancy is **signed**; :func:`mgu` takes its absolute value (otherwise the mean of signed shares would
      be 0 by construction), :func:`dgu` takes max − min of the signed values (the spread between the most over-
      and most under-recommended group).
    * Top-K = the first K items of each ranked list (fewer if the list is shorter); every history item counts,
      with repeats.
    """
    if len(ranked) != len(histories):
        raise ValueError(f"{len(ranked)} ranked lists for {len(histories)} histories")
    if k < 1:
        raise ValueError("k must be >= 1")
    rec = _group_counts([list(r)[:k] for r in ranked], item_group, n_groups, unknown)
    hist = _group_counts(histories, item_group, n_groups, unknown)
    if average == "pooled":
        rs, hs = rec.sum(0), hist.sum(0)
        if rs.sum() == 0 or hs.sum() == 0:
            raise ValueError("no recommended or no history items to compare")
        return rs / rs.sum() - hs / hs.sum()  # §4.1.4: GU(g) over pooled shares
    if average == "user":
        rn, hn = rec.sum(1, keepdims=True), hist.sum(1, keepdims=True)
        ok = (rn[:, 0] > 0) & (hn[:, 0] > 0)
        if not ok.any():
            raise ValueError("no user has both recommended and history items")
        return (rec[ok] / rn[ok] - hist[ok] / hn[ok]).mean(0)  # §4.1.4: GU(g) per user, averaged
    raise ValueError(f"unknown average {average!r}")


def mgu(gu: np.ndarray) -> float:
    """MGU@K = (1/G) Σ_g |GU(g)| (§4.1.4: "the average of these discrepancies", in absolute value)."""
    return float(np.mean(np.abs(gu)))


def dgu(gu: np.ndarray) -> float:
    """DGU@K = max_g GU(g) − min_g GU(g) (§4.1.4: "the gap between the maximum and minimum discrepancies")."""
    return float(np.max(gu) - np.min(gu))


def group_shares(items: Sequence[int], item_group: Mapping[int, int], n_groups: int) -> np.ndarray:
    """Share of each relevance group among ``items`` (GDRT Figs. 3/8: top-1 recommendations vs the test targets);
    negative ids (empty slots of a ranked array) are skipped."""
    counts = np.bincount([item_group[int(i)] for i in items if int(i) >= 0], minlength=n_groups).astype(float)
    return counts / counts.sum() if counts.sum() else counts
