"""Propensity models: the world's true exposure probability, the logistic model's prior correction, the
popularity formula, the 'true' model, the checked wrapper and the metrics. Each test checks one claim of
docs/propensity.md (or docs/world.md) and can fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.special import expit

from lure.data.splits import holdout_split
from lure.data.world import generate_world, logging_logits
from lure.io import write_parquet
from lure.propensity import (
    FittedPropensity,
    LogisticPropensity,
    MissingPropensityError,
    PropensityData,
    fit_propensity,
    propensity_report,
)
from lure.spec.pairs import PairsSpec
from lure.spec.propensity import PropensitySpec
from lure.spec.source import WorldSpec

SMALL = {"n_users": 150, "n_items": 120}
SEED = 7


@pytest.fixture(scope="module")
def world(world_150x120_seed7):
    """``generate_world(WorldSpec(**SMALL), seed=SEED)``, built once per session (conftest.py)."""
    return world_150x120_seed7


@pytest.fixture(scope="module")
def prepared(prepared_150x120_seed7) -> Path:
    """``prepare`` of that world (seed SEED), built once per session (conftest.py). Read only."""
    return prepared_150x120_seed7


@pytest.fixture(scope="module")
def logistic(logistic_150x120_seed7) -> FittedPropensity:
    """The logistic model fitted on ``prepared`` (seed 0), once per session (conftest.py)."""
    return logistic_150x120_seed7


# ------------------------------------------------------------------------------------------ true exposure


def test_exposure_prob_is_the_evaluation_rounds_probability(world):
    """p(u, i) of the held-out round: 0 on the items u clicked in training, sums to m over the other items."""
    spec = WorldSpec(**SMALL)
    p = world.exposure_prob
    assert p.shape == (SMALL["n_users"], SMALL["n_items"]) and p.dtype == np.float32
    assert (p >= 0).all() and (p <= 1).all()
    clicked = world.exposures.loc[world.exposures["clicked"], ["user_id", "item_id"]].to_numpy()
    assert (p[clicked[:, 0], clicked[:, 1]] == 0).all()
    candidates = (p > 0).sum(axis=1)
    big = candidates > 2 * spec.eval_exposures_per_user
    assert big.sum() > 50 and (~big).sum() > 0  # both regimes occur in this small world
    np.testing.assert_allclose(p[big].sum(axis=1, dtype=np.float64), spec.eval_exposures_per_user, rtol=1e-4)
    assert (p[~big][p[~big] > 0] == 1).all()  # few candidates left: every one is shown
    # Exploration share: no candidate below eps * m / |C_u|.
    floor = spec.eval_exploration * spec.eval_exposures_per_user / candidates[big]
    assert (np.where(p[big] > 0, p[big], 1) >= floor[:, None] * (1 - 1e-5)).all()


def test_exposure_prob_recomputed_from_the_seed(world):
    """p = (1 - eps) (1 - exp(-w theta)) + eps m / |C|, theta solved here by bisection (not the world's Newton)."""
    from scipy.optimize import brentq

    spec = WorldSpec(**SMALL)
    m, eps = spec.eval_exposures_per_user, spec.eval_exploration
    users = np.array([0, 41, 149])
    phi = logging_logits(spec, SEED, users).astype(np.float64)
    for row, user in enumerate(users):
        log = world.exposures[world.exposures["user_id"] == user]
        w = np.exp(phi[row] - phi[row].max())
        w[log.loc[log["clicked"], "item_id"].to_numpy()] = 0.0
        n_cand = int((w > 0).sum())
        if n_cand <= 2 * m:
            expected = (w > 0).astype(float)
        else:
            theta = brentq(lambda t, w=w: np.sum(1 - np.exp(-w * t)) - m, 0.0, 1e12, xtol=1e-12, rtol=1e-12)
            expected = np.where(w > 0, (1 - eps) * (1 - np.exp(-w * theta)) + eps * m / n_cand, 0.0)
        np.testing.assert_allclose(world.exposure_prob[user], expected, rtol=2e-4, atol=1e-7)


def test_the_round_draws_exposures_and_clicks_with_those_probabilities(world):
    """Horvitz-Thompson checks on the realised round: sum 1/p over the shown items estimates the number of
    candidates, and sum click/p the relevance mass; both within 4 standard errors (the world's own draws)."""
    rnd = world.evaluation
    p = world.exposure_prob
    np.testing.assert_allclose(rnd["propensity"], p[rnd["user_id"], rnd["item_id"]], rtol=1e-6)
    np.testing.assert_array_equal(rnd["relevance"], world.relevance[rnd["user_id"], rnd["item_id"]])
    cand = p > 0
    w = 1.0 / rnd["propensity"].to_numpy()
    # Var of the HT total of y: sum (1 - p) / p * y^2 over all candidates.
    for y_shown, y_all in (
        (np.ones(len(rnd)), cand.astype(float)),
        (rnd["clicked"].to_numpy(float), world.relevance * cand),
    ):
        total = float((w * y_shown).sum())
        target = float(y_all.sum())
        sd = float(np.sqrt(np.where(cand, (1 - p) / np.where(cand, p, 1), 0) * y_all).sum())
        assert abs(total - target) < 4 * sd, (total, target, sd)
    assert rnd.groupby("user_id")["position"].apply(lambda s: s.tolist() == list(range(len(s)))).all()


def test_prepare_writes_exposure_prob(prepared):
    saved = np.load(prepared / "truth" / "exposure_prob.npy")
    np.testing.assert_array_equal(saved, generate_world(WorldSpec(**SMALL), seed=SEED).exposure_prob)


# ------------------------------------------------------------------------------------------ logistic model

TRUE_A, TRUE_B = -4.0, 0.6  # P(observed | i) = sigmoid(TRUE_A + TRUE_B * age_bin_i)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A dataset where each (u, i) is observed independently with sigmoid(-4 + 0.6 * age_bin_i); no timestamps.

    The holdout test is a random 20% of each user's observations (the order is random, times are all 0), so the
    training and test events are exchangeable and a correct model must be calibrated on both.
    """
    out = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(1)
    n_users, n_items, bins = 600, 200, 5
    age_bin = np.repeat(np.arange(bins), n_items // bins)
    p_true = expit(TRUE_A + TRUE_B * age_bin)
    obs = rng.random((n_users, n_items)) < p_true[None, :]
    users, items = np.nonzero(obs)
    order = np.lexsort((rng.random(len(users)), users))  # random order within each user
    inter = pd.DataFrame(
        {
            "user_id": users[order],
            "item_id": items[order],
            "timestamp": np.zeros(len(users), dtype=np.int64),
            "rating": 1.0,
            "source": "real",
        }
    )
    counts = np.bincount(items, minlength=n_items)
    catalog = pd.DataFrame(
        {
            "item_id": np.arange(n_items),
            "title": [f"Item {i} (2000)" for i in range(n_items)],
            "genres": np.where(np.arange(n_items) % 2 == 0, "Drama", "Comedy|Drama"),
            "year": 2000 + age_bin,
            "popularity": counts,
            "pop_bin": rng.integers(0, 5, n_items),
            "age_bin": age_bin,
        }
    )
    write_parquet(out / "items.parquet", catalog)
    write_parquet(out / "interactions.parquet", inter)
    train, test = holdout_split(inter, 0.2)  # the split prepare writes
    write_parquet(out / "splits" / "holdout_train.parquet", train)
    write_parquet(out / "splits" / "holdout_test.parquet", test)
    return out, p_true


@pytest.mark.parametrize("max_fit_pairs", [100_000_000, 20_000])
def test_logistic_prior_correction_recovers_the_true_probability(synthetic, max_fit_pairs):
    out, p_true = synthetic
    data = PropensityData.load(out)
    model = LogisticPropensity(negative_ratio=4, max_fit_pairs=max_fit_pairs, seed=0).fit(data)
    assert not model.uses_time_  # all timestamps are 0: hour/weekday dropped
    assert (model.sample_rate_observed_ < 1) == (max_fit_pairs < 100_000)
    users = data.train_users
    uu, ii = np.meshgrid(users, np.arange(data.n_items), indexing="ij")
    pred = model.predict(uu.ravel(), ii.ravel()).reshape(uu.shape)
    density = len(data.train) / pred.size  # observed training pairs / all pairs
    assert pred.mean() == pytest.approx(density, rel=0.05)
    # The training log holds 80% of each user's observations: the model sees 0.8 * p_true per age bin.
    age_bin = data.items["age_bin"].to_numpy()
    for b in range(5):
        target = 0.8 * p_true[age_bin == b][0]
        assert pred[:, age_bin == b].mean() == pytest.approx(target, rel=0.15), b
    # Without the correction the output is the odds of the sample (~1 in 1 + negative_ratio), not a probability.
    uncorrected = expit(np.log(pred / (1 - pred)) - model.correction_)
    assert uncorrected.mean() > 3 * density


def test_logistic_calibrated_on_held_out_when_correctly_specified(synthetic):
    out, _ = synthetic
    model = fit_propensity(PropensitySpec(model={"name": "logistic"}, metrics_sample=100_000), out, seed=0)
    metrics, table = propensity_report(model, out, seed=0)
    assert len(table) == PropensitySpec().calibration_bins
    assert list(table.columns) == ["bin", "n", "pred_mean", "obs_rate", "pred_min", "pred_max"]
    assert metrics["logistic_uses_time"] == 0
    assert metrics["calibration_pred_mean"] == pytest.approx(metrics["calibration_obs_rate"], rel=0.1)
    assert metrics["ece_relative"] < 0.15
    assert "true_spearman" not in metrics  # no truth off the world


def test_logistic_prediction_marginalises_time_of_the_fitted_pipeline(prepared, logistic):
    """predict(u, i) = the sklearn Pipeline's probability averaged over u's own training times (pi << 1)."""
    model = logistic.model
    assert model.uses_time_
    train = pd.read_parquet(prepared / "splits" / "holdout_train.parquet")
    for user in train["user_id"].unique()[:5]:
        times = train.loc[train["user_id"] == user, "timestamp"].to_numpy()
        for item in (0, 60, 119):
            at = model.predict_at(np.full(len(times), user), np.full(len(times), item), times)
            assert model.predict(np.array([user]), np.array([item]))[0] == pytest.approx(at.mean(), rel=0.02)


def test_logistic_ranks_pairs_like_the_true_exposure_on_the_world(prepared, logistic):
    metrics, table = propensity_report(logistic, prepared, seed=0)
    print(f"world 150x120: true_spearman={metrics['true_spearman']:.3f} ece={metrics['ece']:.5f}")
    assert metrics["true_spearman"] > 0.3
    assert np.isfinite(metrics["ece"]) and metrics["ece"] >= 0
    assert (np.diff(table["pred_mean"]) > 0).all()
    for name in metrics:
        assert name.replace("_", "").isalnum(), name  # MLflow-legal, flat


def test_true_model_scores_perfectly_and_only_on_the_world(prepared, synthetic):
    fitted = fit_propensity(PropensitySpec(model={"name": "true"}), prepared, seed=0)
    truth = np.load(prepared / "truth" / "exposure_prob.npy")
    u, i = np.array([0, 5, 9]), np.array([3, 2, 1])
    np.testing.assert_array_equal(fitted.raw(u, i), truth[u, i])
    metrics, _ = propensity_report(fitted, prepared, seed=0)
    assert metrics["true_spearman"] == pytest.approx(1.0) and metrics["true_male"] == 0.0
    with pytest.raises(FileNotFoundError, match="only the simulated world"):
        fit_propensity(PropensitySpec(model={"name": "true"}), synthetic[0], seed=0)


def test_popularity_formula_by_hand(tmp_path):
    catalog = pd.DataFrame(
        {
            "item_id": np.arange(4),
            "title": list("abcd"),
            "genres": "Drama",
            "year": 2000,
            "popularity": 0,
            "pop_bin": 0,
            "age_bin": 0,
        }
    )
    # item counts in training: 4, 1, 0, 2
    train = pd.DataFrame({"user_id": [0, 0, 1, 1, 2, 2, 3], "item_id": [0, 1, 0, 3, 0, 3, 0]})
    train = train.assign(timestamp=0, rating=1.0, source="real")
    write_parquet(tmp_path / "items.parquet", catalog)
    write_parquet(tmp_path / "splits" / "holdout_train.parquet", train)
    fitted = fit_propensity(PropensitySpec(model={"name": "popularity", "eta": 0.5}, clip_min=0.01), tmp_path, 0)
    items = np.arange(4)
    users = np.zeros(4, dtype=np.int64)
    np.testing.assert_allclose(fitted.raw(users, items), [1.0, 0.5, 0.0, np.sqrt(0.5)])
    np.testing.assert_allclose(fitted.predict(users, items), [1.0, 0.5, 0.01, np.sqrt(0.5)])


# --------------------------------------------------------------------------------------- checked wrapper


class _Stub:
    name = "stub"

    def __init__(self, values: np.ndarray):
        self.values = values

    def predict(self, user_ids, item_ids):
        return self.values[item_ids]


def _wrap(values, known=(True, True, False)) -> FittedPropensity:
    return FittedPropensity(_Stub(np.asarray(values, dtype=np.float64)), 0.01, 0.9, np.array(known), len(values), {})


def test_missing_or_nan_propensities_raise_never_default():
    fitted = _wrap([0.5, np.nan, 0.2])
    np.testing.assert_allclose(fitted.predict(np.array([0, 1]), np.array([0, 2])), [0.5, 0.2])
    with pytest.raises(MissingPropensityError, match="NaN"):
        fitted.predict(np.array([0]), np.array([1]))
    with pytest.raises(MissingPropensityError, match="no training interactions"):
        fitted.predict(np.array([2]), np.array([0]))  # a user the model never saw
    with pytest.raises(MissingPropensityError, match="no training interactions"):
        fitted.predict(np.array([7]), np.array([0]))  # an id beyond the table
    with pytest.raises(MissingPropensityError, match="item ids outside"):
        fitted.predict(np.array([0]), np.array([3]))
    with pytest.raises(MissingPropensityError, match="NaN"):
        fitted.predict(np.array([0.0, np.nan]), np.array([0, 0]))
    with pytest.raises(MissingPropensityError, match="outside"):
        _wrap([1.5, 0.1, 0.1]).predict(np.array([0]), np.array([0]))
    np.testing.assert_allclose(_wrap([0.0001, 0.95, 0.5]).predict(np.zeros(3, int), np.arange(3)), [0.01, 0.9, 0.5])


def test_save_load_round_trip(tmp_path, prepared, logistic):
    path = logistic.save(tmp_path / "propensity.joblib")
    loaded = FittedPropensity.load(path)
    u = np.repeat(np.unique(pd.read_parquet(prepared / "splits" / "holdout_train.parquet")["user_id"])[:10], 12)
    i = np.tile(np.arange(0, 120, 10), 10)
    np.testing.assert_array_equal(loaded.predict(u, i), logistic.predict(u, i))
    assert loaded.settings == logistic.settings and loaded.name == "logistic"
    import joblib

    joblib.dump({"not": "a model"}, tmp_path / "other.joblib")
    with pytest.raises(TypeError, match="not a FittedPropensity"):
        FittedPropensity.load(tmp_path / "other.joblib")


def test_fit_is_deterministic_by_seed(prepared, logistic):
    again = fit_propensity(PropensitySpec(model={"name": "logistic"}), prepared, seed=0)
    other = fit_propensity(PropensitySpec(model={"name": "logistic"}), prepared, seed=1)
    u, i = np.full(120, 3), np.arange(120)
    np.testing.assert_array_equal(again.predict(u, i), logistic.predict(u, i))
    assert not np.array_equal(other.raw(u, i), logistic.raw(u, i))


def test_spec_sections_validate_and_describe_every_field():
    for section in (PropensitySpec, PairsSpec):
        for name, field in section.model_fields.items():
            assert field.description, f"{section.__name__}.{name}"
    with pytest.raises(ValidationError, match="clip_min must be < clip_max"):
        PropensitySpec(clip_min=0.5, clip_max=0.5)
    with pytest.raises(ValidationError, match="must not repeat"):
        PairsSpec(match_on=["pop_bin", "pop_bin"])
    with pytest.raises(ValidationError):
        PropensitySpec(model={"name": "logistic", "c": 0})
