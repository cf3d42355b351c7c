"""Exact-title HR/NDCG and GDRT's MGU/DGU (§4.1.4), checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lure.llm.metrics import (
    dgu_at_k,
    group_unfairness,
    hit_at_k,
    item_groups_by_relevance,
    mgu_at_k,
    mgu_dgu_at_k,
    ndcg_at_k,
    target_ranks,
)

RANKED = [["a", "b", "c"], ["x", "y", "z"], ["q", "t", "r"], ["m", "m", "n"]]
TARGETS = ["b", "z", "none", "m"]  # ranks 2, 3, absent, 1 (first occurrence)


def test_ranks_hit_ndcg_hand_computed() -> None:
    assert target_ranks(RANKED, TARGETS).tolist() == [2, 3, math.inf, 1]
    assert hit_at_k(RANKED, TARGETS, 1) == pytest.approx(1 / 4)
    assert hit_at_k(RANKED, TARGETS, 2) == pytest.approx(2 / 4)
    assert hit_at_k(RANKED, TARGETS, 5) == pytest.approx(3 / 4)
    assert ndcg_at_k(RANKED, TARGETS, 1) == pytest.approx(1 / 4)
    assert ndcg_at_k(RANKED, TARGETS, 2) == pytest.approx((1 / math.log2(3) + 1) / 4)  # 0.40773
    assert ndcg_at_k(RANKED, TARGETS, 3) == pytest.approx((1 / math.log2(3) + 0.5 + 1) / 4)  # 0.53273
    assert ndcg_at_k(RANKED, TARGETS, 3) == pytest.approx(0.5327324858)


def test_exact_match_only() -> None:
    assert hit_at_k([["Toy Car ", "toy car"]], ["Toy Car"], 2) == 0.0
    with pytest.raises(ValueError):
        hit_at_k([["a"]], ["a", "b"], 1)


def test_item_groups_even_split_descending() -> None:
    titles = ["A", "B", "C", "D"]
    groups = item_groups_by_relevance(titles, np.array([0.9, -1.0, -3.0, -0.5]), n_groups=2)
    assert groups == {"A": 0, "D": 0, "B": 1, "C": 1}  # group 0 = most relevant to auxiliary tokens
    seven = item_groups_by_relevance([str(i) for i in range(7)], -np.arange(7.0), n_groups=5)
    assert [seven[str(i)] for i in range(7)] == [0, 0, 1, 2, 2, 3, 4]  # sizes differ by at most one


def test_mgu_dgu_hand_computed() -> None:
    # groups: {A, D} = 0, {B, C} = 1
    titles, rel = ["A", "B", "C", "D"], [0.9, -1.0, -3.0, -0.5]
    ranked = [["A", "D", "B"], ["D", "C", "A"]]
    histories = [["A", "B"], ["C", "D", "B"]]
    # K=2 pooled: recs A,D,D,C -> group-0 share 3/4; histories A,B,C,D,B -> 2/5; GU = [+0.35, -0.35]
    groups = item_groups_by_relevance(titles, rel, 2)
    gu = group_unfairness(ranked, histories, groups, k=2, n_groups=2)
    assert gu.tolist() == pytest.approx([0.35, -0.35])
    assert mgu_at_k(gu) == pytest.approx(0.35) and dgu_at_k(gu) == pytest.approx(0.70)
    assert mgu_dgu_at_k(ranked, histories, titles, rel, k=2, n_groups=2) == pytest.approx((0.35, 0.70))
    # per-user reading: u1 1 - 1/2 = 0.5, u2 1/2 - 1/3 = 1/6 -> GU0 = 1/3
    gu_u = group_unfairness(ranked, histories, groups, k=2, n_groups=2, average="user")
    assert gu_u.tolist() == pytest.approx([1 / 3, -1 / 3])
    # K=3: recs A,D,B,D,C,A -> 4/6 vs 2/5 -> GU0 = 4/15
    assert mgu_dgu_at_k(ranked, histories, titles, rel, k=3, n_groups=2) == pytest.approx((4 / 15, 8 / 15))


def test_mgu_dgu_five_groups_and_perfect_alignment() -> None:
    titles = [f"i{j}" for j in range(10)]
    rel = -np.arange(10.0)  # i0,i1 -> g0 ; i2,i3 -> g1 ; ... i8,i9 -> g4
    hist = [["i0", "i2", "i4", "i6", "i8"]]
    assert mgu_dgu_at_k([["i1", "i3", "i5", "i7", "i9"]], hist, titles, rel, k=5) == pytest.approx((0.0, 0.0))
    # everything recommended from group 0: GU = [0.8, -0.2, -0.2, -0.2, -0.2]
    mgu, dgu = mgu_dgu_at_k([["i0", "i1", "i0", "i1", "i0"]], hist, titles, rel, k=5)
    assert mgu == pytest.approx(1.6 / 5) and dgu == pytest.approx(1.0)


def test_unknown_titles() -> None:
    groups = {"A": 0, "B": 1}
    with pytest.raises(KeyError):
        group_unfairness([["A", "ZZ"]], [["A", "B"]], groups, k=2, n_groups=2)
    gu = group_unfairness([["A", "ZZ"]], [["A", "B"]], groups, k=2, n_groups=2, unknown="skip")
    assert gu.tolist() == pytest.approx([0.5, -0.5])
