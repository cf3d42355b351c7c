"""Statistics over per-unit metric values, one implementation each: the percentile bootstrap (per-user CIs of the
offline evaluation, paired CIs of the LLM report, CIs of weighted ratios such as PairAUC_IPS), paired tests, Kendall's
tau, Spearman's rho and Student-t intervals over seeds.

The confidence level is always a parameter (the spec's ``eval.confidence``); nothing here picks one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

CHUNK_CELLS = 2_000_000  # resample indices drawn per chunk: bounds memory; the draws do not depend on it
Averaging = Literal["counts", "gather"]
#: A seed: an int, or a named stream of ``lure.rng`` (what the pipeline passes, so no two bootstraps share draws).
Seed = int | np.random.SeedSequence


def bootstrap_means(
    values: np.ndarray, resamples: int, seed: Seed, average: Averaging = "counts", chunk_cells: int = CHUNK_CELLS
) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples of the rows of ``values``: shape (resamples,) or (resamples, cols).

    The resample indices are ``default_rng(seed).integers(0, m, size=(resamples, m))`` (m = rows), drawn in
    chunks of about ``chunk_cells`` indices (the stream is the same for any chunk size); every column uses the
    same resamples. Two ways to average a resample, equal up to rounding (their last bits differ):

    * ``"counts"``: per-row counts of each resample times the values / m: one matrix product per chunk for all
      columns at once (the offline evaluation's per-user CIs and comparisons); the last bits may depend on the
      chunk's shape, so keep ``chunk_cells`` fixed for reproducible numbers;
    * ``"gather"``: the mean of the resampled values, ``values[idx].mean(axis=1)`` (the LLM report's paired CIs).
    """
    x = np.asarray(values, dtype=np.float64)
    flat = x.ndim == 1
    x2 = x[:, None] if flat else x
    m = x2.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, x2.shape[1]))
    chunk = max(1, chunk_cells // max(m, 1))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, m, size=(b, m))
        if average == "counts":
            counts = np.bincount((idx + (np.arange(b) * m)[:, None]).ravel(), minlength=b * m).reshape(b, m)
            out[start : start + b] = counts.astype(np.float64) @ x2 / m
        elif average == "gather":
            means = x[idx].mean(axis=1)
            out[start : start + b] = means[:, None] if flat else means
        else:
            raise ValueError(f"unknown average {average!r}")
    return out[:, 0] if flat else out


def bootstrap_ci(
    values: np.ndarray, resamples: int, confidence: float, seed: Seed, average: Averaging = "counts"
) -> tuple:
    """Percentile bootstrap interval of the mean over rows: (low, high) floats, or arrays for a 2-D input.

    The interval is the (1 − c)/2 and 1 − (1 − c)/2 quantiles of :func:`bootstrap_means`. ``resamples = 0`` or no
    rows gives (None, None).
    """
    x = np.asarray(values, dtype=np.float64)
    if resamples <= 0 or x.shape[0] == 0:
        return (None, None)
    means = bootstrap_means(x, resamples, seed, average)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    if x.ndim == 1:
        return float(low), float(high)
    return low, high


def bootstrap_ratio_ci(
    numerator: np.ndarray, denominator: np.ndarray, resamples: int, confidence: float, seed: Seed
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of sum(numerator) / sum(denominator) over rows (e.g. users), resampling rows.

    Why a ratio: a weighted share such as PairAUC_IPS (LURE Eq. 2) is sum_u num_u / sum_u den_u, not a mean of
    per-row values. Each resample's ratio is the ratio of its two column means (:func:`bootstrap_means`, one
    resample for both columns). Every row must have denominator > 0. ``resamples = 0`` or no rows gives
    (None, None).
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError("numerator and denominator must be 1-D arrays of the same length")
    if resamples <= 0 or num.size == 0:
        return (None, None)
    if not (den > 0).all():
        raise ValueError("every row of a ratio bootstrap needs a positive denominator")
    means = bootstrap_means(np.stack([num, den], axis=1), resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means[:, 0] / means[:, 1], [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int, confidence: float, seed: Seed) -> dict[str, float]:
    """Mean of a − b over paired samples with its percentile bootstrap CI (the same resampled samples for both).

    ``{"diff", "ci_low", "ci_high"}``; without resamples or samples only ``{"diff"}``. Resample means by
    ``"gather"`` (see :func:`bootstrap_means`).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    out = {"diff": float(d.mean())}
    if resamples and d.size:
        lo, hi = bootstrap_ci(d, resamples, confidence, seed, average="gather")
        out.update(ci_low=lo, ci_high=hi)
    return out


def paired_test(
    a: np.ndarray, b: np.ndarray, resamples: int, confidence: float, seed: int
) -> dict[str, float | int | None]:
    """Two models on the same users: mean difference a − b, its paired-bootstrap CI, Wilcoxon signed-rank test.

    The CI is :func:`bootstrap_ci` of a − b (``"counts"``; None without resamples). The Wilcoxon test drops zero
    differences (scipy's default); with no non-zero difference p = 1.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired arrays must have the same shape")
    d = a - b
    low, high = bootstrap_ci(d, resamples, confidence, seed)
    if np.any(d != 0):
        import scipy.stats

        res = scipy.stats.wilcoxon(a, b)
        stat, p = float(res.statistic), float(res.pvalue)
    else:
        stat, p = 0.0, 1.0
    return {
        "mean_diff": float(d.mean()) if len(d) else None,
        "ci_low": low,
        "ci_high": high,
        "statistic": stat,
        "p_value": p,
        "n": len(d),
    }


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b between two scorings of the same models (nan with < 2 models or a constant scoring)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    import scipy.stats

    return float(scipy.stats.kendalltau(x, y).statistic)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (``scipy.stats.spearmanr``; nan with < 2 values or a constant input)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    import scipy.stats

    return float(scipy.stats.spearmanr(x, y).statistic)


def t_interval(values: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """(mean, low, high) of a Student-t interval for the mean; low = high = mean with one value."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half
