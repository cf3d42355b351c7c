"""Language bias against the world's truth (lure/metrics/language_bias.py, lure.llm.evaluate.eq2_correlations and
prior_bias; docs/gdrt.md "Language bias against the truth"), on toy inputs computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lure.llm.evaluate import eq2_correlations, prior_bias
from lure.metrics.language_bias import (
    first_new_items,
    matched_reference,
    prior_groups,
    prior_top1_shares,
    report_row,
    spearman,
)

# 2 users x 6 items; items 0-2 are popularity bin 0, items 3-5 bin 1.
RELEVANCE = np.array(
    [
        [0.1, 0.9, 0.5, 0.3, 0.8, 0.2],
        [0.7, 0.2, 0.6, 0.9, 0.1, 0.4],
    ]
)
POP_BIN = np.array([0, 0, 0, 1, 1, 1])


def test_spearman_hand_computed():
    # d = (0, 1, 1, 0): 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties share their average rank: ranks (1.5, 1.5, 3) vs (1, 2, 3) -> 1.5 / sqrt(1.5 * 2)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3.0))
    assert spearman([3, 2, 1], [10, 20, 30]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2], [1, 2, 3])


def test_prior_groups_equal_counts_highest_first():
    assert prior_groups([0.1, 0.5, 0.3, 0.9, 0.7]).tolist() == [4, 2, 3, 0, 1]
    # 2 groups over 5 items: group = rank * 2 // 5 -> ranks 0-2 in group 0, ranks 3-4 in group 1
    assert prior_groups([0.1, 0.5, 0.3, 0.9, 0.7], 2).tolist() == [1, 0, 1, 0, 0]
    # 6 items in quintiles: rank * 5 // 6 = 0, 0, 1, 2, 3, 4
    assert prior_groups([0.6, 0.5, 0.4, 0.3, 0.2, 0.1]).tolist() == [0, 0, 1, 2, 3, 4]


def test_first_new_items_skip_history_and_empty_slots():
    ranked = np.array([[3, 1, 2], [5, 6, 7], [1, -1, 4], [2, 2, -1]])
    assert first_new_items(ranked, [[3], [], [1], [2]]).tolist() == [1, 5, 4, -1]


def test_matched_reference_is_the_most_relevant_new_item_of_the_picks_bin():
    picks = np.array([2, 3, 5, -1, 1])
    users = [0, 0, 1, 1, 1]
    histories = [[1], [], [3], [0, 1, 2], [0, 1, 2]]
    # w0: bin 0 minus {1} = {0, 2}, r = .1, .5 -> 2;  w1: bin 1 = {3, 4, 5}, r = .3, .8, .2 -> 4;
    # w2: bin 1 minus {3}, r = .1, .4 -> 5;  w3: no pick;  w4: every item of bin 0 is history -> none
    assert matched_reference(picks, users, histories, RELEVANCE, POP_BIN).tolist() == [2, 4, 5, -1, -1]


def test_prior_top1_shares_pooled_and_by_bin():
    groups = np.array([0, 0, 1, 1, 0, 1])
    out = prior_top1_shares(np.array([2, 3, 5, -1, 1]), np.array([2, 4, 5, -1, -1]), groups, POP_BIN, n_groups=2)
    # windows 0-2 count; picks 2, 3, 5 are all group 1; references 2, 4, 5 are groups 1, 0, 1
    assert out["windows"] == 3
    assert out["share"] == pytest.approx([0.0, 1.0])
    assert out["expected"] == pytest.approx([1 / 3, 2 / 3])
    assert out["top_prior_excess"] == pytest.approx(-1 / 3)
    bins = {b["pop_bin"]: b for b in out["by_pop_bin"]}
    assert set(bins) == {0, 1}
    assert bins[0]["windows"] == 1 and bins[0]["share"] == [0.0, 1.0] and bins[0]["expected"] == [0.0, 1.0]
    assert bins[1]["windows"] == 2 and bins[1]["share"] == [0.0, 1.0] and bins[1]["expected"] == [0.5, 0.5]


def test_eq2_correlations_align_by_item_id_and_skip_the_prior_without_truth():
    items = pd.DataFrame({"item_id": [2, 0, 1], "popularity": [5, 1, 3]})
    eq2 = [0.3, 0.1, 0.2]  # scores items 2, 0, 1: same order as their popularity
    truth = pd.DataFrame({"item_id": [0, 1, 2], "title_prior": [3.0, 2.0, 1.0]})
    out = eq2_correlations(eq2, items, truth)
    assert out["eq2_spearman_popularity"] == pytest.approx(1.0)
    # aligned by id the priors of items 2, 0, 1 are 1, 3, 2: exactly reversed (by position it would be 0.5)
    assert out["eq2_spearman_prior"] == pytest.approx(-1.0)
    assert set(eq2_correlations(eq2, items, None)) == {"eq2_spearman_popularity"}  # a real dataset


def test_prior_bias_end_to_end_on_a_toy_world():
    items = pd.DataFrame({"item_id": [5, 4, 3, 2, 1, 0], "pop_bin": POP_BIN[::-1]})  # shuffled: aligned by id
    truth = pd.DataFrame({"item_id": range(6), "title_prior": [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]})  # quintiles 0,0,1,2,3,4
    ranked = np.array([[1, 2, 0], [3, 4, 5], [3, 5, 4]])
    out = prior_bias(ranked, [0, 0, 1], [[1], [], [3]], RELEVANCE, items, truth)
    # picks 2, 3, 5 (groups 1, 2, 4); references 2, 4, 5 (groups 1, 3, 4)
    assert out["share"] == pytest.approx([0, 1 / 3, 1 / 3, 0, 1 / 3])
    assert out["expected"] == pytest.approx([0, 1 / 3, 0, 1 / 3, 1 / 3])
    assert out["top_prior_excess"] == 0.0 and out["windows"] == 3


def test_report_row_keeps_only_what_the_stage_computed():
    base = {
        "attribution": {"ratio_task_to_history": 1.2, "ratio_first_token_to_history": 0.8, "attribution_task": 3.0},
        "language_prior": {"eq2_spearman_prior": 0.9, "eq2_spearman_popularity": 0.1},
        "parameters": 10,
    }
    keys = ("ratio_task_to_history", "ratio_first_token_to_history")
    assert report_row(base, keys) == {
        "ratio_task_to_history": 1.2,
        "ratio_first_token_to_history": 0.8,
        "eq2_spearman_prior": 0.9,
        "eq2_spearman_popularity": 0.1,
    }
    baseline = {
        "language_prior": {"top1_prior": {"share": [0.5, 0.5], "expected": [0.2, 0.8], "top_prior_excess": 0.3}}
    }
    assert report_row(baseline, keys) == {
        "top1_top_prior_share": 0.5,
        "top1_top_prior_expected": 0.2,
        "top1_top_prior_excess": 0.3,
    }
    assert report_row({}, keys) == {}
