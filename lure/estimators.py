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

Every estimate is the mean of the per-user values over the users that have any positive (the rest are skipped
and counted). All functions work on flat arrays of (user code, rank, weight) with ``np.bincount``; there is no
Python loop over users or items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

ESTIMATORS = ("naive", "ips", "snips", "truth", "mar")
METRICS = ("recall", "ndcg")


# --------------------------------------------------------------------------------------------- building blocks


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


def _per_user_sum(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(group, weights=values, minlength=n).astype(np.float64)


def _within_rank(group: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of the pairs by (group, -key) and each pair's 1-based position inside its group in that order."""
    order = np.lexsort((-key, group))
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.empty(0, np.int64)
    pos = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)])) + 1
    return order, pos


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
    hit = np.asarray(ranks) <= k
    # Recall@K_u = sum_{i in T_u} c_K(i) / |T_u|
    recall = _per_user_sum(group, hit.astype(np.float64), n) / size
    # NDCG@K_u = sum_{i in T_u, rank<=K} 1/log2(rank+1) / IDCG(min(|T_u|, K))
    ndcg = _per_user_sum(group, np.where(hit, discount(ranks), 0.0), n) / idcg(np.minimum(size, k))
    return recall, ndcg


def ips(
    group: np.ndarray, ranks: np.ndarray, n: int, k: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """IPS with one global normaliser: weights scaled to mean 1 over all the pairs given (all test pairs)."""
    size = _check_groups(group, n)
    w = _weights(weights)
    # v_i = w_i / mean_{(v,j) in T} w_j
    v = w / w.mean()
    hit = np.asarray(ranks) <= k
    # Recall_u = sum_{T_u} c_K(i) v_i / |T_u|
    recall = _per_user_sum(group, np.where(hit, v, 0.0), n) / size
    # NDCG_u = sum_{T_u, rank<=K} v_i / log2(rank+1) / IDCG(min(|T_u|, K))
    ndcg = _per_user_sum(group, np.where(hit, v * discount(ranks), 0.0), n) / idcg(np.minimum(size, k))
    return recall, ndcg


def snips(
    group: np.ndarray, ranks: np.ndarray, n: int, k: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Self-normalised IPS per user (with one positive per user it equals the naive estimate)."""
    _check_groups(group, n)
    group = np.asarray(group, dtype=np.int64)
    w = _weights(weights)
    hit = np.asarray(ranks) <= k
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
    hit = np.asarray(list_ranks) <= k
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


# ------------------------------------------------------------------------------------- uncertainty and tests


def bootstrap_means(per_user: np.ndarray, n: int, seed: int, chunk_cells: int = 2_000_000) -> np.ndarray:
    """Means of ``n`` bootstrap resamples of the users (rows): shape (n,) or (n, columns).

    Resample indices are drawn in chunks of rows of an (n, users) index matrix and turned into per-user counts,
    so one matrix product gives the resampled means of every column at once (same resamples for all columns).
    """
    x = np.asarray(per_user, dtype=np.float64)
    flat = x.ndim == 1
    x2 = x[:, None] if flat else x
    m = x2.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((n, x2.shape[1]))
    chunk = max(1, chunk_cells // max(m, 1))
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        idx = rng.integers(0, m, size=(b, m))
        counts = np.bincount((idx + (np.arange(b) * m)[:, None]).ravel(), minlength=b * m).reshape(b, m)
        out[start : start + b] = counts.astype(np.float64) @ x2 / m
    return out[:, 0] if flat else out


def bootstrap_ci(per_user: np.ndarray, n: int, confidence: float, seed: int) -> tuple:
    """Percentile bootstrap interval of the mean over users: (low, high) floats, or arrays for a 2-D input.

    ``n = 0`` or no users gives (None, None).
    """
    x = np.asarray(per_user, dtype=np.float64)
    if n <= 0 or x.shape[0] == 0:
        return (None, None)
    means = bootstrap_means(x, n, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    if x.ndim == 1:
        return float(low), float(high)
    return low, high


def paired_test(
    a: np.ndarray, b: np.ndarray, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float | int | None]:
    """Two models on the same users: mean difference a − b, its paired-bootstrap CI, Wilcoxon signed-rank test.

    The Wilcoxon test drops zero differences (scipy's default); with no non-zero difference p = 1.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired arrays must have the same shape")
    d = a - b
    low, high = bootstrap_ci(d, n_boot, confidence, seed)
    if np.any(d != 0):
        import scipy.stats

        res = scipy.stats.wilcoxon(a, b)
        stat, p = float(res.statistic), float(res.pvalue)
    else:
        stat, p = 0.0, 1.0
    return {
        "mean_diff": float(d.mean()) if len(d) else None,
        "ci_low": low,
        "ci_high": high,
        "statistic": stat,
        "p_value": p,
        "n": len(d),
    }


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b between two scorings of the same models (nan with < 2 models or a constant scoring)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    import scipy.stats

    return float(scipy.stats.kendalltau(x, y).statistic)


# --------------------------------------------------------------------------------------------- the whole zoo


def metric_names(ks: list[int]) -> list[str]:
    """MLflow-legal names in a fixed order: recall_at_5, ndcg_at_5, recall_at_10, ..."""
    return [f"{m}_at_{k}" for k in ks for m in METRICS]


@dataclass
class ZooPerUser:
    """Per-user metric values of every model.

    ``users[estimator]``: the user ids the estimator is defined on (sorted); ``values[model][estimator][metric]``:
    one value per such user (same order for every model, so arrays of two models are paired);
    ``skipped[estimator]``: users without positives (or without relevance mass, for truth).
    """

    users: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


def zoo_per_user(
    topk: dict[str, pd.DataFrame],
    test: pd.DataFrame,
    propensity_of_test: np.ndarray,
    ks: list[int],
    train: pd.DataFrame,
    relevance: np.ndarray | None = None,
    mar: pd.DataFrame | None = None,
) -> ZooPerUser:
    """Per-user naive, IPS and SNIPS values (and truth / MAR when given) of every model's top-K lists.

    The evaluated population of naive, IPS, SNIPS and truth is the users of ``test`` (a test user missing from a
    model's lists gets zero hits); users that have a top-K list but no test positive are counted as skipped. The
    MAR estimate covers the users that have a top-K list and MAR positives. ``propensity_of_test`` is aligned
    with the rows of ``test``.
    """
    out = ZooPerUser()
    t_users = test["user_id"].to_numpy(dtype=np.int64)
    t_items = test["item_id"].to_numpy(dtype=np.int64)
    prop = np.asarray(propensity_of_test, dtype=np.float64)
    if prop.shape != t_users.shape:
        raise ValueError(f"propensity_of_test has {prop.shape[0]} values for {len(t_users)} test rows")
    weights = _weights(1.0 / prop)
    pop, group = np.unique(t_users, return_inverse=True)
    n = len(pop)
    listed = np.unique(np.concatenate([f["user_id"].to_numpy(dtype=np.int64) for f in topk.values()] or [pop]))
    skipped_listed = int(np.setdiff1d(listed, pop).size)
    for est in ("naive", "ips", "snips"):
        out.users[est] = pop
        out.skipped[est] = skipped_listed

    if relevance is not None:
        total = truth_relevance_mass(relevance, pop, train)
        sizes = np.bincount(group, minlength=n)
        ok = total > 0
        out.users["truth"] = pop[ok]
        out.skipped["truth"] = int((~ok).sum())
    if mar is not None:
        # MAR population: users with a top-K list (the zoo also lists MAR-log users outside the test users).
        pos = mar_positives(mar, train)
        pos = pos[np.isin(pos["user_id"].to_numpy(), listed)]
        m_users, m_group = np.unique(pos["user_id"].to_numpy(dtype=np.int64), return_inverse=True)
        m_items = pos["item_id"].to_numpy(dtype=np.int64)
        out.users["mar"] = m_users
        out.skipped["mar"] = int(len(listed) - len(m_users))

    for model, frame in topk.items():
        vals: dict[str, dict[str, np.ndarray]] = {e: {} for e in out.users}
        ranks = list_ranks(frame, t_users, t_items)
        if relevance is not None:
            fu = frame["user_id"].to_numpy(dtype=np.int64)
            in_pop = np.isin(fu, out.users["truth"])
            l_users = fu[in_pop]
            l_items = frame["item_id"].to_numpy(dtype=np.int64)[in_pop]
            l_group = np.searchsorted(out.users["truth"], l_users)
            l_rel = np.asarray(relevance[l_users, l_items], dtype=np.float64)
            l_ranks = frame["rank"].to_numpy(dtype=np.float64)[in_pop]
        if mar is not None:
            m_ranks = list_ranks(frame, m_users[m_group], m_items)
        for k in ks:
            per = {
                "naive": naive(group, ranks, n, k),
                "ips": ips(group, ranks, n, k, weights),
                "snips": snips(group, ranks, n, k, weights),
            }
            if relevance is not None:
                per["truth"] = truth(l_group, l_ranks, l_rel, int(ok.sum()), k, total[ok], sizes[ok])
            if mar is not None and len(m_users):
                per["mar"] = naive(m_group, m_ranks, len(m_users), k)
            elif mar is not None:
                per["mar"] = (np.empty(0), np.empty(0))
            for est, (rec, nd) in per.items():
                vals[est][f"recall_at_{k}"] = rec
                vals[est][f"ndcg_at_{k}"] = nd
        out.values[model] = vals
    return out


def primary_k(ks: list[int]) -> int:
    """The cut-off used for model comparisons and rank correlations: 10 if evaluated, else the K closest to 10."""
    return 10 if 10 in ks else min(ks, key=lambda k: (abs(k - 10), k))


def evaluate_zoo(
    topk: dict[str, pd.DataFrame],
    test: pd.DataFrame,
    propensity_of_test: np.ndarray,
    ks: list[int],
    train: pd.DataFrame,
    relevance: np.ndarray | None = None,
    mar: pd.DataFrame | None = None,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Means and bootstrap CIs of every (model, estimator, metric), paired comparisons and a bias summary.

    Returns a JSON-able dict (see ``docs/evaluation.md``)::

        {model: {estimator: {"recall_at_10": {"mean", "ci_low", "ci_high"}, ...}},
         "users": {estimator: {"evaluated", "skipped"}},
         "comparisons": {"mode", "reference", "metrics", "pairs": {"a_vs_b": {estimator: {metric: {...}}}}},
         "summary": {"target", "ips_error_ratio", "snips_error_ratio", "kendall_tau_ips_ndcg_at_10", ...}}

    The same bootstrap resamples (seeded by ``seed``) are used for every model and metric of an estimator.
    """
    per = zoo_per_user(topk, test, propensity_of_test, ks, train, relevance, mar)
    names = metric_names(ks)
    models = list(topk)
    if set(models) & {"users", "comparisons", "summary"}:
        raise ValueError("model names 'users', 'comparisons' and 'summary' are reserved")
    result: dict = {m: {} for m in models}
    for est_i, est in enumerate(per.users):
        cols = [per.values[m][est][name] for m in models for name in names]
        matrix = np.stack(cols, axis=1) if cols else np.empty((0, 0))
        means = matrix.mean(axis=0) if matrix.shape[0] else np.full(matrix.shape[1], np.nan)
        low, high = bootstrap_ci(matrix, bootstrap, confidence, seed + est_i)
        for c, (m, name) in enumerate((m, name) for m in models for name in names):
            result[m].setdefault(est, {})[name] = {
                "mean": _num(means[c]),
                "ci_low": None if low is None else _num(low[c]),
                "ci_high": None if high is None else _num(high[c]),
            }
    result["users"] = {
        est: {"evaluated": len(per.users[est]), "skipped": int(per.skipped[est])} for est in per.users
    }
    result["comparisons"] = _comparisons(per, result, models, ks, bootstrap, confidence, seed)
    result["summary"] = _summary(result, models, per, names, ks)
    return result


def _num(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _comparisons(
    per: ZooPerUser, result: dict, models: list[str], ks: list[int], bootstrap: int, confidence: float, seed: int
) -> dict:
    k = primary_k(ks)
    metrics = [f"recall_at_{k}", f"ndcg_at_{k}"]
    if len(models) <= 6:
        mode, reference = "all_pairs", None
        pairs = list(combinations(models, 2))
    else:
        mode = "vs_best"
        key = f"ndcg_at_{k}"
        reference = max(models, key=lambda m: (result[m]["naive"][key]["mean"] or -np.inf, -models.index(m)))
        pairs = [(reference, m) for m in models if m != reference]
    out: dict = {"mode": mode, "reference": reference, "metrics": metrics, "pairs": {f"{a}_vs_{b}": {} for a, b in pairs}}
    for est_i, est in enumerate(per.users):
        if not len(per.users[est]) or not pairs:
            continue
        cells = [(a, b, name) for a, b in pairs for name in metrics]
        diffs = np.stack([per.values[a][est][name] - per.values[b][est][name] for a, b, name in cells], axis=1)
        # One bootstrap for all pairs and metrics of this estimator (same resamples as the paired_test seed).
        low, high = bootstrap_ci(diffs, bootstrap, confidence, seed + est_i)
        for c, (a, b, name) in enumerate(cells):
            test = paired_test(per.values[a][est][name], per.values[b][est][name], 0, confidence, seed)
            test["ci_low"] = None if low is None else _num(low[c])
            test["ci_high"] = None if high is None else _num(high[c])
            out["pairs"][f"{a}_vs_{b}"].setdefault(est, {})[name] = test
    return out


def _summary(result: dict, models: list[str], per: ZooPerUser, names: list[str], ks: list[int]) -> dict:
    """Bias of the estimators against the target (truth on the world, else the MAR estimate)."""
    target = "truth" if "truth" in per.users else ("mar" if "mar" in per.users and len(per.users["mar"]) else None)
    summary: dict = {"target": target}
    if target is None:
        return summary

    def value(m: str, est: str, name: str) -> float:
        v = result[m][est][name]["mean"]
        return np.nan if v is None else v

    # Error ratios use Recall@K only: recall does not depend on the size of the positive set, while NDCG's
    # normaliser does, so an NDCG target from another positive set (a MAR log) is not on the same scale.
    recall_names = [n for n in names if n.startswith("recall_")]

    def errors(est: str) -> np.ndarray:
        return np.array([abs(value(m, est, n) - value(m, target, n)) for m in models for n in recall_names])

    naive_err = float(np.nanmean(errors("naive"))) if models else float("nan")
    for est in ("naive", "ips", "snips"):
        err = float(np.nanmean(errors(est))) if models else float("nan")
        summary[f"{est}_abs_error"] = _num(err)
        if est != "naive":
            summary[f"{est}_error_ratio"] = _num(err / naive_err) if naive_err > 0 else None
    if target == "truth" and "mar" in per.users and len(per.users["mar"]):
        # The MAR estimate is unbiased for the MAR users' truth; against all users' truth it also carries the
        # sampling error of the smaller population.
        err = float(np.nanmean(errors("mar"))) if models else float("nan")
        summary["mar_abs_error"] = _num(err)
        summary["mar_error_ratio"] = _num(err / naive_err) if naive_err > 0 else None
    k = primary_k(ks)
    for est in ("naive", "ips", "snips"):
        for name in (f"recall_at_{k}", f"ndcg_at_{k}"):
            x = [value(m, est, name) for m in models]
            y = [value(m, target, name) for m in models]
            summary[f"kendall_tau_{est}_{name}"] = _num(kendall_tau(x, y))
    return summary


def results_frame(result: dict) -> pd.DataFrame:
    """Tidy rows for a DVC plot: model, metric, estimator, value, ci_low, ci_high, target (the target's value)."""
    target = result.get("summary", {}).get("target")
    rows = []
    for model, ests in result.items():
        if model in ("users", "comparisons", "summary"):
            continue
        for est, metrics in ests.items():
            for name, stats in metrics.items():
                tgt = ests.get(target, {}).get(name, {}).get("mean") if target else None
                rows.append(
                    {
                        "model": model,
                        "metric": name,
                        "estimator": est,
                        "value": stats["mean"],
                        "ci_low": stats["ci_low"],
                        "ci_high": stats["ci_high"],
                        "target": tgt,
                    }
                )
    frame = pd.DataFrame(rows, columns=["model", "metric", "estimator", "value", "ci_low", "ci_high", "target"])
    for col in ("value", "ci_low", "ci_high", "target"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float64)
    return frame
