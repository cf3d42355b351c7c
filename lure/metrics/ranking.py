"""Ranking metrics (HIT@K, Recall@K, NDCG@K) and their building blocks, one implementation each.

For an item at 1-based rank r of a ranked list (r = inf when the item is not in the list) and a cut-off K:

* c_K(r) = 1[r <= K]                      the hit indicator (:func:`in_top_k`)
* D(r) = 1 / log2(r + 1)                  the DCG discount, 0 for an absent item (:func:`discount`)
* IDCG(m) = sum_{r=1..m} D(r)             the ideal DCG of m relevant items (:func:`idcg`)

With one relevant item per row (the window protocol, GDRT §4.1.3): HIT@K = c_K(r) and NDCG@K = c_K(r) D(r), since
IDCG(1) = 1 (:func:`hit_at_k`, :func:`ndcg_at_k`). With a set T_u of relevant items per user (the offline
evaluation): Recall@K = sum_{T_u} c_K / |T_u| and NDCG@K = sum_{T_u} c_K D / IDCG(min(|T_u|, K)), in
:mod:`lure.estimators` with their naive / IPS / SNIPS / truth weightings. Ranks come from :func:`target_ranks` (a
ranked array and one target per row) or :func:`list_ranks` (top-K lists as a frame and (user, item) queries).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def discount(ranks: np.ndarray) -> np.ndarray:
    """D(r) = 1 / log2(r + 1); 0 where r is inf (item not in the list)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = np.zeros_like(ranks)
    finite = np.isfinite(ranks)
    out[finite] = 1.0 / np.log2(ranks[finite] + 1.0)
    return out


def idcg(m: np.ndarray) -> np.ndarray:
    """IDCG(m) = sum_{r=1..m} D(r) for integer m >= 0 (elementwise)."""
    m = np.asarray(m, dtype=np.int64)
    table = np.r_[0.0, np.cumsum(discount(np.arange(1, max(int(m.max(initial=0)), 0) + 1)))]
    return table[m]


def in_top_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """c_K(r) = 1[r <= K] as booleans (False for an absent item, rank inf)."""
    return np.asarray(ranks) <= k


def hit_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-row HIT@K of one target per row: 1.0 if its rank is <= K, else 0.0."""
    return in_top_k(ranks, k).astype(np.float64)


def ndcg_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-row NDCG@K of one target per row: D(rank) within K, else 0 (the ideal DCG of one item is 1)."""
    return np.where(in_top_k(ranks, k), discount(ranks), 0.0)


def target_ranks(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target in that row of ``ranked`` (first match), ``np.inf`` when absent.

    ``ranked`` is an (n, L) array (item ids, padded with ids that match no target, e.g. -1); ``targets`` has n
    entries. Computed once and shared by HIT and NDCG so both metrics always agree on what counts as a hit.
    """
    ranked = np.asarray(ranked)
    targets = np.asarray(targets)
    if ranked.ndim != 2 or len(ranked) != len(targets):
        raise ValueError(f"ranked must be (n, L) for {len(targets)} targets, got shape {ranked.shape}")
    if ranked.shape[1] == 0:
        return np.full(len(targets), np.inf)
    match = ranked == targets[:, None]
    return np.where(match.any(axis=1), match.argmax(axis=1) + 1.0, np.inf)


def list_ranks(topk: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Rank of each (user, item) in the top-K frame (user_id, rank, item_id); inf where the item is not listed."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    tu = topk["user_id"].to_numpy(dtype=np.int64)
    ti = topk["item_id"].to_numpy(dtype=np.int64)
    base = int(max(ti.max(initial=0), items.max(initial=0))) + 1
    keys = tu * base + ti
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    query = users * base + items
    pos = np.searchsorted(sorted_keys, query)
    pos_c = np.minimum(pos, max(len(keys) - 1, 0))
    found = (pos < len(keys)) & (sorted_keys[pos_c] == query) if len(keys) else np.zeros(len(query), bool)
    ranks = np.full(len(query), np.inf)
    ranks[found] = topk["rank"].to_numpy(dtype=np.float64)[order[pos_c[found]]]
    return ranks
