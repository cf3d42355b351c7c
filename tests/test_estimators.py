"""Offline estimators (lure.estimators): hand-computed naive / IPS / SNIPS / global-SN / truth / MAR values and an
ir_measures cross-check. Their evaluation over the zoo (CIs, comparisons, the bias summary) is tested in
test_evaluation.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

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

L3 = 1.0 / math.log2(3)  # D(2) = 0.6309...

# Hand example, K = 3. User 0 holds out items 1 (rank 1, pi 0.5 -> w 2) and 2 (rank 4, pi 0.25 -> w 4);
# user 1 holds out item 3 (rank 2, pi 1 -> w 1).
GROUP = np.array([0, 0, 1])
RANKS = np.array([1.0, 4.0, 2.0])
PROP = np.array([0.5, 0.25, 1.0])
K = 3


def test_naive_hand_computed() -> None:
    recall, dcg = naive(GROUP, RANKS, 2, K)
    # u0: 1 of 2 positives in the top 3 -> 1/2.   u1: 1/1.
    assert recall == pytest.approx([0.5, 1.0])
    # DCG per relevant item: u0 (D(1) + 0) / 2 = 0.5;  u1 D(2) / 1 = 1/log2(3)
    assert dcg == pytest.approx([0.5, L3])


# Known normalisers N_u (the expected number of relevant candidates of each user).
NORM = np.array([4.0, 2.0])


def test_ips_hand_computed() -> None:
    recall, dcg = ips(GROUP, RANKS, 2, K, 1.0 / PROP, NORM)
    # w = (2, 4, 1). u0: recall = 2 * 1 / 4 = 0.5 (item 2 at rank 4 misses); dcg = 2 * D(1) / 4 = 0.5
    # u1: recall = 1 / 2;  dcg = 1 * D(2) / 2
    assert recall == pytest.approx([0.5, 0.5])
    assert dcg == pytest.approx([0.5, L3 / 2])


def test_ips_counts_users_without_positives_as_zero() -> None:
    # Code 1 has no positive: its estimate is 0 (not skipped), so the mean over users stays unbiased.
    recall, dcg = ips(np.array([0, 2]), np.array([1.0, 3.0]), 3, K, np.array([2.0, 5.0]), np.array([1.0, 1.0, 10.0]))
    assert recall == pytest.approx([2.0, 0.0, 0.5])  # 2/1, 0, 5/10
    assert dcg == pytest.approx([2.0, 0.0, 5.0 * 0.5 / 10])  # D(3) = 1/log2(4) = 0.5
    with pytest.raises(ValueError, match="one positive value per user"):
        ips(GROUP, RANKS, 2, K, 1.0 / PROP, np.array([1.0, 0.0]))


def test_snips_hand_computed() -> None:
    recall, dcg = snips(GROUP, RANKS, 2, K, 1.0 / PROP)
    # u0: recall = 2 / (2 + 4) = 1/3;  dcg = 2 * D(1) / 6 = 1/3.   u1: recall = 1;  dcg = D(2)
    assert recall == pytest.approx([1 / 3, 1.0])
    assert dcg == pytest.approx([1 / 3, L3])


def test_ips_global_sn_hand_computed() -> None:
    recall, dcg = ips_global_sn(GROUP, RANKS, 2, K, 1.0 / PROP)
    # w = (2, 4, 1), global mean 7/3 -> v = (6/7, 12/7, 3/7)
    # u0: recall = (6/7) / 2 = 3/7;  dcg = (6/7 * 1) / 2.   u1: recall = 3/7;  dcg = 3/7 * D(2)
    assert recall == pytest.approx([3 / 7, 3 / 7])
    assert dcg == pytest.approx([3 / 7, (3 / 7) * L3])


def test_equal_propensities_reduce_to_naive() -> None:
    rng = np.random.default_rng(3)
    n = 50
    group = np.sort(np.r_[np.arange(n), rng.integers(0, n, 150)])
    ranks = np.where(rng.random(len(group)) < 0.4, rng.integers(1, 30, len(group)).astype(float), np.inf)
    equal = np.full(len(group), 0.37)
    sizes = np.bincount(group, minlength=n)
    for k in (1, 5, 20):
        nr, nn = naive(group, ranks, n, k)
        # IPS with N_u = |T_u| / pi (what the weights of the observed positives add up to) is naive as well.
        for r, d in (
            snips(group, ranks, n, k, 1.0 / equal),
            ips_global_sn(group, ranks, n, k, 1.0 / equal),
            ips(group, ranks, n, k, 1.0 / equal, sizes / 0.37),
        ):
            np.testing.assert_allclose(r, nr, rtol=1e-12)
            np.testing.assert_allclose(d, nn, rtol=1e-12)


def test_one_positive_per_user_makes_snips_naive() -> None:
    # With |T_u| = 1 (leave-one-out) the per-user self-normalisation cancels the weight exactly.
    ranks = np.array([1.0, 7.0, np.inf, 3.0])
    group = np.arange(4)
    w = np.array([1.0, 10.0, 3.0, 100.0])
    for a, b in zip(snips(group, ranks, 4, 5, w), naive(group, ranks, 4, 5), strict=True):
        np.testing.assert_allclose(a, b)
    assert not np.allclose(ips_global_sn(group, ranks, 4, 5, w)[0], naive(group, ranks, 4, 5)[0])


def test_weights_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        ips(GROUP, RANKS, 2, K, np.array([1.0, 0.0, 1.0]), NORM)
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
    sizes = np.bincount(t_users, minlength=n_users)
    for k in (1, 5, 10, 20):
        recall, dcg = naive(t_users, ranks, n_users, k)
        expect = {(m.query_id, str(m.measure)): m.value for m in ir_measures.iter_calc([R @ k, nDCG @ k], qrels, run)}
        np.testing.assert_allclose(recall, [expect[(str(u), f"R@{k}")] for u in range(n_users)], atol=1e-9)
        # DCG per relevant item = nDCG@k * IDCG(min(|T_u|, k)) / |T_u| (IDCG summed here by hand).
        ideal = [sum(1 / math.log2(r + 1) for r in range(1, min(int(s), k) + 1)) for s in sizes]
        want = [expect[(str(u), f"nDCG@{k}")] * ideal[u] / sizes[u] for u in range(n_users)]
        np.testing.assert_allclose(dcg, want, atol=1e-9)


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
    recall, dcg = truth(LISTS["user_id"].to_numpy(), LISTS["rank"].to_numpy(float), rel, 2, 2, total)
    # u0 list (2: .5, 0: .1): recall .6/1.1;  dcg (.5 * 1 + .1 * D(2)) / 1.1
    # u1 list (0: .4, 3: .6): recall 1/1.1;   dcg (.4 + .6 * D(2)) / 1.1
    np.testing.assert_allclose(recall, [0.6 / 1.1, 1.0 / 1.1], rtol=1e-6)
    np.testing.assert_allclose(dcg, [(0.5 + 0.1 * L3) / 1.1, (0.4 + 0.6 * L3) / 1.1], rtol=1e-6)
    assert dcg[0] == pytest.approx(0.511903, abs=1e-5)


def test_mar_positives_by_hand() -> None:
    mar = pd.DataFrame(
        {
            "user_id": [0, 0, 0, 1, 0],
            "item_id": [2, 1, 4, 0, 2],
            "clicked": [True, True, False, False, True],  # (0,1) is a train item: dropped; (0,2) twice: once
        }
    )
    assert mar_positives(mar, TRAIN).to_dict("list") == {"user_id": [0], "item_id": [2]}


def test_inverse_propensity_weights() -> None:
    np.testing.assert_array_equal(inverse_propensity_weights(PROP), [2.0, 4.0, 1.0])  # 1/0.5, 1/0.25, 1/1
    with pytest.raises(ValueError, match="positive and finite"), np.errstate(divide="ignore"):
        inverse_propensity_weights(np.array([0.5, 0.0]))  # 1/0 = inf


def test_policy_value_ips_and_snips_by_hand() -> None:
    from lure.estimators import policy_value_ips, policy_value_snips

    # rho = pi / mu = 0.5/0.25, 0.1/0.5, 0.3/0.1 = 2, 0.2, 3; rewards 1, 0, 1
    r, pi, mu = np.array([1, 0, 1]), np.array([0.5, 0.1, 0.3]), np.array([0.25, 0.5, 0.1])
    assert policy_value_ips(r, pi, mu) == pytest.approx((2 + 3) / 3)  # (2 + 0 + 3) / 3
    assert policy_value_snips(r, pi, mu) == pytest.approx(5 / 5.2)  # (2 + 3) / (2 + 0.2 + 3)
    with pytest.raises(ValueError, match="one reward"):
        policy_value_ips(r, pi[:2], mu)
    with pytest.raises(ValueError, match="propensities"):
        policy_value_ips(r, pi, np.array([0.25, 0.0, 0.1]))
