"""Next-title evaluation metrics by exact title match: HR@K, NDCG@K (accuracy) and MGU@K, DGU@K (GDRT fairness).

Accuracy: one target title per sample; a recommendation counts only if its title string equals the target
(callers normalise titles — quotes, whitespace — before calling, the same way on both sides).

Fairness (GDRT §4.1.4, after IFairLRS [24]): items are split into G = 5 equal-size groups by their relevance to the
auxiliary tokens (Eq. 2, group 0 = most relevant = the paper's "Group 1"); for each group g,

    GU(g) = share of group-g items among the top-K recommendations − share of group-g items in the histories

and MGU@K = (1/G) Σ_g |GU(g)|, DGU@K = max_g GU(g) − min_g GU(g). See ``group_unfairness`` for the readings chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

__all__ = [
    "dgu_at_k",
    "group_unfairness",
    "hit_at_k",
    "item_groups_by_relevance",
    "mgu_at_k",
    "mgu_dgu_at_k",
    "ndcg_at_k",
    "target_ranks",
]


# -------------------------------------------------------------------------------------------------------- accuracy
def target_ranks(ranked: Sequence[Sequence[str]], targets: Sequence[str]) -> np.ndarray:
    """1-based rank of each target in its ranked list (first exact match), ``np.inf`` when absent.

    Computed once and shared by HR/NDCG so both metrics always agree on what counts as a hit.
    """
    if len(ranked) != len(targets):
        raise ValueError(f"{len(ranked)} ranked lists for {len(targets)} targets")
    out = np.full(len(targets), np.inf)
    for i, (titles, target) in enumerate(zip(ranked, targets, strict=True)):
        for r, title in enumerate(titles, start=1):
            if title == target:
                out[i] = r
                break
    return out


def hit_at_k(ranked: Sequence[Sequence[str]], targets: Sequence[str], k: int) -> float:
    """HR@K: fraction of samples whose target title appears in the top K (one target per sample)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    ranks = target_ranks(ranked, targets)
    return float(np.mean(ranks <= k)) if ranks.size else float("nan")


def ndcg_at_k(ranked: Sequence[Sequence[str]], targets: Sequence[str], k: int) -> float:
    """NDCG@K with a single relevant item: 1/log2(rank+1) if rank ≤ K else 0 (the ideal DCG is 1), averaged."""
    if k < 1:
        raise ValueError("k must be >= 1")
    ranks = target_ranks(ranked, targets)
    if not ranks.size:
        return float("nan")
    gains = np.where(ranks <= k, 1.0 / np.log2(np.minimum(ranks, k) + 1.0), 0.0)
    return float(np.mean(gains))


# -------------------------------------------------------------------------------------------------------- fairness
def item_groups_by_relevance(
    titles: Sequence[str], relevance: np.ndarray | Sequence[float], n_groups: int = 5
) -> dict[str, int]:
    """Title → group id, items "sorted and evenly divided" by Eq. 2 relevance (§2.2.2, reused by §4.1.4).

    Group 0 holds the highest-relevance items (the paper's Group 1). Even division = equal counts by rank
    (group = rank·G // n, so sizes differ by at most one); ties are broken by input order (stable sort).
    """
    r = np.asarray(relevance, dtype=np.float64).reshape(-1)
    if len(titles) != r.size:
        raise ValueError(f"{len(titles)} titles but {r.size} relevance scores")
    if not np.all(np.isfinite(r)):
        raise ValueError("relevance scores must be finite")
    if len(set(titles)) != len(titles):
        raise ValueError("titles must be unique (exact-match metrics cannot tell duplicates apart)")
    if not 1 <= n_groups <= max(r.size, 1):
        raise ValueError(f"cannot split {r.size} items into {n_groups} groups")
    order = np.argsort(-r, kind="stable")
    groups = np.empty(r.size, dtype=np.int64)
    groups[order] = np.arange(r.size) * n_groups // r.size
    return {t: int(g) for t, g in zip(titles, groups, strict=True)}


def _group_counts(
    lists: Sequence[Sequence[str]],
    item_group: Mapping[str, int],
    n_groups: int,
    unknown: Literal["raise", "skip"],
) -> np.ndarray:
    """``(n_lists, G)`` counts of each group per list; unknown titles raise or are dropped from the denominator."""
    counts = np.zeros((len(lists), n_groups))
    for i, titles in enumerate(lists):
        for t in titles:
            g = item_group.get(t)
            if g is None:
                if unknown == "raise":
                    raise KeyError(f"title not in the item-group map: {t!r}")
                continue
            counts[i, g] += 1
    return counts


def group_unfairness(
    ranked: Sequence[Sequence[str]],
    histories: Sequence[Sequence[str]],
    item_group: Mapping[str, int],
    k: int,
    n_groups: int = 5,
    average: Literal["pooled", "user"] = "pooled",
    unknown: Literal["raise", "skip"] = "raise",
) -> np.ndarray:
    """Signed per-group discrepancy GU(g) = rec share − history share (§4.1.4), shape ``(G,)``.

    Readings (the paper gives these metrics in words only and cites IFairLRS [24] for them):

    * ``average="pooled"`` (default, IFairLRS's group-level definition): shares over *all* users' top-K items and
      *all* users' history items taken together. Item-side fairness is an exposure property of the system, and
      per-user shares over ~10-item histories are very noisy. ``"user"`` computes both shares per user and averages
      the per-user GU vectors (users with an empty top-K or history are skipped).
    * The discrepancy is **signed**; MGU takes its absolute value (otherwise the mean of signed shares would be 0
      by construction), DGU takes max − min of the signed values (the spread between the most over- and most
      under-recommended group).
    * Top-K = the first K titles of each ranked list (fewer if the list is shorter); every history item counts,
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
        return rs / rs.sum() - hs / hs.sum()
    if average == "user":
        rn, hn = rec.sum(1, keepdims=True), hist.sum(1, keepdims=True)
        ok = (rn[:, 0] > 0) & (hn[:, 0] > 0)
        if not ok.any():
            raise ValueError("no user has both recommended and history items")
        return (rec[ok] / rn[ok] - hist[ok] / hn[ok]).mean(0)
    raise ValueError(f"unknown average {average!r}")


def mgu_at_k(gu: np.ndarray) -> float:
    """MGU@K = (1/G) Σ_g |GU(g)| (§4.1.4: "the average of these discrepancies", in absolute value)."""
    return float(np.mean(np.abs(gu)))


def dgu_at_k(gu: np.ndarray) -> float:
    """DGU@K = max_g GU(g) − min_g GU(g) (§4.1.4: "the gap between the maximum and minimum discrepancies")."""
    return float(np.max(gu) - np.min(gu))


def mgu_dgu_at_k(
    ranked: Sequence[Sequence[str]],
    histories: Sequence[Sequence[str]],
    item_titles: Sequence[str],
    item_relevance: np.ndarray | Sequence[float],
    k: int,
    n_groups: int = 5,
    average: Literal["pooled", "user"] = "pooled",
    unknown: Literal["raise", "skip"] = "raise",
) -> tuple[float, float]:
    """(MGU@K, DGU@K) from ranked title lists, user histories and per-item Eq. 2 relevance scores.

    ``item_relevance[j]`` is r(item_titles[j]) = mean token log-prob of the title given the prompt with the user
    history masked as 'N/A' (Eq. 2). The paper does not say which model scores Eq. 2 for the metric; use one fixed
    scorer for every method compared (e.g. the SFT model, as in Fig. 3), so all methods share the same item groups.
    """
    groups = item_groups_by_relevance(item_titles, item_relevance, n_groups)
    gu = group_unfairness(ranked, histories, groups, k, n_groups, average=average, unknown=unknown)
    return mgu_at_k(gu), dgu_at_k(gu)
