"""ABPO's per-round exposure metrics and report, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lure.abpo.evaluate import exposure_bias, item_distribution, true_top_k
from lure.abpo.report import ablation_table, ope_agreement, round_metric_names
from lure.data.canonical import gini


def test_item_distribution_and_true_top_k() -> None:
    assert item_distribution(np.array([[0, 1], [1, -1]]), 3) == pytest.approx([1 / 3, 2 / 3, 0])
    rel = np.array([[0.1, 0.9, 0.5], [0.7, 0.7, 0.2]])
    assert true_top_k(rel, np.array([1, 0]), 2).tolist() == [[0, 1], [1, 2]]  # ties to the lower id


def test_exposure_bias_by_hand() -> None:
    ranked = np.array([[0, 1], [0, 2]])  # item 0 twice, 1 and 2 once: (2, 1, 1, 0) / 4 over 4 items
    reference = np.array([[1, 2], [3, 2]])  # (0, 1, 2, 1) / 4
    out = exposure_bias(ranked, reference, prior_exposed=np.array([0, 3]), n_items=4, k=2)
    assert out["prior_exposed_share_at_2"] == pytest.approx(2 / 4)  # the two slots holding item 0
    # Gini of (0, 1/4, 1/4, 1/2) sorted: sum (2i - 5) x_i / (4 * 1) = (-3*0 - 1/4 + 1/4 + 3/2) / 4 = 0.375
    assert gini(np.array([2, 1, 1, 0]) / 4) == pytest.approx(0.375)
    assert out["gini_at_2"] == pytest.approx(0.375)
    assert out["gini_gap_at_2"] == pytest.approx(0.375 - 0.375)  # the reference has the same shape
    assert out["tv_to_truth_at_2"] == pytest.approx(0.5 * (2 + 0 + 1 + 1) / 4)


ROUND_0 = {"true_ctr": 0.2, "ips_ctr": 0.21, "snips_ctr": 0.2, "ndcg_at_10": 0.05}
ROUNDS = {
    "grpo": [{"round": 1, "true_ctr": 0.25, "ips_ctr": 0.3, "snips_ctr": 0.24, "ndcg_at_10": 0.06, "log": {}}],
    "abpo": [{"round": 1, "true_ctr": 0.3, "ips_ctr": 0.28, "snips_ctr": 0.31, "ndcg_at_10": 0.07, "log": {}}],
    "sft_positive": [{"round": 1, "true_ctr": 0.22, "ips_ctr": 0.2, "snips_ctr": 0.21, "ndcg_at_10": 0.04}],
}
VARIANTS = {
    "grpo": {
        "method": "grpo",
        "anchor_in_baseline": True,
        "snips": True,
        "tempering": "inverse",
        "tempering_at": "reward",
    },
    "abpo": {
        "method": "abpo",
        "anchor_in_baseline": False,
        "snips": True,
        "tempering": "direct",
        "tempering_at": "reward",
    },
    "sft_positive": {
        "method": "sft_positive",
        "anchor_in_baseline": True,
        "snips": True,
        "tempering": "inverse",
        "tempering_at": "reward",
    },
}


def test_ablation_table_rows_and_switches() -> None:
    table = ablation_table(ROUND_0, ROUNDS, VARIANTS, [10])
    assert table["method"].tolist() == ["sft (round 0)", "grpo", "abpo", "sft_positive"]
    abpo = table.set_index("method").loc["abpo"]
    assert (abpo["update"], abpo["anchor_in_baseline"], abpo["tempering"]) == ("abpo", False, "direct")
    assert table.set_index("method").loc["grpo", "snips"] == "-"  # GRPO has no anchor to weight
    assert table.set_index("method").loc["abpo", "true_ctr"] == 0.3
    assert "log" not in table and "round" not in table
    assert round_metric_names(ROUND_0, [5, 10]) == [
        "true_ctr",
        "ndcg_at_10",
        "prior_exposed_share_at_10",
        "gini_gap_at_10",
    ]


def test_ope_agreement_by_hand() -> None:
    out = ope_agreement(ROUNDS)
    # truth orders abpo > grpo > sft_positive; IPS orders grpo > abpo > sft_positive: one discordant pair of 3
    assert out["ips_ctr"]["kendall_tau"] == pytest.approx(1 / 3)
    assert out["snips_ctr"]["kendall_tau"] == pytest.approx(1.0)
    assert out["ips_ctr"]["mean_abs_error"] == pytest.approx((0.05 + 0.02 + 0.02) / 3)
    assert ope_agreement({"a": [{"snips_ctr": 0.1, "ips_ctr": 0.1}]}) == {}  # no truth on real data
    assert math.isnan(ope_agreement({"a": ROUNDS["grpo"]})["ips_ctr"]["kendall_tau"])  # one method: undefined
