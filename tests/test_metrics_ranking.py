"""Ranking metrics (lure.metrics.ranking): the DCG discount, ideal DCG, per-row HIT@K / NDCG@K and the rank look-ups,
against hand-computed values and an ir_measures cross-check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lure.metrics.ranking import discount, hit_at_k, idcg, in_top_k, list_ranks, ndcg_at_k, target_ranks

L3 = 0.6309297535714575  # D(2) = 1 / log2(3) = 1 / 1.5849625007211562


def test_discount_by_hand() -> None:
    # D(r) = 1 / log2(r + 1): D(1) = 1/1, D(2) = 1/1.58496, D(3) = 1/2, D(7) = 1/3, D(15) = 1/4; absent -> 0
    got = discount(np.array([1.0, 2.0, 3.0, 7.0, 15.0, np.inf]))
    np.testing.assert_allclose(got, [1.0, L3, 0.5, 1 / 3, 0.25, 0.0], rtol=1e-15)


def test_idcg_by_hand() -> None:
    # IDCG(m) = D(1) + ... + D(m): 0, 1, 1 + 0.63093 = 1.63093, 1.63093 + 0.5 = 2.13093
    np.testing.assert_allclose(idcg(np.array([0, 1, 2, 3])), [0.0, 1.0, 1.0 + L3, 1.0 + L3 + 0.5], rtol=1e-15)
    np.testing.assert_allclose(idcg(np.array([3, 1])), [2.1309297535714578, 1.0], rtol=1e-15)
    assert idcg(np.array([], dtype=np.int64)).shape == (0,)


def test_hit_and_ndcg_per_row_by_hand() -> None:
    ranks = np.array([2.0, 3.0, np.inf, 1.0])
    # K = 2: ranks 2 and 1 are in the top 2 -> HIT (1, 0, 0, 1); NDCG = D(2), 0, 0, D(1)
    assert in_top_k(ranks, 2).tolist() == [True, False, False, True]
    np.testing.assert_array_equal(hit_at_k(ranks, 2), [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(ndcg_at_k(ranks, 2), [L3, 0.0, 0.0, 1.0], rtol=1e-15)
    # K = 3: rank 3 enters with D(3) = 0.5 -> mean NDCG = (0.63093 + 0.5 + 0 + 1) / 4 = 0.53273
    np.testing.assert_allclose(ndcg_at_k(ranks, 3), [L3, 0.5, 0.0, 1.0], rtol=1e-15)
    assert ndcg_at_k(ranks, 3).mean() == pytest.approx(0.5327324383928644, rel=1e-12)
    # K = 1: only rank 1 counts
    np.testing.assert_array_equal(hit_at_k(ranks, 1), [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(ndcg_at_k(ranks, 1), [0.0, 0.0, 0.0, 1.0])
    assert hit_at_k(ranks, 2).dtype == np.float64


def test_target_ranks_first_match_padding_and_absent() -> None:
    ranked = np.array([[3, 1, 2], [1, 2, 3], [7, 8, 9], [5, 5, 6], [-1, -1, 4]])
    # row 0: 1 at position 2; row 1: position 1; row 2: absent; row 3: first occurrence; row 4: after padding
    np.testing.assert_array_equal(target_ranks(ranked, np.array([1, 1, 1, 5, 4])), [2, 1, math.inf, 1, 3])
    titles = np.array([["a", "b", "c"], ["Toy Car ", "toy car", "x"]])
    np.testing.assert_array_equal(target_ranks(titles, np.array(["c", "Toy Car"])), [3, math.inf])  # exact only
    np.testing.assert_array_equal(target_ranks(np.empty((2, 0), np.int64), np.array([1, 2])), [math.inf] * 2)
    with pytest.raises(ValueError):
        target_ranks(np.array([[1, 2]]), np.array([1, 2]))


def test_list_ranks_by_hand() -> None:
    topk = pd.DataFrame({"user_id": [0, 0, 1], "rank": [1, 2, 1], "item_id": [5, 3, 5]})
    got = list_ranks(topk, np.array([0, 0, 1, 1, 2]), np.array([3, 5, 5, 3, 5]))
    # (0,3) rank 2; (0,5) rank 1; (1,5) rank 1; (1,3) not listed; user 2 has no list
    np.testing.assert_array_equal(got, [2, 1, 1, np.inf, np.inf])


def test_single_target_ndcg_matches_ir_measures() -> None:
    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import Qrel, ScoredDoc, nDCG

    rng = np.random.default_rng(0)
    n, length = 60, 20
    ranked = np.stack([rng.permutation(100)[:length] for _ in range(n)])
    targets = np.where(rng.random(n) < 0.7, ranked[np.arange(n), rng.integers(0, length, n)], 100 + np.arange(n))
    run = [ScoredDoc(str(q), str(i), float(length - r)) for q in range(n) for r, i in enumerate(ranked[q])]
    qrels = [Qrel(str(q), str(t), 1) for q, t in enumerate(targets)]
    for k in (1, 5, 10, 20):
        expect = {m.query_id: m.value for m in ir_measures.iter_calc([nDCG @ k], qrels, run)}
        got = ndcg_at_k(target_ranks(ranked, targets), k)
        np.testing.assert_allclose(got, [expect.get(str(q), 0.0) for q in range(n)], atol=1e-12)
