"""Statistics (lure.stats): the bootstrap core and its intervals, paired bootstrap and paired test, Kendall's tau and
the t interval over seeds, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lure.stats import (
    bootstrap_ci,
    bootstrap_means,
    kendall_tau,
    paired_bootstrap,
    paired_test,
    t_interval,
)


@pytest.mark.parametrize("average", ["counts", "gather"])
def test_bootstrap_means_are_means_of_the_seeded_resamples(average: str) -> None:
    # The documented draws: default_rng(seed).integers(0, m, size=(resamples, m)); each mean = mean of x[idx_row].
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    idx = np.random.default_rng(3).integers(0, 5, size=(40, 5))
    expect = x[idx].mean(axis=1)
    np.testing.assert_allclose(bootstrap_means(x, 40, 3, average), expect, rtol=1e-15)
    # first resample by hand: mean of x at its five indices
    assert bootstrap_means(x, 1, 3, average)[0] == pytest.approx(sum(x[i] for i in idx[0]) / 5, rel=1e-15)
    # a constant column resamples to itself: every mean is 7
    np.testing.assert_allclose(bootstrap_means(np.full(9, 7.0), 20, 0, average), 7.0, rtol=1e-15)
    # 2-D: one column per metric, the same resamples for every column (column 2 = 2 * column 1)
    both = bootstrap_means(np.stack([x, 2 * x], axis=1), 40, 3, average)
    np.testing.assert_allclose(both[:, 0], expect, rtol=1e-15)
    np.testing.assert_allclose(both[:, 1], 2 * expect, rtol=1e-15)


def test_bootstrap_draws_do_not_depend_on_the_chunk_size() -> None:
    # Memory-bounded chunks must not change the resamples: "gather" averages each resample on its own, so its
    # means are bit for bit the same; "counts" multiplies a chunk's count matrix at once, whose last bits may
    # depend on the chunk's shape (BLAS blocking), so it is the same up to rounding.
    x = np.random.default_rng(0).random(37)
    whole = bootstrap_means(x, 101, 9, "gather", chunk_cells=10**9)
    assert np.array_equal(bootstrap_means(x, 101, 9, "gather", chunk_cells=1), whole)
    assert np.array_equal(bootstrap_means(x, 101, 9, "gather", chunk_cells=37 * 7), whole)
    counts = bootstrap_means(x, 101, 9, "counts", chunk_cells=1)
    np.testing.assert_allclose(counts, whole, rtol=1e-14)
    np.testing.assert_allclose(bootstrap_means(x, 101, 9, "counts", chunk_cells=37 * 7), counts, rtol=1e-14)


def test_bootstrap_ci_percentiles_by_hand() -> None:
    # x = (0, 1): a resample mean is 0 (p 1/4), 0.5 (p 1/2) or 1 (p 1/4). With 4000 resamples the 2.5% and 97.5%
    # quantiles fall inside the blocks of 0s and 1s, the 40% and 60% quantiles (confidence 0.2) inside the 0.5s.
    x = np.array([0.0, 1.0])
    assert bootstrap_ci(x, 4000, 0.95, 0) == (0.0, 1.0)
    assert bootstrap_ci(x, 4000, 0.2, 0) == (0.5, 0.5)
    assert bootstrap_ci(x, 0, 0.95, 0) == (None, None)
    assert bootstrap_ci(np.empty(0), 100, 0.95, 0) == (None, None)


def test_bootstrap_ci_contains_the_mean_and_narrows_like_the_normal_interval() -> None:
    rng = np.random.default_rng(1)
    small, large = rng.random(100), rng.random(10_000)
    lo_s, hi_s = bootstrap_ci(small, 2000, 0.95, 0)
    lo_l, hi_l = bootstrap_ci(large, 2000, 0.95, 0)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    # percentile interval of a mean ~ mean +- 1.96 sd / sqrt(n): half width 1.96 * 0.2887 / 100 = 0.00566
    assert (hi_l - lo_l) / 2 == pytest.approx(1.96 * large.std() / math.sqrt(len(large)), rel=0.1)
    lo2, hi2 = bootstrap_ci(np.stack([small, 2 * small], axis=1), 500, 0.9, 4)  # 2-D = column-wise, same seed
    assert (lo2[0], hi2[0]) == pytest.approx(bootstrap_ci(small, 500, 0.9, 4), rel=1e-12)
    assert (lo2[1], hi2[1]) == pytest.approx((2 * lo2[0], 2 * hi2[0]), rel=1e-12)


def test_paired_bootstrap_by_hand() -> None:
    a, b = np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 0.0])
    # d = (1, 0, 0, 1): diff = 2/4 = 0.5; every resample mean is in {0, 1/4, ..., 1}
    out = paired_bootstrap(a, b, 2000, 0.95, 1)
    assert out["diff"] == 0.5 and set(out) == {"diff", "ci_low", "ci_high"}
    assert 0.0 <= out["ci_low"] < 0.5 < out["ci_high"] <= 1.0
    assert out == paired_bootstrap(a, b, 2000, 0.95, 1)  # seeded
    assert paired_bootstrap(a, b, 0, 0.95, 1) == {"diff": 0.5}  # no resamples: no interval


def test_paired_bootstrap_reproduces_the_llm_reports_resampling() -> None:
    # The LLM report's numbers: d[idx].mean(axis=1) over idx = default_rng(seed).integers(0, n, (resamples, n)),
    # then the 2.5% / 97.5% quantiles. Bit for bit (the "counts" averaging differs in the last bits here).
    rng = np.random.default_rng(5)
    a, b = rng.random(301), rng.random(301)
    d = a - b
    means = d[np.random.default_rng(7).integers(0, 301, size=(1000, 301))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert paired_bootstrap(a, b, 1000, 0.95, 7) == {"diff": float(d.mean()), "ci_low": lo, "ci_high": hi}


def test_paired_test_wilcoxon_by_hand() -> None:
    b = np.zeros(5)
    # d = (1, 2, 3, 4, 5): W- = 0 -> statistic 0; exact two-sided p = 2 * 1/2^5 = 0.0625
    res = paired_test(np.arange(1.0, 6.0), b, 0, 0.95, 0)
    assert res == {"mean_diff": 3.0, "ci_low": None, "ci_high": None, "statistic": 0.0, "p_value": 0.0625, "n": 5}
    # d = (1, -2, 3, 4, 5): W- = rank(|-2|) = 2; sign patterns with W- <= 2: {}, {1}, {2} -> p = 2 * 3/32 = 0.1875
    res = paired_test(np.array([1.0, -2.0, 3.0, 4.0, 5.0]), b, 0, 0.95, 0)
    assert res["statistic"] == 2.0 and res["p_value"] == pytest.approx(0.1875, abs=1e-12)
    assert res["mean_diff"] == pytest.approx(11 / 5, abs=1e-15)
    assert paired_test(b, b, 0, 0.95, 0)["p_value"] == 1.0  # no non-zero difference
    with pytest.raises(ValueError):
        paired_test(b, np.zeros(4), 0, 0.95, 0)


def test_paired_test_detects_a_real_difference() -> None:
    rng = np.random.default_rng(2)
    b = rng.random(300)
    better = b + 0.05 + 0.1 * rng.standard_normal(300)
    res = paired_test(better, b, 1000, 0.95, 0)
    assert res["p_value"] < 1e-4 and res["ci_low"] > 0
    assert (res["ci_low"], res["ci_high"]) == bootstrap_ci(better - b, 1000, 0.95, 0)  # the "counts" interval
    null = paired_test(b + 0.1 * rng.standard_normal(300), b, 1000, 0.95, 0)
    assert null["p_value"] > 0.01 and null["ci_low"] < 0 < null["ci_high"]


def test_kendall_tau_by_hand() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0, abs=1e-15)  # 6 concordant pairs
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0, abs=1e-15)  # 6 discordant
    # (1,2) C, (1,3) C, (2,3) D -> (2 - 1) / 3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3, abs=1e-15)
    # tau-b with a tie in x: 2 concordant, 0 discordant, 3 pairs, 1 tied in x -> 2 / sqrt((3 - 1) * 3) = 0.8165
    assert kendall_tau([1, 2, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6), abs=1e-12)
    assert math.isnan(kendall_tau([1.0], [2.0])) and math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_t_interval_by_hand() -> None:
    # mean 2, s = 1; with 2 degrees of freedom t_p = (2p - 1) / sqrt(2p(1 - p)):
    # t_0.975 = 0.95 / sqrt(0.04875) = 4.30265, half width t * s / sqrt(3) = 2.48414
    mean, lo, hi = t_interval([1.0, 2.0, 3.0], 0.95)
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) / math.sqrt(3)
    assert mean == 2.0 and lo == pytest.approx(2 - half, rel=1e-12) and hi == pytest.approx(2 + half, rel=1e-12)
    _, lo90, _ = t_interval([1.0, 2.0, 3.0], 0.90)  # t_0.95 = 0.9 / sqrt(0.095) = 2.91999 -> half 1.68585
    assert lo90 == pytest.approx(2 - 0.9 / math.sqrt(2 * 0.95 * 0.05) / math.sqrt(3), rel=1e-12)
    assert t_interval([5.0], 0.95) == (5.0, 5.0, 5.0)
