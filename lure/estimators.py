"""Offline ranking metrics (Recall@K, DCG@K) with naive, IPS, SNIPS and global-SN estimates, truth and MAR targets.

The estimand (``docs/evaluation.md``, "The estimand"; Yang et al. 2018, "Unbiased offline recommender evaluation
for missing-not-at-random implicit feedback"): for user u with top-K list L_u, candidates C_u (items not in u's
train) and true relevance r(u, i),

    M_u = sum_{i in C_u} r(u,i) c(rank_i) / N_u,      N_u = sum_{i in C_u} r(u,i)

the mean of c over u's relevant items under full exposure, with c(r) = c_K(r) = 1[r <= K] for Recall@K and
c(r) = c_K(r) D(r), D(r) = 1 / log2(r + 1), for DCG@K (the average discounted gain per relevant item, in [0, 1]).
Both are linear in the relevance, so an inverse-propensity estimate of the numerator is unbiased. T_u = the
held-out positives (observed), w_i = 1 / pi_i, pi_i = P(i exposed to u in the held-out log):

* naive      M_u = sum_{T_u} c / |T_u|
* IPS        M_u = sum_{T_u} c w / N_u       Horvitz-Thompson with the known normaliser N_u: unbiased when pi is the
                                              true exposure probability of the held-out log (the world's evaluation
                                              round); N_u is known only where the truth is (the world)
* SNIPS      M_u = sum_{T_u} c w / sum_{T_u} w   (Hajek: N_u estimated by sum_{T_u} w; consistent, not unbiased)
* global SN  M_u = sum_{T_u} c v / |T_u|,  v_i = w_i / mean_{(v,j) in T} w_j   (one normaliser over all test pairs)
* truth      M_u = sum_{L_u, rank <= K} r(u,i) c(rank_i) / N_u   (world only)
* MAR        naive with T_u = clicked items of the missing-at-random log that are not in u's train.

Each function returns the per-user (recall, dcg) values; the evaluation of the zoo (means over users, bootstrap
CIs, paired comparisons, the bias summary) is :mod:`lure.evaluation`, the rank metrics' building blocks (c_K, D)
:mod:`lure.metrics.ranking`. All functions work on flat arrays of (user code, rank, weight) with ``np.bincount``;
there is no Python loop over users or items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lure.metrics.ranking import discount, in_top_k

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
# Each takes the test pairs as flat arrays: group (user code 0..n-1), ranks (rank of the pair's item in the user's
# top-K list, inf if absent), and returns per-user (recall, dcg) arrays of length n.


def _gains(ranks: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """c(rank) of Recall@K and of DCG@K for every pair: c_K(r) and c_K(r) D(r)."""
    hit = in_top_k(ranks, k)
    return hit.astype(np.float64), np.where(hit, discount(ranks), 0.0)


def naive(group: np.ndarray, ranks: np.ndarray, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Naive estimate on the observed held-out positives (every code 0..n-1 must have one)."""
    size = _check_groups(group, n)
    rec, dcg = _gains(ranks, k)
    # M_u = sum_{T_u} c / |T_u|
    return _per_user_sum(group, rec, n) / size, _per_user_sum(group, dcg, n) / size


def ips(
    group: np.ndarray, ranks: np.ndarray, n: int, k: int, weights: np.ndarray, normaliser: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Horvitz-Thompson IPS with the known normaliser N_u (``normaliser[u]``, > 0).

    Codes without a positive are allowed (their estimate is 0): the estimate is unbiased only when it is averaged
    over every user of the held-out log, those without positives included.
    """
    group = np.asarray(group, dtype=np.int64)
    norm = np.asarray(normaliser, dtype=np.float64)
    if norm.shape != (n,) or not (norm > 0).all():
        raise ValueError(f"the IPS normaliser needs one positive value per user ({n}), got shape {norm.shape}")
    w = _weights(weights)
    rec, dcg = _gains(ranks, k)
    # M_u = sum_{T_u} c w / N_u
    return _per_user_sum(group, rec * w, n) / norm, _per_user_sum(group, dcg * w, n) / norm


def snips(group: np.ndarray, ranks: np.ndarray, n: int, k: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Self-normalised IPS per user (with one positive per user it equals the naive estimate)."""
    _check_groups(group, n)
    group = np.asarray(group, dtype=np.int64)
    w = _weights(weights)
    rec, dcg = _gains(ranks, k)
    # M_u = sum_{T_u} c w / sum_{T_u} w
    total_w = _per_user_sum(group, w, n)
    return _per_user_sum(group, rec * w, n) / total_w, _per_user_sum(group, dcg * w, n) / total_w


def ips_global_sn(
    group: np.ndarray, ranks: np.ndarray, n: int, k: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """IPS self-normalised over ALL test pairs (one global normaliser): needs no N_u, so it runs on real data."""
    size = _check_groups(group, n)
    w = _weights(weights)
    # v_i = w_i / mean_{(v,j) in T} w_j
    v = w / w.mean()
    rec, dcg = _gains(ranks, k)
    # M_u = sum_{T_u} c v / |T_u|
    return _per_user_sum(group, rec * v, n) / size, _per_user_sum(group, dcg * v, n) / size


def truth(
    list_group: np.ndarray,
    list_ranks: np.ndarray,
    list_relevance: np.ndarray,
    n: int,
    k: int,
    total_relevance: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The estimand under the true relevance (world only).

    Inputs are the rows of the top-K lists (user code, rank, r(u, i)); ``total_relevance[u]`` = N_u = sum_{C_u} r
    (:func:`truth_relevance_mass`).
    """
    group = np.asarray(list_group, dtype=np.int64)
    rel = np.asarray(list_relevance, dtype=np.float64)
    rec, dcg = _gains(list_ranks, k)
    norm = np.asarray(total_relevance, dtype=np.float64)
    # M_u = sum_{L_u, rank<=K} r(u,i) c(rank_i) / N_u
    return _per_user_sum(group, rec * rel, n) / norm, _per_user_sum(group, dcg * rel, n) / norm


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


# ----------------------------------------------------------------------------------- policy value from a bandit log


def policy_value_ips(rewards: np.ndarray, target_prob: np.ndarray, logging_prob: np.ndarray) -> float:
    """IPS estimate of a target policy's expected reward from a log of one action per context:
    V = mean_i r_i pi(a_i|x_i) / mu(a_i|x_i) (unbiased when mu > 0 wherever pi > 0)."""
    r, ratio = _policy_ratio(rewards, target_prob, logging_prob)
    # V_IPS = (1/n) sum_i r_i pi(a_i|x_i) / mu(a_i|x_i)
    return float((r * ratio).mean())


def policy_value_snips(rewards: np.ndarray, target_prob: np.ndarray, logging_prob: np.ndarray) -> float:
    """Self-normalised IPS: V = sum_i r_i rho_i / sum_i rho_i, rho = pi / mu (consistent, lower variance, biased)."""
    r, ratio = _policy_ratio(rewards, target_prob, logging_prob)
    # V_SNIPS = sum_i r_i rho_i / sum_i rho_i
    return float((r * ratio).sum() / ratio.sum()) if ratio.sum() > 0 else 0.0


def _policy_ratio(
    rewards: np.ndarray, target_prob: np.ndarray, logging_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rewards, dtype=np.float64)
    pi = np.asarray(target_prob, dtype=np.float64)
    if r.shape != pi.shape or r.shape != np.shape(logging_prob) or r.size == 0:
        raise ValueError(f"need one reward, target and logging probability per logged context, got {r.shape}")
    if ((pi < 0) | (pi > 1 + 1e-9)).any():
        raise ValueError("target probabilities must be in [0, 1]")
    with np.errstate(divide="ignore"):  # a zero propensity becomes inf, which _weights rejects by name
        return r, pi * _weights(1.0 / np.asarray(logging_prob, dtype=np.float64))
