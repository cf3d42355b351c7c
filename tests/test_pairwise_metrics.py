"""PairAUC_IPS (LURE Eq. 2), RJS (tau_w) and judge accuracy (lure.metrics.pairwise) on hand-computed examples, and
the bootstrap of a weighted ratio (lure.stats.bootstrap_ratio_ci). Each test checks one claim of docs/judge.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lure.metrics.pairwise import judge_accuracy, pair_matches, pairwise_metrics, table_frame
from lure.pairs import pair_ips_weight
from lure.spec.judge import PairwiseMetricsSpec
from lure.stats import bootstrap_ratio_ci

# Five judged pairs of two users (pair: user, Eq. 1 weight w, s(i), s(j), judge label y, pop_bin):
#   A: u0, w=2, 0.9 > 0.1 -> predicts i, y=+1 -> match
#   B: u0, w=4, 0.2 < 0.5 -> predicts j, y=+1 -> no match
#   C: u0, w=1, 0.3 = 0.3 -> score tie, Eq. 2 predicts i, y=-1 -> no match ('half': 1/2)
#   D: u1, w=3, 0.1 < 0.7 -> predicts j, y=-1 -> match
#   E: u1, w=5, 0.6 > 0.4 -> judge tie y=0 -> 'non_match': counted, no match; 'exclude': dropped; 'half': 1/2
FRAME = pd.DataFrame(
    {
        "user_id": [0, 0, 0, 1, 1],
        "w": [2.0, 4.0, 1.0, 3.0, 5.0],
        "score_i": [0.9, 0.2, 0.3, 0.1, 0.6],
        "score_j": [0.1, 0.5, 0.3, 0.7, 0.4],
        "pop_bin": [0, 0, 1, 1, 1],
    }
)
Y = np.array([1, 1, -1, -1, 0])
V = np.ones(5)


def metrics(frame=FRAME, y=Y, v=V, resamples=0, **options):
    return pairwise_metrics(frame, y, v, PairwiseMetricsSpec(**options), resamples, 0.9, seed=0)


def test_paper_rules_by_hand():
    r = metrics()["all"]
    # u0: W = 2 + 4 + 1 = 7, matched weight 2 -> a = 2/7, tau = 4/7 - 1 = -3/7
    # u1: W = 3 + 5 = 8, matched weight 3 -> a = 3/8, tau = -1/4
    # PairAUC = (2 + 3) / (7 + 8) = 1/3;  tau_w = (7 * -3/7 + 8 * -1/4) / 15 = (-3 - 2) / 15 = -1/3
    assert r["pair_auc_ips"]["mean"] == pytest.approx(1 / 3)
    assert r["rjs"]["mean"] == pytest.approx(-1 / 3)
    assert (r["pairs"], r["users"], r["weight"]) == (5, 2, 15.0)
    assert r["pair_auc_ips"]["ci_low"] is None  # no resamples


def test_unweighted_ablation_by_hand():
    r = metrics(ips=False)["all"]
    # u0: 1 match of 3 -> a = 1/3, tau = -1/3;  u1: 1 of 2 -> a = 1/2, tau = 0
    # PairAUC = 2/5;  tau_w = (3 * -1/3 + 2 * 0) / 5 = -1/5
    assert r["pair_auc_ips"]["mean"] == pytest.approx(2 / 5)
    assert r["rjs"]["mean"] == pytest.approx(-1 / 5)


def test_judge_tie_choices_by_hand():
    # exclude: E leaves; u1: W = 3, all matched -> tau = 1;  PairAUC = (2 + 3) / (7 + 3) = 1/2;  tau_w = (-3 + 3) / 10
    r = metrics(label_ties="exclude")["all"]
    assert r["pair_auc_ips"]["mean"] == pytest.approx(0.5) and r["rjs"]["mean"] == pytest.approx(0.0)
    assert r["pairs"] == 4
    # half: E adds 5 * 1/2 to the matches -> PairAUC = (2 + 3 + 2.5) / 15 = 1/2
    assert metrics(label_ties="half")["all"]["pair_auc_ips"]["mean"] == pytest.approx(0.5)


def test_score_tie_choices_by_hand():
    m_first, _ = pair_matches(FRAME["score_i"], FRAME["score_j"], Y, PairwiseMetricsSpec())
    m_half, _ = pair_matches(FRAME["score_i"], FRAME["score_j"], Y, PairwiseMetricsSpec(score_ties="half"))
    assert m_first.tolist() == [1, 0, 0, 1, 0] and m_half.tolist() == [1, 0, 0.5, 1, 0]
    # 'first' with y = +1 on the tied pair would be a match: Eq. 2's >= 1/2 rule predicts i
    m_plus, _ = pair_matches([0.3], [0.3], np.array([1]), PairwiseMetricsSpec())
    assert m_plus.tolist() == [1.0]
    # half: C adds 1 * 1/2 -> PairAUC = (2 + 3 + 0.5) / 15 = 11/30
    assert metrics(score_ties="half")["all"]["pair_auc_ips"]["mean"] == pytest.approx(11 / 30)


def test_label_weights_drop_and_downweight_by_hand():
    # pair B at half weight: u0 W = 2 + 2 + 1 = 5 -> PairAUC = (2 + 3) / (5 + 8) = 5/13
    v = np.array([1.0, 0.5, 1.0, 1.0, 1.0])
    assert metrics(v=v)["all"]["pair_auc_ips"]["mean"] == pytest.approx(5 / 13)
    # every pair of u1 dropped (weight 0): u1 takes no part; u0 alone: 2/7, tau = -3/7
    v = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    r = metrics(v=v)["all"]
    assert r["users"] == 1 and r["pairs"] == 3
    assert r["pair_auc_ips"]["mean"] == pytest.approx(2 / 7) and r["rjs"]["mean"] == pytest.approx(-3 / 7)
    # nothing left: None, never NaN
    r = metrics(v=np.zeros(5))["all"]
    assert r["pair_auc_ips"]["mean"] is None and r["rjs"]["mean"] is None and r["users"] == 0


def test_popularity_buckets_by_hand():
    r = metrics()
    assert set(r) == {"all", "pop_bin_0", "pop_bin_1"}
    # pop_bin 0: A, B of u0 only: W = 6, matched 2 -> PairAUC = a = 1/3, tau_w = tau = 2/3 - 1 = -1/3
    assert r["pop_bin_0"]["pair_auc_ips"]["mean"] == pytest.approx(1 / 3)
    assert r["pop_bin_0"]["rjs"]["mean"] == pytest.approx(-1 / 3)
    # pop_bin 1: C of u0 (W = 1, no match: tau = -1), D and E of u1 (W = 8, matched 3: tau = -1/4)
    # PairAUC = 3 / 9 = 1/3;  tau_w = (1 * -1 + 8 * -1/4) / 9 = -3/9 = -1/3
    assert r["pop_bin_1"]["pair_auc_ips"]["mean"] == pytest.approx(1 / 3)
    assert r["pop_bin_1"]["rjs"]["mean"] == pytest.approx(-1 / 3)
    table = table_frame(r)
    assert table["bucket"].tolist() == ["ALL", "pop_bin=0", "pop_bin=1"]
    assert table.loc[0, "PairAUC_IPS"] == pytest.approx(1 / 3) and table.loc[2, "users"] == 2


def test_rjs_is_twice_pairauc_minus_one_with_its_bootstrap():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 60, n),
            "w": pair_ips_weight(rng.uniform(0.01, 1, n), rng.uniform(0.01, 1, n)),
            "score_i": rng.random(n),
            "score_j": rng.random(n),
            "pop_bin": rng.integers(0, 3, n),
        }
    )
    y = rng.choice([-1, 0, 1], n)
    r = metrics(frame, y, rng.choice([0.0, 0.5, 1.0], n), resamples=300)
    for cell in r.values():
        auc, rjs = cell["pair_auc_ips"], cell["rjs"]
        assert rjs["mean"] == pytest.approx(2 * auc["mean"] - 1)
        # the same resamples: the percentile interval maps through x -> 2x - 1
        assert rjs["ci_low"] == pytest.approx(2 * auc["ci_low"] - 1)
        assert rjs["ci_high"] == pytest.approx(2 * auc["ci_high"] - 1)
        assert auc["ci_low"] <= auc["mean"] <= auc["ci_high"]


def test_the_ips_weight_is_eq1():
    # 1/0.5 + 1/0.25 = 6;  floors at 1e-6: 1/1e-6 + 1/1 = 1e6 + 1
    assert pair_ips_weight(np.array([0.5, 0.0]), np.array([0.25, 1.0])).tolist() == [6.0, 1e6 + 1]


def test_bootstrap_ratio_resamples_rows():
    num, den = np.array([1.0, 0.0, 3.0, 2.0]), np.array([2.0, 1.0, 4.0, 2.0])
    low, high = bootstrap_ratio_ci(num, den, 2000, 0.8, seed=5)
    # the same draws by hand: resample rows with numpy's generator, ratio of the sums, 10 % and 90 % quantiles
    idx = np.random.default_rng(5).integers(0, 4, size=(2000, 4))
    ratios = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    assert (low, high) == pytest.approx(tuple(np.quantile(ratios, [0.1, 0.9])))
    assert bootstrap_ratio_ci(num, den, 0, 0.8, seed=5) == (None, None)
    with pytest.raises(ValueError, match="positive denominator"):
        bootstrap_ratio_ci(num, np.array([1.0, 0.0, 1.0, 1.0]), 10, 0.8, seed=5)


def test_judge_accuracy_by_hand():
    y = np.array([1, -1, 0, 1, 1, 0])
    ref = np.array([1, 1, 1, -1, 0, 1])
    v = np.array([1, 1, 1, 0.5, 1, 0])
    # scored: reference != 0 and v > 0 -> rows 0..3 (row 4 has no reference, row 5 was dropped)
    # weight 1 + 1 + 1 + 0.5 = 3.5; correct: row 0 -> 1 / 3.5; ties: row 2 -> 1 / 3.5; coverage 4 of 5 with a reference
    acc = judge_accuracy(y, v, ref)
    assert acc == pytest.approx({"accuracy": 2 / 7, "tie_share": 2 / 7, "pairs": 4, "coverage": 0.8})
    # IPS-weighted: w = [1, 1, 1, 1, 9, 9] -> same rows and weights here (rows 4, 5 are out)
    assert judge_accuracy(y, v, ref, w=np.array([1, 1, 1, 1, 9, 9]))["accuracy"] == pytest.approx(2 / 7)
    assert judge_accuracy(y, np.zeros(6), ref) == {"accuracy": None, "tie_share": None, "pairs": 0, "coverage": 0.0}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="labels"):
        pair_matches([1.0], [0.0], np.array([2]), PairwiseMetricsSpec())
    with pytest.raises(ValueError, match="Eq. 1"):
        metrics(FRAME.assign(w=[1.0, 0.0, 1.0, 1.0, 1.0]))
