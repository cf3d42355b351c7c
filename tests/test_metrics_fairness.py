"""GDRT's item-side fairness (lure.metrics.fairness, §4.1.4): relevance groups, GU(g), MGU@K, DGU@K and group
shares, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from lure.metrics.fairness import dgu, group_shares, group_unfairness, item_groups_by_relevance, mgu

# groups by relevance (0.9, -1.0, -3.0, -0.5): order A, D, B, C -> {A, D} = 0, {B, C} = 1
ITEMS, REL = ["A", "B", "C", "D"], [0.9, -1.0, -3.0, -0.5]
RANKED = [["A", "D", "B"], ["D", "C", "A"]]
HISTORIES = [["A", "B"], ["C", "D", "B"]]


def test_item_groups_even_split_most_relevant_first() -> None:
    groups = item_groups_by_relevance(ITEMS, np.array(REL), 2)
    assert groups == {"A": 0, "D": 0, "B": 1, "C": 1}  # group 0 = most relevant to the auxiliary tokens
    # 7 items into 5 groups: group = rank * 5 // 7 for ranks 0..6 -> 0, 0, 1, 2, 2, 3, 4 (sizes differ by <= 1)
    seven = item_groups_by_relevance(list(range(7)), -np.arange(7.0), 5)
    assert [seven[i] for i in range(7)] == [0, 0, 1, 2, 2, 3, 4]
    # ties keep the input order (stable): 10 and 11 tie, 10 comes first
    assert item_groups_by_relevance([10, 11, 12, 13], [1.0, 1.0, 0.0, 2.0], 2) == {13: 0, 10: 0, 11: 1, 12: 1}
    with pytest.raises(ValueError, match="unique"):
        item_groups_by_relevance([1, 1], [0.0, 1.0], 1)
    with pytest.raises(ValueError, match="cannot split"):
        item_groups_by_relevance([1, 2], [0.0, 1.0], 3)
    with pytest.raises(ValueError, match="finite"):
        item_groups_by_relevance([1, 2], [0.0, np.nan], 1)


def test_gu_mgu_dgu_pooled_by_hand() -> None:
    groups = item_groups_by_relevance(ITEMS, REL, 2)
    # K = 2 pooled: recs A, D, D, C -> group-0 share 3/4; histories A, B, C, D, B -> 2/5; GU = [+0.35, -0.35]
    gu = group_unfairness(RANKED, HISTORIES, groups, 2, 2, "pooled")
    assert gu.tolist() == pytest.approx([0.35, -0.35], abs=1e-15)
    # MGU = (|0.35| + |-0.35|) / 2 = 0.35; DGU = 0.35 - (-0.35) = 0.70
    assert mgu(gu) == pytest.approx(0.35, abs=1e-15) and dgu(gu) == pytest.approx(0.70, abs=1e-15)
    # K = 3: recs A, D, B, D, C, A -> 4/6 vs 2/5 -> GU0 = 4/15; MGU = 4/15, DGU = 8/15
    gu3 = group_unfairness(RANKED, HISTORIES, groups, 3, 2, "pooled")
    assert (mgu(gu3), dgu(gu3)) == pytest.approx((4 / 15, 8 / 15), abs=1e-15)


def test_gu_per_user_by_hand() -> None:
    groups = item_groups_by_relevance(ITEMS, REL, 2)
    # K = 2 per user: u1 recs A, D (group-0 share 1) vs history A, B (1/2) -> +1/2;
    # u2 recs D, C (1/2) vs history C, D, B (1/3) -> +1/6; mean GU0 = (1/2 + 1/6) / 2 = 1/3
    gu = group_unfairness(RANKED, HISTORIES, groups, 2, 2, "user")
    assert gu.tolist() == pytest.approx([1 / 3, -1 / 3], abs=1e-15)


def test_five_groups_and_perfect_alignment() -> None:
    items = [f"i{j}" for j in range(10)]
    groups = item_groups_by_relevance(items, -np.arange(10.0), 5)  # i0,i1 -> g0; i2,i3 -> g1; ... i8,i9 -> g4
    hist = [["i0", "i2", "i4", "i6", "i8"]]  # one item per group: every history share is 1/5
    aligned = group_unfairness([["i1", "i3", "i5", "i7", "i9"]], hist, groups, 5, 5, "pooled")
    assert (mgu(aligned), dgu(aligned)) == (0.0, 0.0)
    # everything recommended from group 0: GU = [1 - 0.2, -0.2, -0.2, -0.2, -0.2] = [0.8, -0.2, ...]
    # MGU = (0.8 + 4 * 0.2) / 5 = 0.32; DGU = 0.8 - (-0.2) = 1.0
    gu = group_unfairness([["i0", "i1", "i0", "i1", "i0"]], hist, groups, 5, 5, "pooled")
    assert gu.tolist() == pytest.approx([0.8, -0.2, -0.2, -0.2, -0.2], abs=1e-15)
    assert mgu(gu) == pytest.approx(0.32, abs=1e-15) and dgu(gu) == pytest.approx(1.0, abs=1e-15)


def test_unknown_items_and_bad_inputs() -> None:
    groups = {"A": 0, "B": 1}
    with pytest.raises(KeyError):
        group_unfairness([["A", "ZZ"]], [["A", "B"]], groups, 2, 2, "pooled")
    # skipped: recs = {A} -> shares (1, 0); history (1/2, 1/2) -> GU = (+0.5, -0.5)
    gu = group_unfairness([["A", "ZZ"]], [["A", "B"]], groups, 2, 2, "pooled", unknown="skip")
    assert gu.tolist() == pytest.approx([0.5, -0.5], abs=1e-15)
    with pytest.raises(ValueError):
        group_unfairness([["A"]], [["A"], ["B"]], groups, 2, 2, "pooled")
    with pytest.raises(ValueError):
        group_unfairness([["A"]], [["A"]], groups, 2, 2, "median")


def test_group_shares_by_hand() -> None:
    groups = {10: 0, 11: 0, 12: 1, 13: 1}
    # items 10, 10, 12 (the -1 slot is skipped): group 0 twice, group 1 once -> (2/3, 1/3)
    np.testing.assert_allclose(group_shares([10, 10, 12, -1], groups, 2), [2 / 3, 1 / 3], rtol=1e-15)
    # three groups, item 13 only: (0, 1, 0); no items at all: zeros
    np.testing.assert_array_equal(group_shares(np.array([13, 13]), groups, 3), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(group_shares([-1], groups, 2), [0.0, 0.0])
