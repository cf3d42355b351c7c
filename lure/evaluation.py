"""Offline evaluation of the recommender zoo: per-user estimator values of every model's top-K lists, their means
with bootstrap CIs, paired comparisons of the models and the bias summary against the target (``docs/evaluation.md``).

The estimator formulas are :mod:`lure.estimators`; the statistics (bootstrap, paired test, Kendall's tau)
:mod:`lure.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from lure.estimators import (
    inverse_propensity_weights,
    ips,
    ips_global_sn,
    mar_positives,
    naive,
    snips,
    truth,
    truth_relevance_mass,
)
from lure.metrics.ranking import list_ranks
from lure.rng import stream
from lure.stats import bootstrap_ci, kendall_tau, paired_test

METRICS = ("recall", "dcg")
#: Estimators computed from the held-out positives and their propensities (``truth`` and ``mar`` are targets).
ESTIMATORS = ("naive", "ips", "snips", "ips_global_sn")


def metric_names(ks: list[int]) -> list[str]:
    """MLflow-legal names in a fixed order: recall_at_5, dcg_at_5, recall_at_10, ..."""
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
    population: np.ndarray | None = None,
) -> ZooPerUser:
    """Per-user estimator values (and truth / MAR when given) of every model's top-K lists.

    Populations: naive, SNIPS and global SN are defined on the users with a held-out positive (the users of
    ``test``). Plain IPS and the truth (world only: they need N_u from ``relevance``) are averaged over
    ``population``, the users the held-out log covers, those without a positive included (default: the users
    of ``test``): IPS is unbiased for the truth over exactly that population. The MAR estimate covers the users
    that have a top-K list and MAR positives. A user missing from a model's lists gets zero hits.
    ``propensity_of_test`` is aligned with the rows of ``test``.
    """
    out = ZooPerUser()
    t_users = test["user_id"].to_numpy(dtype=np.int64)
    t_items = test["item_id"].to_numpy(dtype=np.int64)
    prop = np.asarray(propensity_of_test, dtype=np.float64)
    if prop.shape != t_users.shape:
        raise ValueError(f"propensity_of_test has {prop.shape[0]} values for {len(t_users)} test rows")
    weights = inverse_propensity_weights(prop)
    pos_users, group = np.unique(t_users, return_inverse=True)
    n = len(pos_users)
    listed = np.unique(np.concatenate([f["user_id"].to_numpy(dtype=np.int64) for f in topk.values()] or [pos_users]))
    skipped_listed = int(np.setdiff1d(listed, pos_users).size)
    for est in ("naive", "snips", "ips_global_sn"):
        out.users[est] = pos_users
        out.skipped[est] = skipped_listed

    if relevance is not None:
        everyone = pos_users if population is None else np.unique(np.asarray(population, dtype=np.int64))
        if not np.isin(pos_users, everyone).all():
            raise ValueError("every user with a held-out positive must be in the evaluated population")
        total = truth_relevance_mass(relevance, everyone, train)
        ok = total > 0
        covered = everyone[ok]
        norm = total[ok]
        for est in ("ips", "truth"):
            out.users[est] = covered
            out.skipped[est] = int((~ok).sum())
        # Test pairs as codes into the covered population (pairs of users outside it cannot occur: N_u > 0 for
        # any user with a positive, since r > 0 everywhere).
        keep = np.isin(t_users, covered)
        ips_group = np.searchsorted(covered, t_users[keep])
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
            in_pop = np.isin(fu, covered)
            l_users = fu[in_pop]
            l_items = frame["item_id"].to_numpy(dtype=np.int64)[in_pop]
            l_group = np.searchsorted(covered, l_users)
            l_rel = np.asarray(relevance[l_users, l_items], dtype=np.float64)
            l_ranks = frame["rank"].to_numpy(dtype=np.float64)[in_pop]
        if mar is not None:
            m_ranks = list_ranks(frame, m_users[m_group], m_items)
        for k in ks:
            per = {
                "naive": naive(group, ranks, n, k),
                "snips": snips(group, ranks, n, k, weights),
                "ips_global_sn": ips_global_sn(group, ranks, n, k, weights),
            }
            if relevance is not None:
                per["ips"] = ips(ips_group, ranks[keep], len(covered), k, weights[keep], norm)
                per["truth"] = truth(l_group, l_ranks, l_rel, len(covered), k, norm)
            if mar is not None and len(m_users):
                per["mar"] = naive(m_group, m_ranks, len(m_users), k)
            elif mar is not None:
                per["mar"] = (np.empty(0), np.empty(0))
            for est, (rec, dcg) in per.items():
                vals[est][f"recall_at_{k}"] = rec
                vals[est][f"dcg_at_{k}"] = dcg
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
    relevance: np.ndarray | None,
    mar: pd.DataFrame | None,
    bootstrap: int,
    confidence: float,
    seed: int,
    population: np.ndarray | None = None,
) -> dict:
    """Means and bootstrap CIs of every (model, estimator, metric), paired comparisons and a bias summary.

    Returns a JSON-able dict (see ``docs/evaluation.md``)::

        {model: {estimator: {"recall_at_10": {"mean", "ci_low", "ci_high"}, ...}},
         "users": {estimator: {"evaluated", "skipped"}},
         "comparisons": {"mode", "reference", "metrics", "pairs": {"a_vs_b": {estimator: {metric: {...}}}}},
         "summary": {"target", "ips_error_ratio", "snips_error_ratio", "kendall_tau_ips_dcg_at_10", ...}}

    ``population``: the users the held-out log covers (:func:`zoo_per_user`). The same bootstrap resamples (seeded
    by ``seed``) are used for every model and metric of an estimator.
    """
    per = zoo_per_user(topk, test, propensity_of_test, ks, train, relevance, mar, population)
    names = metric_names(ks)
    models = list(topk)
    if set(models) & {"users", "comparisons", "summary"}:
        raise ValueError("model names 'users', 'comparisons' and 'summary' are reserved")
    result: dict = {m: {} for m in models}
    for est in per.users:
        cols = [per.values[m][est][name] for m in models for name in names]
        matrix = np.stack(cols, axis=1) if cols else np.empty((0, 0))
        means = matrix.mean(axis=0) if matrix.shape[0] else np.full(matrix.shape[1], np.nan)
        low, high = bootstrap_ci(matrix, bootstrap, confidence, stream(seed, f"evaluate.bootstrap.{est}"))
        for c, (m, name) in enumerate((m, name) for m in models for name in names):
            result[m].setdefault(est, {})[name] = {
                "mean": _num(means[c]),
                "ci_low": None if low is None else _num(low[c]),
                "ci_high": None if high is None else _num(high[c]),
            }
    result["users"] = {est: {"evaluated": len(per.users[est]), "skipped": int(per.skipped[est])} for est in per.users}
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
    metrics = [f"recall_at_{k}", f"dcg_at_{k}"]
    if len(models) <= 6:
        mode, reference = "all_pairs", None
        pairs = list(combinations(models, 2))
    else:
        mode = "vs_best"
        key = f"dcg_at_{k}"
        reference = max(models, key=lambda m: (result[m]["naive"][key]["mean"] or -np.inf, -models.index(m)))
        pairs = [(reference, m) for m in models if m != reference]
    out: dict = {
        "mode": mode,
        "reference": reference,
        "metrics": metrics,
        "pairs": {f"{a}_vs_{b}": {} for a, b in pairs},
    }
    for est in per.users:
        if not len(per.users[est]) or not pairs:
            continue
        cells = [(a, b, name) for a, b in pairs for name in metrics]
        diffs = np.stack([per.values[a][est][name] - per.values[b][est][name] for a, b, name in cells], axis=1)
        # One bootstrap for all pairs and metrics of this estimator, on the resamples of its CIs above (common random
        # numbers: every model and difference of an estimator sees the same resampled users).
        low, high = bootstrap_ci(diffs, bootstrap, confidence, stream(seed, f"evaluate.bootstrap.{est}"))
        for c, (a, b, name) in enumerate(cells):
            test = paired_test(per.values[a][est][name], per.values[b][est][name], 0, confidence, seed)
            test["ci_low"] = None if low is None else _num(low[c])
            test["ci_high"] = None if high is None else _num(high[c])
            out["pairs"][f"{a}_vs_{b}"].setdefault(est, {})[name] = test
    return out


def _summary(result: dict, models: list[str], per: ZooPerUser, names: list[str], ks: list[int]) -> dict:
    """Bias of the estimators against the target (truth on the world, else the MAR estimate).

    Against the truth, each estimator is compared on its own users (naive and SNIPS exist only for users with a
    held-out positive; the truth is known for all of them), so an error is the estimator's and not a difference
    of populations: ``<est>_abs_error`` = mean over models and Recall@K of |mean_users(est_u - truth_u)|, and
    ``<est>_bias`` the same without the absolute value. Against a MAR estimate (another set of users) the means
    are compared. ``<est>_error_ratio`` = its abs error / naive's.
    """
    target = "truth" if "truth" in per.users else ("mar" if "mar" in per.users and len(per.users["mar"]) else None)
    summary: dict = {"target": target}
    if target is None:
        return summary

    def value(m: str, est: str, name: str) -> float:
        v = result[m][est][name]["mean"]
        return np.nan if v is None else v

    # Error ratios use Recall@K only (the primary metric; DCG@K follows the same estimand and is reported per model).
    recall_names = [n for n in names if n.startswith("recall_")]

    def signed(est: str) -> np.ndarray:
        if target != "truth" or est == "mar":
            return np.array([value(m, est, n) - value(m, target, n) for m in models for n in recall_names])
        at = np.searchsorted(per.users["truth"], per.users[est])
        return np.array(
            [np.mean(per.values[m][est][n] - per.values[m]["truth"][n][at]) for m in models for n in recall_names]
        )

    estimators = [e for e in ESTIMATORS if e in per.users]
    naive_err = float(np.nanmean(np.abs(signed("naive")))) if models else float("nan")
    for est in estimators:
        errors = signed(est) if models else np.array([np.nan])
        err = float(np.nanmean(np.abs(errors)))
        summary[f"{est}_abs_error"] = _num(err)
        summary[f"{est}_bias"] = _num(float(np.nanmean(errors)))
        if est != "naive":
            summary[f"{est}_error_ratio"] = _num(err / naive_err) if naive_err > 0 else None
    if target == "truth" and "mar" in per.users and len(per.users["mar"]):
        # The MAR estimate is unbiased for the MAR users' truth; against all users' truth it also carries the
        # sampling error of the smaller population.
        err = float(np.nanmean(np.abs(signed("mar")))) if models else float("nan")
        summary["mar_abs_error"] = _num(err)
        summary["mar_error_ratio"] = _num(err / naive_err) if naive_err > 0 else None
    k = primary_k(ks)
    for est in estimators:
        for name in (f"recall_at_{k}", f"dcg_at_{k}"):
            x = [value(m, est, name) for m in models]
            y = [value(m, target, name) for m in models]
            summary[f"kendall_tau_{est}_{name}"] = _num(kendall_tau(x, y))
    return summary


def summary_by_propensity(
    topk: dict[str, pd.DataFrame],
    test: pd.DataFrame,
    propensities: dict[str, np.ndarray],
    ks: list[int],
    train: pd.DataFrame,
    relevance: np.ndarray | None,
    mar: pd.DataFrame | None,
    population: np.ndarray | None = None,
) -> dict[str, dict]:
    """The bias summary (errors, error ratios, Kendall's tau; no CIs) once per propensity model, side by side.

    ``propensities[name]`` holds that model's propensities of the rows of ``test``. With the world's true
    propensities plain IPS is unbiased (``tests/test_estimand.py``), so the other models' error ratios measure the
    propensity model alone.
    """
    names = metric_names(ks)
    models = list(topk)
    out = {}
    for name, pi in propensities.items():
        per = zoo_per_user(topk, test, pi, ks, train, relevance, mar, population)
        result: dict = {m: {} for m in models}
        for est in per.users:
            for m in models:
                result[m][est] = {n: {"mean": _num(np.mean(per.values[m][est][n]))} for n in names}
        out[name] = _summary(result, models, per, names, ks)
    return out


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
