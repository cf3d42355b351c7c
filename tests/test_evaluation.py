"""Offline evaluation of the zoo (lure.evaluation): per-user values of every estimator through ``zoo_per_user``
(populations, skipped users, MAR and truth), ``evaluate_zoo``'s JSON (means, CIs, comparisons, bias summary),
``results_frame``, and a bias check that SNIPS recovers the truth where the naive estimate cannot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lure.evaluation import evaluate_zoo, metric_names, primary_k, results_frame, zoo_per_user
from lure.rng import stream
from lure.stats import bootstrap_ci

# Tiny world: 2 users x 5 items. Train: user 0 has item 1, user 1 has item 2. K = 2.
REL = np.array([[0.1, 0.9, 0.5, 0.2, 0.3], [0.4, 0.0, 0.8, 0.6, 0.1]], dtype=np.float32)
TRAIN = pd.DataFrame({"user_id": [0, 1], "item_id": [1, 2]})
LISTS = pd.DataFrame({"user_id": [0, 0, 1, 1], "rank": [1, 2, 1, 2], "item_id": [2, 0, 0, 3]})


def test_metric_names_and_primary_k() -> None:
    assert metric_names([5, 10]) == ["recall_at_5", "dcg_at_5", "recall_at_10", "dcg_at_10"]
    assert primary_k([5, 10, 20]) == 10 and primary_k([5, 20]) == 5 and primary_k([8, 12]) == 8


def test_mar_estimate_and_truth_through_zoo_per_user() -> None:
    mar = pd.DataFrame(
        {
            "user_id": [0, 0, 0, 1],
            "item_id": [2, 1, 4, 0],
            "clicked": [True, True, False, False],  # (0,1) is a train item: dropped; user 1 clicked nothing
        }
    )
    test = pd.DataFrame({"user_id": [0, 1], "item_id": [3, 3]})
    per = zoo_per_user({"m": LISTS}, test, np.array([0.5, 0.5]), [1, 2], TRAIN, REL, mar)
    np.testing.assert_array_equal(per.users["mar"], [0])
    assert per.skipped["mar"] == 1
    # MAR: user 0's only MAR positive (item 2) is at rank 1 -> recall 1, dcg 1 at K = 1 and 2
    assert per.values["m"]["mar"]["recall_at_1"] == pytest.approx([1.0])
    assert per.values["m"]["mar"]["dcg_at_2"] == pytest.approx([1.0])
    # naive on test: item 3 is unlisted for user 0 and at rank 2 for user 1
    assert per.values["m"]["naive"]["recall_at_2"] == pytest.approx([0.0, 1.0])
    assert per.values["m"]["naive"]["recall_at_1"] == pytest.approx([0.0, 0.0])
    assert per.values["m"]["truth"]["recall_at_2"] == pytest.approx([0.6 / 1.1, 1.0 / 1.1], rel=1e-6)
    # truth at K = 1: recall u0 .5/1.1, u1 .4/1.1; dcg = r D(1) / N_u = the same
    assert per.values["m"]["truth"]["recall_at_1"] == pytest.approx([0.5 / 1.1, 0.4 / 1.1], rel=1e-6)
    assert per.values["m"]["truth"]["dcg_at_1"] == pytest.approx([0.5 / 1.1, 0.4 / 1.1], rel=1e-6)


def test_mar_covers_listed_users_outside_the_test_users() -> None:
    lists = pd.concat([LISTS, pd.DataFrame({"user_id": [2], "rank": [1], "item_id": [4]})], ignore_index=True)
    mar = pd.DataFrame({"user_id": [0, 2, 3], "item_id": [2, 4, 1], "clicked": [True, True, True]})
    test = pd.DataFrame({"user_id": [0, 1], "item_id": [3, 3]})
    per = zoo_per_user({"m": lists}, test, np.array([1.0, 1.0]), [1], TRAIN, None, mar)
    # user 2 has a list and a MAR click but no test row; user 3 has a MAR click but no list
    np.testing.assert_array_equal(per.users["mar"], [0, 2])
    assert per.skipped["mar"] == 1 and per.skipped["naive"] == 1  # user 1 / user 2
    assert per.values["m"]["mar"]["recall_at_1"] == pytest.approx([1.0, 1.0])


def _biased_observation(seed: int, n_users: int = 300, n_items: int = 200, k: int = 20):
    """Relevant sets drawn uniformly; each relevant item observed with pi_i rising with popularity.

    The model ranks items by popularity (the items most likely observed), so the naive estimate is inflated.
    """
    rng = np.random.default_rng(seed)
    pop_rank = np.arange(n_items)  # item 0 most popular
    pi = 0.9 * (pop_rank + 1.0) ** -0.6 + 0.02
    relevant = rng.random((n_users, n_items)) < 0.15
    observed = relevant & (rng.random((n_users, n_items)) < pi[None, :])
    users, items = np.nonzero(observed)
    # model: popularity order with a little per-user noise
    scores = -pop_rank[None, :] + 5.0 * rng.standard_normal((n_users, n_items))
    order = np.argsort(-scores, axis=1)[:, :k]
    topk = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(n_users), k),
            "rank": np.tile(np.arange(1, k + 1), n_users),
            "item_id": order.ravel(),
        }
    )
    test = pd.DataFrame({"user_id": users, "item_id": items})
    return topk, test, pi[items], relevant.astype(np.float32)


def test_snips_recovers_truth_where_naive_is_biased() -> None:
    empty_train = pd.DataFrame({"user_id": np.empty(0, np.int64), "item_id": np.empty(0, np.int64)})
    errs = {"naive": [], "ips": [], "snips": [], "ips_global_sn": []}
    for seed in range(8):
        topk, test, prop, rel = _biased_observation(seed, n_users=150, n_items=800)  # ~7 positives per user
        per = zoo_per_user({"pop": topk}, test, prop, [10], empty_train, rel, None)
        assert np.array_equal(per.users["truth"], per.users["naive"])
        target = per.values["pop"]["truth"]["recall_at_10"].mean()
        for est, found in errs.items():
            found.append(per.values["pop"][est]["recall_at_10"].mean() - target)
    bias = {est: abs(np.mean(v)) for est, v in errs.items()}
    assert bias["naive"] > 0.05  # the popularity-sorted model looks much better than it is
    # SNIPS is a per-user ratio estimator: its small-sample bias shrinks as positives per user grow (0.2
    # instead of 0.08 below with ~3 per user). The globally normalised IPS is close here as well.
    assert bias["snips"] < 0.2 * bias["naive"], bias
    assert bias["ips"] < 0.2 * bias["naive"], bias
    assert bias["ips_global_sn"] < 0.2 * bias["naive"], bias


def _world_like(seed: int = 0):
    topk, test, prop, rel = _biased_observation(seed, n_users=120, n_items=80)
    rng = np.random.default_rng([seed, 1])  # not the stream that drew the relevant sets
    rand = topk.copy()
    rand["item_id"] = np.argsort(rng.random((120, 80)), axis=1)[:, :20].ravel()
    train = pd.DataFrame({"user_id": np.empty(0, np.int64), "item_id": np.empty(0, np.int64)})
    mar_u = np.repeat(np.arange(0, 120, 3), 10)
    mar_i = rng.integers(0, 80, len(mar_u))
    mar = pd.DataFrame({"user_id": mar_u, "item_id": mar_i, "clicked": rel[mar_u, mar_i] > 0})
    return {"pop": topk, "random": rand}, test, prop, train, rel, mar


def test_evaluate_zoo_structure_and_json() -> None:
    lists, test, prop, train, rel, mar = _world_like()
    res = evaluate_zoo(lists, test, prop, [5, 10], train, rel, mar, bootstrap=200, confidence=0.9, seed=0)
    json.dumps(res, allow_nan=False)
    assert set(res) == {"pop", "random", "users", "comparisons", "summary"}
    assert set(res["pop"]) == {"naive", "ips", "snips", "ips_global_sn", "truth", "mar"}
    assert set(res["pop"]["ips"]) == {"recall_at_5", "dcg_at_5", "recall_at_10", "dcg_at_10"}
    cell = res["pop"]["naive"]["dcg_at_10"]
    assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
    listed = lists["pop"]["user_id"].nunique()
    assert res["users"]["mar"]["evaluated"] + res["users"]["mar"]["skipped"] == listed
    pair = res["comparisons"]["pairs"]["pop_vs_random"]["truth"]["recall_at_10"]
    assert pair["mean_diff"] == pytest.approx(
        res["pop"]["truth"]["recall_at_10"]["mean"] - res["random"]["truth"]["recall_at_10"]["mean"]
    )
    s = res["summary"]
    assert s["target"] == "truth"
    for key in (
        "ips_error_ratio",
        "snips_error_ratio",
        "kendall_tau_naive_recall_at_10",
        "kendall_tau_ips_dcg_at_10",
        "kendall_tau_snips_recall_at_10",
    ):
        assert key in s
    # error ratio = mean |est - truth| / mean |naive - truth| over models and the Recall@K metrics
    names = ["recall_at_5", "recall_at_10"]

    def err(est: str) -> float:
        return np.mean([abs(res[m][est][n]["mean"] - res[m]["truth"][n]["mean"]) for m in lists for n in names])

    assert s["snips_error_ratio"] == pytest.approx(err("snips") / err("naive"))
    frame = results_frame(res)
    assert list(frame.columns) == ["model", "metric", "estimator", "value", "ci_low", "ci_high", "target"]
    assert len(frame) == 2 * 6 * 4
    row = frame[(frame.model == "pop") & (frame.estimator == "ips") & (frame.metric == "dcg_at_10")].iloc[0]
    assert row["target"] == pytest.approx(res["pop"]["truth"]["dcg_at_10"]["mean"])


def test_evaluate_zoo_without_truth_uses_mar_and_no_bootstrap() -> None:
    lists, test, prop, train, _, mar = _world_like(1)
    res = evaluate_zoo(lists, test, prop, [10], train, None, mar, bootstrap=0, confidence=0.95, seed=0)
    assert res["summary"]["target"] == "mar" and "truth" not in res["pop"]
    # Plain IPS needs the normaliser N_u, which only the truth gives; the global SN variant runs anywhere.
    assert "ips" not in res["pop"] and "ips_global_sn" in res["pop"]
    assert "ips_error_ratio" not in res["summary"] and "ips_global_sn_error_ratio" in res["summary"]
    assert res["pop"]["naive"]["recall_at_10"]["ci_low"] is None
    res = evaluate_zoo(lists, test, prop, [10], train, None, None, bootstrap=0, confidence=0.95, seed=0)
    assert res["summary"] == {"target": None}


def test_comparisons_vs_best_with_many_models() -> None:
    lists, test, prop, train, rel, _ = _world_like(2)
    many = {f"m{i}": lists["random" if i else "pop"] for i in range(7)}
    res = evaluate_zoo(many, test, prop, [5], train, rel, None, bootstrap=50, confidence=0.95, seed=0)
    comp = res["comparisons"]
    assert comp["mode"] == "vs_best" and comp["reference"] == "m0" and comp["metrics"] == ["recall_at_5", "dcg_at_5"]
    assert sorted(comp["pairs"]) == [f"m0_vs_m{i}" for i in range(1, 7)]


def test_means_and_cis_are_the_per_user_means_and_bootstrap() -> None:
    lists, test, prop, train, rel, mar = _world_like(3)
    res = evaluate_zoo(lists, test, prop, [5, 10], train, rel, mar, bootstrap=300, confidence=0.9, seed=11)
    per = zoo_per_user(lists, test, prop, [5, 10], train, rel, mar)
    # each estimator draws from its own named stream, one resample set for all its (model, metric) columns
    for est in per.users:
        names = metric_names([5, 10])
        matrix = np.stack([per.values[m][est][n] for m in lists for n in names], axis=1)
        low, high = bootstrap_ci(matrix, 300, 0.9, stream(11, f"evaluate.bootstrap.{est}"))
        for c, (m, n) in enumerate((m, n) for m in lists for n in names):
            cell = res[m][est][n]
            assert cell["mean"] == pytest.approx(per.values[m][est][n].mean(), rel=1e-12)
            assert (cell["ci_low"], cell["ci_high"]) == (float(low[c]), float(high[c]))


def test_ips_and_truth_cover_the_population_and_errors_compare_the_same_users() -> None:
    # User 0 has a held-out positive (item 2, rank 1, pi 0.5); user 1, in the round too, clicked nothing.
    test = pd.DataFrame({"user_id": [0], "item_id": [2]})
    per = zoo_per_user({"m": LISTS}, test, np.array([0.5]), [1], TRAIN, REL, None, population=np.array([1, 0]))
    np.testing.assert_array_equal(per.users["ips"], [0, 1])
    np.testing.assert_array_equal(per.users["naive"], [0])
    # IPS recall@1: u0 = (1 / 0.5) / N_0 = 2 / 1.1; u1 = 0 (no positive). Truth: u0 .5/1.1, u1 .4/1.1.
    assert per.values["m"]["ips"]["recall_at_1"] == pytest.approx([2 / 1.1, 0.0], rel=1e-6)
    res = evaluate_zoo({"m": LISTS}, test, np.array([0.5]), [1], TRAIN, REL, None, 0, 0.95, 0, np.array([0, 1]))
    s = res["summary"]
    # naive (u0 only): 1 - .5/1.1; IPS (u0 and u1): mean(2/1.1 - .5/1.1, 0 - .4/1.1) = (1.5 - .4) / 2.2
    assert s["naive_bias"] == pytest.approx(1 - 0.5 / 1.1, rel=1e-6)
    assert s["ips_bias"] == pytest.approx(1.1 / 2.2, rel=1e-6)
    assert s["ips_error_ratio"] == pytest.approx(0.5 / (1 - 0.5 / 1.1), rel=1e-6)
    with pytest.raises(ValueError, match="must be in the evaluated population"):
        zoo_per_user({"m": LISTS}, test, np.array([0.5]), [1], TRAIN, REL, None, population=np.array([1]))
