"""Offline estimators: hand-computed naive / IPS / SNIPS / truth / MAR values, ir_measures cross-check,
bootstrap and paired tests, and a bias check that SNIPS recovers the truth where the naive estimate cannot."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from lure.estimators import (
    bootstrap_ci,
    evaluate_zoo,
    idcg,
    ips,
    kendall_tau,
    list_ranks,
    mar_positives,
    naive,
    paired_test,
    results_frame,
    snips,
    truth,
    truth_relevance_mass,
    zoo_per_user,
)

L3 = 1.0 / math.log2(3)  # D(2) = 0.6309...

# Hand example, K = 3. User 0 holds out items 1 (rank 1, pi 0.5 -> w 2) and 2 (rank 4, pi 0.25 -> w 4);
# user 1 holds out item 3 (rank 2, pi 1 -> w 1).
GROUP = np.array([0, 0, 1])
RANKS = np.array([1.0, 4.0, 2.0])
PROP = np.array([0.5, 0.25, 1.0])
K = 3


def test_naive_hand_computed() -> None:
    recall, ndcg = naive(GROUP, RANKS, 2, K)
    # u0: 1 of 2 positives in the top 3 -> 1/2.   u1: 1/1.
    assert recall == pytest.approx([0.5, 1.0])
    # u0: DCG = 1/log2(2) = 1, IDCG(min(2,3)=2) = 1 + 1/log2(3) -> 1 / 1.6309 = 0.6131
    # u1: DCG = 1/log2(3), IDCG(1) = 1 -> 0.6309
    assert ndcg == pytest.approx([1.0 / (1.0 + L3), L3])
    assert ndcg[0] == pytest.approx(0.6131471927654584)


def test_ips_hand_computed() -> None:
    recall, ndcg = ips(GROUP, RANKS, 2, K, 1.0 / PROP)
    # w = (2, 4, 1), global mean 7/3 -> v = (6/7, 12/7, 3/7)
    # u0: recall = (6/7 * 1 + 12/7 * 0) / 2 = 3/7;  ndcg = (6/7 * 1) / (1 + 1/log2 3)
    # u1: recall = 3/7 / 1 = 3/7;                   ndcg = 3/7 * 1/log2(3) / 1
    assert recall == pytest.approx([3 / 7, 3 / 7])
    assert ndcg == pytest.approx([(6 / 7) / (1.0 + L3), (3 / 7) * L3])


def test_snips_hand_computed() -> None:
    recall, ndcg = snips(GROUP, RANKS, 2, K, 1.0 / PROP)
    # u0: recall = 2 / (2 + 4) = 1/3
    #     ndcg = |T| * (weighted DCG / total weight) / IDCG(min(|T|, K)) = 2 * (2 * 1 / 6) / (1 + 1/log2 3)
    #          = 0.6667 / 1.6309 = 0.4088
    # u1: recall = 1 / 1 = 1;  ndcg = 1 * (w / log2(3) / w) / 1 = 0.6309
    assert recall == pytest.approx([1 / 3, 1.0])
    assert ndcg == pytest.approx([2.0 * (2.0 / 6.0) / (1.0 + L3), L3])
    assert ndcg[0] == pytest.approx(0.408765, abs=1e-6)


def test_snips_differs_from_ips_in_general() -> None:
    ips_r, ips_n = ips(GROUP, RANKS, 2, K, 1.0 / PROP)
    sn_r, sn_n = snips(GROUP, RANKS, 2, K, 1.0 / PROP)
    assert not np.allclose(ips_r, sn_r) and not np.allclose(ips_n, sn_n)
    assert ips_r.mean() == pytest.approx(3 / 7) and sn_r.mean() == pytest.approx(2 / 3)


def test_equal_propensities_reduce_to_naive() -> None:
    rng = np.random.default_rng(3)
    n = 50
    group = np.sort(np.r_[np.arange(n), rng.integers(0, n, 150)])
    ranks = np.where(rng.random(len(group)) < 0.4, rng.integers(1, 30, len(group)).astype(float), np.inf)
    equal = np.full(len(group), 0.37)
    for k in (1, 5, 20):
        nr, nn = naive(group, ranks, n, k)
        for est in (ips, snips):
            r, d = est(group, ranks, n, k, 1.0 / equal)
            np.testing.assert_allclose(r, nr, rtol=1e-12)
            np.testing.assert_allclose(d, nn, rtol=1e-12)


def test_one_positive_per_user_makes_snips_naive() -> None:
    # With |T_u| = 1 (leave-one-out) the per-user self-normalisation cancels the weight exactly.
    ranks = np.array([1.0, 7.0, np.inf, 3.0])
    group = np.arange(4)
    w = np.array([1.0, 10.0, 3.0, 100.0])
    for a, b in zip(snips(group, ranks, 4, 5, w), naive(group, ranks, 4, 5), strict=True):
        np.testing.assert_allclose(a, b)
    assert not np.allclose(ips(group, ranks, 4, 5, w)[0], naive(group, ranks, 4, 5)[0])


def test_weights_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        ips(GROUP, RANKS, 2, K, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="at least one positive"):
        naive(np.array([0, 2]), np.array([1.0, 1.0]), 3, 5)


def test_naive_matches_ir_measures() -> None:
    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import Qrel, R, ScoredDoc, nDCG

    rng = np.random.default_rng(0)
    n_users, n_items, length = 40, 60, 25
    rows, qrels, run = [], [], []
    for u in range(n_users):  # a tiny fixture built item by item (not the code under test)
        items = rng.permutation(n_items)
        lst = items[:length]
        positives = rng.choice(n_items, rng.integers(1, 15), replace=False)
        for r, i in enumerate(lst, start=1):
            rows.append((u, r, int(i)))
            run.append(ScoredDoc(str(u), str(i), float(length - r)))  # distinct scores: no tie-breaking issue
        qrels.extend(Qrel(str(u), str(i), 1) for i in positives)
    topk = pd.DataFrame(rows, columns=["user_id", "rank", "item_id"])
    t_users = np.array([int(q.query_id) for q in qrels])
    t_items = np.array([int(q.doc_id) for q in qrels])
    ranks = list_ranks(topk, t_users, t_items)
    for k in (1, 5, 10, 20):
        recall, ndcg = naive(t_users, ranks, n_users, k)
        expect = {(m.query_id, str(m.measure)): m.value for m in ir_measures.iter_calc([R @ k, nDCG @ k], qrels, run)}
        np.testing.assert_allclose(recall, [expect[(str(u), f"R@{k}")] for u in range(n_users)], atol=1e-9)
        np.testing.assert_allclose(ndcg, [expect[(str(u), f"nDCG@{k}")] for u in range(n_users)], atol=1e-9)


def test_list_ranks() -> None:
    topk = pd.DataFrame({"user_id": [0, 0, 1], "rank": [1, 2, 1], "item_id": [5, 3, 5]})
    got = list_ranks(topk, np.array([0, 0, 1, 1, 2]), np.array([3, 5, 5, 3, 5]))
    np.testing.assert_array_equal(got, [2, 1, 1, np.inf, np.inf])


# Tiny world: 2 users x 5 items. Train: user 0 has item 1, user 1 has item 2. K = 2.
REL = np.array([[0.1, 0.9, 0.5, 0.2, 0.3], [0.4, 0.0, 0.8, 0.6, 0.1]], dtype=np.float32)
TRAIN = pd.DataFrame({"user_id": [0, 1], "item_id": [1, 2]})
LISTS = pd.DataFrame({"user_id": [0, 0, 1, 1], "rank": [1, 2, 1, 2], "item_id": [2, 0, 0, 3]})


def test_truth_hand_computed() -> None:
    total = truth_relevance_mass(REL, np.array([0, 1]), TRAIN)
    # C_0 = {0,2,3,4}: .1+.5+.2+.3 = 1.1.   C_1 = {0,1,3,4}: .4+0+.6+.1 = 1.1
    np.testing.assert_allclose(total, [1.1, 1.1], rtol=1e-6)
    np.testing.assert_allclose(truth_relevance_mass(REL, np.array([1, 0]), TRAIN, batch_cells=1), [1.1, 1.1])
    rel = REL[LISTS["user_id"], LISTS["item_id"]]
    sizes = np.array([1, 3])  # |T_u|: held-out set sizes of u0 and u1
    recall, ndcg = truth(LISTS["user_id"].to_numpy(), LISTS["rank"].to_numpy(float), rel, 2, 2, total, sizes)
    # p = r / 1.1.  u0 list (2: .5, 0: .1): recall .6/1.1; |T|=1: DCG = (.5/1.1) + (.1/1.1)/log2 3, IDCG(1) = 1
    # u1 list (0: .4, 3: .6): recall 1/1.1; |T|=3: inclusion min(1, 3p) = (1.0909->1, 1.6364->1):
    #    DCG = 1 + 1/log2 3, IDCG(min(3, 2)) = 1 + 1/log2 3 -> 1
    np.testing.assert_allclose(recall, [0.6 / 1.1, 1.0 / 1.1], rtol=1e-6)
    np.testing.assert_allclose(ndcg, [(0.5 + 0.1 * L3) / 1.1, 1.0], rtol=1e-6)
    assert ndcg[0] == pytest.approx(0.511903, abs=1e-5)


def test_mar_estimate_and_truth_through_zoo_per_user() -> None:
    mar = pd.DataFrame(
        {
            "user_id": [0, 0, 0, 1],
            "item_id": [2, 1, 4, 0],
            "clicked": [True, True, False, False],  # (0,1) is a train item: dropped; user 1 clicked nothing
        }
    )
    pos = mar_positives(mar, TRAIN)
    assert pos.to_dict("list") == {"user_id": [0], "item_id": [2]}
    test = pd.DataFrame({"user_id": [0, 1], "item_id": [3, 3]})
    per = zoo_per_user({"m": LISTS}, test, np.array([0.5, 0.5]), [1, 2], TRAIN, REL, mar)
    np.testing.assert_array_equal(per.users["mar"], [0])
    assert per.skipped["mar"] == 1
    # MAR: user 0's only MAR positive (item 2) is at rank 1 -> recall 1, ndcg 1 at K = 1 and 2
    assert per.values["m"]["mar"]["recall_at_1"] == pytest.approx([1.0])
    assert per.values["m"]["mar"]["ndcg_at_2"] == pytest.approx([1.0])
    # naive on test: item 3 is unlisted for user 0 and at rank 2 for user 1
    assert per.values["m"]["naive"]["recall_at_2"] == pytest.approx([0.0, 1.0])
    assert per.values["m"]["naive"]["recall_at_1"] == pytest.approx([0.0, 0.0])
    assert per.values["m"]["truth"]["recall_at_2"] == pytest.approx([0.6 / 1.1, 1.0 / 1.1], rel=1e-6)
    # truth at K = 1 (|T_u| = 1 for both): recall u0 .5/1.1, u1 .4/1.1; ndcg = min(1, p) / IDCG(1) = the same
    assert per.values["m"]["truth"]["recall_at_1"] == pytest.approx([0.5 / 1.1, 0.4 / 1.1], rel=1e-6)
    assert per.values["m"]["truth"]["ndcg_at_1"] == pytest.approx([0.5 / 1.1, 0.4 / 1.1], rel=1e-6)


def test_mar_covers_listed_users_outside_the_test_users() -> None:
    lists = pd.concat([LISTS, pd.DataFrame({"user_id": [2], "rank": [1], "item_id": [4]})], ignore_index=True)
    mar = pd.DataFrame({"user_id": [0, 2, 3], "item_id": [2, 4, 1], "clicked": [True, True, True]})
    test = pd.DataFrame({"user_id": [0, 1], "item_id": [3, 3]})
    per = zoo_per_user({"m": lists}, test, np.array([1.0, 1.0]), [1], TRAIN, None, mar)
    # user 2 has a list and a MAR click but no test row; user 3 has a MAR click but no list
    np.testing.assert_array_equal(per.users["mar"], [0, 2])
    assert per.skipped["mar"] == 1 and per.skipped["naive"] == 1  # user 1 / user 2
    assert per.values["m"]["mar"]["recall_at_1"] == pytest.approx([1.0, 1.0])


def test_idcg() -> None:
    np.testing.assert_allclose(idcg(np.array([0, 1, 2, 3])), [0.0, 1.0, 1.0 + L3, 1.0 + L3 + 0.5])


def test_bootstrap_ci_contains_mean_and_narrows() -> None:
    rng = np.random.default_rng(1)
    small = rng.random(100)
    large = rng.random(10_000)
    lo_s, hi_s = bootstrap_ci(small, 2000, 0.95, seed=0)
    lo_l, hi_l = bootstrap_ci(large, 2000, 0.95, seed=0)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < 0.2 * (hi_s - lo_s)  # width ~ 1/sqrt(n): ratio ~ 0.1
    # 2-D: one column per metric, same as column-wise calls with the same seed
    both = np.stack([small, small * 2], axis=1)
    lo2, hi2 = bootstrap_ci(both, 500, 0.9, seed=4)
    assert (lo2[0], hi2[0]) == pytest.approx(bootstrap_ci(small, 500, 0.9, seed=4))
    assert lo2[1] == pytest.approx(2 * lo2[0]) and hi2[1] == pytest.approx(2 * hi2[0])
    assert bootstrap_ci(small, 0, 0.95, 0) == (None, None)
    # percentile interval of the normal mean is close to mean +- 1.96 sd/sqrt(n)
    half = 1.96 * large.std() / math.sqrt(len(large))
    assert (hi_l - lo_l) / 2 == pytest.approx(half, rel=0.1)


def test_paired_test_detects_a_real_difference() -> None:
    rng = np.random.default_rng(2)
    b = rng.random(300)
    better = b + 0.05 + 0.1 * rng.standard_normal(300)
    res = paired_test(better, b, 1000, 0.95, 0)
    assert res["p_value"] < 1e-4 and res["ci_low"] > 0 and res["mean_diff"] == pytest.approx(np.mean(better - b))
    same = b + 0.1 * rng.standard_normal(300)
    null = paired_test(same, b, 1000, 0.95, 0)
    assert null["p_value"] > 0.01 and null["ci_low"] < 0 < null["ci_high"]
    assert paired_test(b, b)["p_value"] == 1.0


def test_kendall_tau() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert math.isnan(kendall_tau([1.0], [2.0]))


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
    errs = {"naive": [], "ips": [], "snips": []}
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
    assert set(res["pop"]) == {"naive", "ips", "snips", "truth", "mar"}
    assert set(res["pop"]["ips"]) == {"recall_at_5", "ndcg_at_5", "recall_at_10", "ndcg_at_10"}
    cell = res["pop"]["naive"]["ndcg_at_10"]
    assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
    listed = lists["pop"]["user_id"].nunique()
    assert res["users"]["mar"]["evaluated"] + res["users"]["mar"]["skipped"] == listed
    pair = res["comparisons"]["pairs"]["pop_vs_random"]["truth"]["recall_at_10"]
    assert pair["mean_diff"] == pytest.approx(
        res["pop"]["truth"]["recall_at_10"]["mean"] - res["random"]["truth"]["recall_at_10"]["mean"]
    )
    s = res["summary"]
    assert s["target"] == "truth"
    for key in ("ips_error_ratio", "snips_error_ratio", "kendall_tau_naive_recall_at_10",
                "kendall_tau_ips_ndcg_at_10", "kendall_tau_snips_recall_at_10"):
        assert key in s
    # error ratio = mean |est - truth| / mean |naive - truth| over models and the Recall@K metrics
    names = ["recall_at_5", "recall_at_10"]

    def err(est: str) -> float:
        return np.mean([abs(res[m][est][n]["mean"] - res[m]["truth"][n]["mean"]) for m in lists for n in names])

    assert s["snips_error_ratio"] == pytest.approx(err("snips") / err("naive"))
    frame = results_frame(res)
    assert list(frame.columns) == ["model", "metric", "estimator", "value", "ci_low", "ci_high", "target"]
    assert len(frame) == 2 * 5 * 4
    row = frame[(frame.model == "pop") & (frame.estimator == "ips") & (frame.metric == "ndcg_at_10")].iloc[0]
    assert row["target"] == pytest.approx(res["pop"]["truth"]["ndcg_at_10"]["mean"])


def test_evaluate_zoo_without_truth_uses_mar_and_no_bootstrap() -> None:
    lists, test, prop, train, _, mar = _world_like(1)
    res = evaluate_zoo(lists, test, prop, [10], train, None, mar, bootstrap=0, confidence=0.95, seed=0)
    assert res["summary"]["target"] == "mar" and "truth" not in res["pop"]
    assert res["pop"]["naive"]["recall_at_10"]["ci_low"] is None
    res = evaluate_zoo(lists, test, prop, [10], train, None, None, bootstrap=0, confidence=0.95, seed=0)
    assert res["summary"] == {"target": None}


def test_comparisons_vs_best_with_many_models() -> None:
    lists, test, prop, train, rel, _ = _world_like(2)
    many = {f"m{i}": lists["random" if i else "pop"] for i in range(7)}
    res = evaluate_zoo(many, test, prop, [5], train, rel, None, bootstrap=50, confidence=0.95, seed=0)
    comp = res["comparisons"]
    assert comp["mode"] == "vs_best" and comp["reference"] == "m0" and comp["metrics"] == ["recall_at_5", "ndcg_at_5"]
    assert sorted(comp["pairs"]) == [f"m0_vs_m{i}" for i in range(1, 7)]
