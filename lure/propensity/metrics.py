"""How good is a fitted propensity model: calibration on held-out data, and (world only) distance to the truth.

Calibration (every dataset). The models estimate pi(u,i) = P(u's *training* log contains i). The held-out
event we can check is "the test split contains (u, i)", for pairs not in the training log; the test log of u
is r_u = n_test_u / n_train_u times as long. If each interaction is an independent chance to observe i, then
1 - pi = (1 - q)^n_train and P(in test | not in train) = 1 - (1 - q)^n_test, so the prediction *for the same
event* is

    pi_test(u,i) = 1 - (1 - pi(u,i))^(r_u)          (~ r_u * pi(u,i) for small pi)

Pairs (u, i) are drawn uniformly from evaluation users (users of holdout_test with training data) x catalogue,
minus the training pairs; they are cut into equal-frequency bins of pi_test; each bin reports the mean pi_test
and the observed share of test pairs, and ece = sum_b (n_b / N) |mean pi_test_b - observed_b|. The clipped
propensities (the ones IPS uses) are calibrated. 'popularity' is a relative score, not a probability, and
'true' is P(exposed), not P(observed): neither is expected to be calibrated for this event.

Truth (world only, ``truth/exposure_prob.npy``: p(u,i), the probability that the held-out evaluation round
shows i to u, which is what IPS on the test set needs): on a uniform sample of (training user, item) pairs that
are not training pairs (the round's candidates; p = 0 on training pairs, which are never test positives), the
Spearman correlation of the raw prediction with p, and the mean absolute log error |log pi_hat - log p| of the
clipped prediction against p clipped to the same [clip_min, clip_max] (so 'true' scores 0). A fitted model
estimates P(observed in training), another event on another scale: its Spearman says whether it ranks exposure
right, its log error also carries the difference of scale (which SNIPS cancels per user and plain IPS does not).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from lure.layout import Prepared
from lure.propensity.data import contains, pair_keys
from lure.propensity.fitted import FittedPropensity
from lure.rng import generator


def propensity_metrics(model: FittedPropensity, prepared_dir: Path, seed: int) -> dict[str, float]:
    """Flat metrics (MLflow-legal names); see :func:`propensity_report` for the calibration table too."""
    return propensity_report(model, prepared_dir, seed)[0]


def propensity_report(model: FittedPropensity, prepared_dir: Path, seed: int) -> tuple[dict[str, float], pd.DataFrame]:
    """(metrics, calibration table). Table columns: bin, n, pred_mean, obs_rate, pred_min, pred_max."""
    prepared = Prepared(prepared_dir)
    train = prepared.read_split("holdout", "train")
    test = prepared.read_split("holdout", "test")
    calib_rng, truth_rng = generator(seed, "propensity.calibration"), generator(seed, "propensity.truth")
    n_sample = int(model.settings["metrics_sample"])

    metrics: dict[str, float] = {}
    table, calib = calibration_table(model, train, test, n_sample, int(model.settings["calibration_bins"]), calib_rng)
    metrics.update(calib)

    exposure_prob = prepared.read_exposure_prob()
    if exposure_prob is not None:
        metrics.update(truth_metrics(model, train, exposure_prob, n_sample, truth_rng))
    summary = getattr(model.model, "summary", None)
    if callable(summary):
        metrics.update(summary())
    return {k: float(v) for k, v in metrics.items()}, table


def calibration_table(
    model: FittedPropensity,
    train: pd.DataFrame,
    test: pd.DataFrame,
    n_sample: int,
    n_bins: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, float]]:
    n_items = model.n_items
    slots = len(model.known_users)
    n_train = np.bincount(train["user_id"].to_numpy(dtype=np.int64), minlength=slots)
    test_users = test["user_id"].to_numpy(dtype=np.int64)
    test_users = test_users[test_users < slots]
    n_test = np.bincount(test_users, minlength=slots)[:slots]
    users = np.flatnonzero((n_test > 0) & model.known_users)
    if len(users) == 0:
        raise ValueError("no evaluation users: holdout_test has no user with training interactions")
    train_keys = pair_keys(train["user_id"].to_numpy(), train["item_id"].to_numpy(), n_items)
    test_keys = pair_keys(test["user_id"].to_numpy(), test["item_id"].to_numpy(), n_items)

    u, i = _uniform_pairs(users, n_items, n_sample, rng, exclude=train_keys)
    y = contains(test_keys, u * n_items + i)
    p = model.predict(u, i)
    ratio = n_test[u] / n_train[u]
    p_test = -np.expm1(ratio * np.log1p(-np.minimum(p, 1.0 - 1e-12)))  # 1 - (1 - p)^r, stable for small p

    order = np.lexsort((rng.random(len(p_test)), p_test))  # ties in random order (clipped values tie)
    bins = min(n_bins, len(p_test))
    bin_of = np.empty(len(p_test), dtype=np.int64)
    bin_of[order] = pd.qcut(np.arange(len(p_test)), q=bins, labels=False)
    frame = pd.DataFrame({"bin": bin_of, "pred": p_test, "obs": y.astype(np.float64)})
    table = (
        frame.groupby("bin")
        .agg(
            n=("pred", "size"),
            pred_mean=("pred", "mean"),
            obs_rate=("obs", "mean"),
            pred_min=("pred", "min"),
            pred_max=("pred", "max"),
        )
        .reset_index()
    )
    weights = table["n"].to_numpy() / len(p_test)
    ece = float((weights * np.abs(table["pred_mean"] - table["obs_rate"])).sum())
    obs_rate = float(y.mean())
    return table, {
        "ece": ece,
        "ece_relative": ece / obs_rate if obs_rate > 0 else float("nan"),
        "calibration_pred_mean": float(p_test.mean()),
        "calibration_obs_rate": obs_rate,
        "calibration_pairs": float(len(p_test)),
        "propensity_mean": float(p.mean()),
        "propensity_min": float(p.min()),
        "propensity_clipped_low_share": float((p <= model.clip_min).mean()),
        "ips_weight_max": float(1.0 / p.min()),
    }


def truth_metrics(
    model: FittedPropensity, train: pd.DataFrame, truth: np.ndarray, n_sample: int, rng: np.random.Generator
) -> dict[str, float]:
    n_items = model.n_items
    users = np.flatnonzero(model.known_users)
    train_keys = pair_keys(train["user_id"].to_numpy(), train["item_id"].to_numpy(), n_items)
    u, i = _uniform_pairs(users, n_items, n_sample, rng, exclude=train_keys)
    raw = model.raw(u, i)
    true = np.asarray(truth[u, i], dtype=np.float64)
    clipped_true = np.clip(true, model.clip_min, model.clip_max)
    log_err = np.log(model.predict(u, i)) - np.log(clipped_true)
    return {
        "true_spearman": float(stats.spearmanr(raw, true).statistic),
        "true_male": float(np.abs(log_err).mean()),
        "true_log_bias": float(log_err.mean()),
        "true_exposure_mean": float(true.mean()),
    }


def _uniform_pairs(
    users: np.ndarray, n_items: int, n: int, rng: np.random.Generator, exclude: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """n pairs uniform over ``users`` x items (without the ``exclude`` keys), drawn with replacement."""
    out_u, out_i, got = [], [], 0
    while got < n:
        want = int((n - got) * 1.2) + 16
        u = users[rng.integers(0, len(users), size=want)]
        i = rng.integers(0, n_items, size=want)
        if exclude is not None:
            ok = ~contains(exclude, u * n_items + i)
            u, i = u[ok], i[ok]
        out_u.append(u[: n - got])
        out_i.append(i[: n - got])
        got += len(out_u[-1])
    return np.concatenate(out_u), np.concatenate(out_i)
