"""Offline ranking metrics (Recall@K, NDCG@K) with naive, IPS and SNIPS estimates, truth and MAR targets.

Definitions (``docs/evaluation.md``). For user u: T_u = held-out positives (observed), L_u = the model's top-K
list (train items excluded), c_K(i) = 1[rank(i) <= K], pi_i = propensity of (u, i), w_i = 1 / pi_i,
D(r) = 1 / log2(r + 1) the discount of rank r, IDCG(m) = sum_{r<=m} D(r).

* naive   Recall_u = sum_{T_u} c_K(i) / |T_u|            NDCG_u = sum_{T_u} c_K(i) D(rank_i) / IDCG(min(|T_u|, K))
* IPS     v_i = w_i / mean_{(v,j) in T} w_j  (one normaliser over all test pairs of all users)
          Recall_u = sum_{T_u} c_K v_i / |T_u|            NDCG_u = sum_{T_u} c_K v_i D(rank_i) / IDCG(min(|T_u|, K))
* SNIPS   Recall_u = sum_{T_u} c_K w_i / sum_{T_u} w_i
          NDCG_u = |T_u| * [sum_{T_u} c_K w_i D(rank_i) / sum_{T_u} w_i] / IDCG(min(|T_u|, K))
* truth   p_i = r(u,i) / sum_{C_u} r(u,j)  (C_u = items not in u's train): where u's positives would fall under
          uniform exposure.   Recall_u = sum_{L_u, rank<=K} p_i
          NDCG_u = sum_{L_u, rank<=K} min(1, |T_u| p_i) D(rank) / IDCG(min(|T_u|, K))
          (the expected NDCG of a held-out set of u's size |T_u| drawn under uniform exposure: NDCG's normaliser
          depends on the size of the positive set, so the truth is taken at the size the estimators see)
* MAR     naive with T_u = clicked items of the missing-at-random log that are not in u's train.

Each function returns the per-user values; the evaluation of the zoo (means over users, bootstrap CIs, paired
comparisons, the bias summary) is :mod:`lure.evaluation`, the rank metrics' building blocks (c_K, D, IDCG)
:mod:`lure.metrics.ranking`. All functions work on flat arrays of (user code, rank, weight) with ``np.bincount``;
there is no Python loop over users or items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lure.metrics.ranking import discount, idcg, in_top_k

# --------------------------------------------------------------------------------------------- building blocks


def _per_user_sum(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(group, weights=values, minlength=n).astype(np.float64)


def _check_groups(group: np.ndarray, n: int) -> np.ndarray:
    group = np.asarray(group, dtype=np.int64)
    counts = np.bincount(group, minlength=n)
    if len(counts) != n or (counts == 0).any():
        raise ValueError("every user code 0..n-1 must have at least one positive")
    return counts


# ----------------------------------------------------------------------------------------------- estimators
# Each takes the test pairs as flat arrays: group (user code 0..n-1; every code present), ranks (rank of the
# pair's item in the user's top-K list, inf if absent), and returns per-user (recall, ndcg) arrays of length n.


def naive(group: np.ndarray, ranks: np.ndarray, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Naive estimate on the observed held-out positives."""
    size = _check_groups(group, n)
    hit = in_top_k(ranks, k)
    # Recall@K_u = sum_{i in T_u} c_K(i) / |T_u|
    recall = _per_user_sum(group, hit.astype(np.float64), n) / size
    # NDCG@K_u = sum_{i in T_u, rank<=K} 1/log2(rank+1) / IDCG(min(|T_u|, K))
    ndcg = _per_user_sum(group, np.where(hit, discount(ranks), 0.0), n) / idcg(np.minimum(size, k))
    return recall, ndcg


def ips(group: np.ndarray, ranks: np.ndarray, n: int, k: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IPS with one global normaliser: weights scaled to mean 1 over all the pairs given (all test pairs)."""
    size = _check_groups(group, n)
    w = _weights(weights)
    # v_i = w_i / mean_{(v,j) in T} w_j
    v = w / w.mean()
    hit = in_top_k(ranks, k)
    # Recall_u = sum_{T_u} c_K(i) v_i / |T_u|
    recall = _per_user_sum(group, np.where(hit, v, 0.0), n) / size
    # NDCG_u = sum_{T_u, rank<=K} v_i / log2(rank+1) / IDCG(min(|T_u|, K))
    ndcg = _per_user_sum(group, np.where(hit, v * discount(ranks), 0.0), n) / idcg(np.minimum(size, k))
    return recall, ndcg


def snips(group: np.ndarray, ranks: np.ndarray, n: int, k: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Self-normalised IPS per user (with one positive per user it equals the naive estimate)."""
    _check_groups(group, n)
    group = np.asarray(group, dtype=np.int64)
    w = _weights(weights)
    hit = in_top_k(ranks, k)
    # Recall_u = sum_{T_u} c_K(i) w_i / sum_{T_u} w_i
    total_w = _per_user_sum(group, w, n)
    recall = _per_user_sum(group, np.where(hit, w, 0.0), n) / total_w
    # NDCG_u = |T_u| * sum_{T_u, rank<=K} w_i D(rank_i) / sum_{T_u} w_i / IDCG(min(|T_u|, K))
    #          (the self-normalised estimate of the truth's expected DCG at the held-out size |T_u|)
    size = np.bincount(group, minlength=n)
    dcg = _per_user_sum(group, np.where(hit, w * discount(ranks), 0.0), n) / total_w
    ndcg = size * dcg / idcg(np.minimum(size, k))
    return recall, ndcg


def truth(
    list_group: np.ndarray,
    list_ranks: np.ndarray,
    list_relevance: np.ndarray,
    n: int,
    k: int,
    total_relevance: np.ndarray,
    test_size: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected metric under uniform exposure and the true relevance (world only).

    Inputs are the rows of the top-K lists (user code, rank, r(u, i)); ``total_relevance[u]`` = sum_{C_u} r
    (:func:`truth_relevance_mass`); ``test_size[u]`` = |T_u|, the size of u's held-out positive set.
    """
    hit = in_top_k(list_ranks, k)
    group = np.asarray(list_group, dtype=np.int64)
    # p_i = r(u,i) / sum_{j in C_u} r(u,j)
    p = np.asarray(list_relevance, dtype=np.float64) / total_relevance[group]
    # Recall_u = sum_{i in L_u, rank<=K} p_i
    recall = _per_user_sum(group, np.where(hit, p, 0.0), n)
    # NDCG_u = sum_{i in L_u, rank<=K} min(1, |T_u| p_i) D(rank) / IDCG(min(|T_u|, K))
    size = np.asarray(test_size, dtype=np.int64)
    incl = np.minimum(1.0, size[group] * p)
    ndcg = _per_user_sum(group, np.where(hit, incl * discount(list_ranks), 0.0), n) / idcg(np.minimum(size, k))
    return recall, ndcg


def truth_relevance_mass(
    relevance: np.ndarray, users: np.ndarray, train: pd.DataFrame, batch_cells: int = 4_000_000
) -> np.ndarray:
    """For each user, sum_{C_u} r(u, i): the relevance mass over the candidates (items not in u's train).

    Batched over users (about ``batch_cells`` relevance cells at a time) so the dense matrix is never copied whole.
    """
    from lure.models.zoo import interaction_matrix

    users = np.asarray(users, dtype=np.int64)
    n_items = relevance.shape[1]
    seen = interaction_matrix(train, relevance.shape[0], n_items)
    total = np.empty(len(users))
    batch = max(1, batch_cells // max(n_items, 1))
    for start in range(0, len(users), batch):
        ub = users[start : start + batch]
        r = np.array(relevance[ub], dtype=np.float64)
        tr = seen[ub]
        r[np.repeat(np.arange(len(ub)), np.diff(tr.indptr)), tr.indices] = 0.0  # C_u: drop train items
        total[start : start + len(ub)] = r.sum(axis=1)
    return total


def mar_positives(mar: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Clicked (user_id, item_id) pairs of the missing-at-random log that are not in the user's train items."""
    clicked = mar.loc[mar["clicked"].to_numpy(dtype=bool), ["user_id", "item_id"]].drop_duplicates()
    seen = train[["user_id", "item_id"]].drop_duplicates()
    merged = clicked.merge(seen, on=["user_id", "item_id"], how="left", indicator=True)
    return merged.loc[merged["_merge"] == "left_only", ["user_id", "item_id"]].reset_index(drop=True)


def _weights(weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all() or (w <= 0).any():
        raise ValueError("IPS weights must be positive and finite (propensities in (0, 1])")
    return w


def inverse_propensity_weights(propensity: np.ndarray) -> np.ndarray:
    """w_i = 1 / pi_i, checked positive and finite (propensities in (0, 1])."""
    return _weights(1.0 / np.asarray(propensity, dtype=np.float64))
