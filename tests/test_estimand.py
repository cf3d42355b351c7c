"""The estimand the world's truth and the offline estimators share (docs/evaluation.md, "The estimand").

The world's held-out log is its evaluation round: independent exposures with known probabilities p(u, i) and clicks
with the static r(u, i). Given the training log, the zoo's lists are fixed and every user's round is an independent
draw, so d_u = IPS_u - truth_u has mean exactly 0 for every user (Horvitz-Thompson) and the mean over n users has
standard error sd(d) / sqrt(n). On one large world this is a z-test per model: plain IPS with the TRUE propensities
must sit within 4 standard errors of 0 for every zoo model, while the naive estimate must not (except for the
random model, whose expected recall is K / |C_u| under any weighting). Library level, no DVC: the same functions the
``evaluate`` stage calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lure.data.prepare import world_interactions
from lure.data.world import generate_world
from lure.evaluation import zoo_per_user
from lure.models.zoo import build_model, top_k
from lure.spec.source import WorldSpec

pytestmark = pytest.mark.slow

N_USERS = 4000
K = 10
ZOO = ("random", "popularity", "itemknn", "als", "bpr")


@pytest.fixture(scope="module")
def per_user():
    spec = WorldSpec(name="world", n_users=N_USERS)
    world = generate_world(spec, seed=3)
    train, test = world_interactions(world)
    users = np.unique(train["user_id"].to_numpy())
    test = test[test["user_id"].isin(users)].reset_index(drop=True)
    lists = {}
    for name in ZOO:
        model = build_model(name).fit(train, spec.n_users, spec.n_items, seed=3)
        lists[name] = top_k(model, users, train, K)
    pi = world.exposure_prob[test["user_id"].to_numpy(), test["item_id"].to_numpy()]
    return zoo_per_user(lists, test, pi, [K], train, world.relevance, None, population=users)


def z_score(per, model: str, estimator: str, metric: str = f"recall_at_{K}") -> tuple[float, float]:
    """Mean of est_u - truth_u over the estimator's users and its z-score (mean / standard error)."""
    at = np.searchsorted(per.users["truth"], per.users[estimator])
    d = per.values[model][estimator][metric] - per.values[model]["truth"][metric][at]
    return float(d.mean()), float(d.mean() / (d.std(ddof=1) / np.sqrt(len(d))))


@pytest.mark.parametrize("model", ZOO)
@pytest.mark.parametrize("metric", [f"recall_at_{K}", f"dcg_at_{K}"])
def test_ips_with_the_true_propensities_is_unbiased_for_the_truth(per_user, model: str, metric: str) -> None:
    mean, z = z_score(per_user, model, "ips", metric)
    assert abs(z) < 4.0, f"{model} {metric}: IPS - truth = {mean:+.5f} (z = {z:+.2f})"


@pytest.mark.parametrize("model", [m for m in ZOO if m != "random"])
def test_the_naive_estimate_is_biased(per_user, model: str) -> None:
    mean, z = z_score(per_user, model, "naive")
    assert abs(z) > 4.0, f"{model}: naive - truth = {mean:+.5f} (z = {z:+.2f}) is within noise of 0"


def test_ips_covers_every_user_of_the_round_and_naive_only_those_with_a_positive(per_user) -> None:
    assert np.array_equal(per_user.users["ips"], per_user.users["truth"])
    assert len(per_user.users["naive"]) < len(per_user.users["ips"])
    assert np.isin(per_user.users["naive"], per_user.users["ips"]).all()


def test_a_held_out_round_the_model_never_saw_changes_nothing_but_the_estimate() -> None:
    """Sanity of the design: the evaluation round is its own stream, so the training log, the truth and hence the
    models do not depend on it (changing its size leaves them bit-identical)."""
    a = generate_world(WorldSpec(name="world", n_users=200, eval_exposures_per_user=20), seed=1)
    b = generate_world(WorldSpec(name="world", n_users=200, eval_exposures_per_user=60), seed=1)
    pd.testing.assert_frame_equal(a.exposures, b.exposures)
    np.testing.assert_array_equal(a.relevance, b.relevance)
    assert len(b.evaluation) > 2 * len(a.evaluation)


# ------------------------------------------------------------------------------ ranking the zoo, 8 models

#: The zoo plus variants (name: (model, eval overrides)), so Kendall's tau moves in steps of 1/28, not 0.2.
VARIANTS = {
    "random": ("random", {}),
    "popularity": ("popularity", {}),
    "itemknn": ("itemknn", {}),
    "itemknn-10": ("itemknn", {"itemknn": {"neighbors": 10}}),
    "als": ("als", {}),
    "als-8": ("als", {"als": {"factors": 8}}),
    "bpr": ("bpr", {}),
    "bpr-8": ("bpr", {"bpr": {"factors": 8}}),
}


@pytest.fixture(scope="module")
def by_propensity(tmp_path_factory):
    """The default world through ``prepare``, eight models, the bias summary for each propensity model."""
    from lure.data.prepare import prepare
    from lure.evaluation import summary_by_propensity
    from lure.layout import Prepared
    from lure.propensity.fitted import fit_alternatives, fit_propensity
    from lure.spec.data import DataSpec
    from lure.spec.eval import EvalSpec
    from lure.spec.propensity import PropensitySpec

    out = tmp_path_factory.mktemp("world")
    prepare(DataSpec(), seed=0, out_dir=out)
    prepared = Prepared(out)
    train, test = prepared.read_split("holdout", "train"), prepared.read_split("holdout", "test")
    relevance = prepared.read_relevance()
    n_users, n_items = relevance.shape
    users = train["user_id"].unique()
    lists = {}
    for name, (model, overrides) in VARIANTS.items():
        fitted = build_model(model, EvalSpec.model_validate(overrides)).fit(train, n_users, n_items, 0)
        lists[name] = top_k(fitted, users, train, K)
    models = {"logistic": fit_propensity(PropensitySpec(), out, 0), **fit_alternatives(PropensitySpec(), out, 0)}
    u, i = test["user_id"].to_numpy(), test["item_id"].to_numpy()
    pis = {name: model.predict(u, i) for name, model in models.items()}
    return summary_by_propensity(lists, test, pis, [K], train, relevance, prepared.read_mar(), population=users)


def test_true_propensities_rank_eight_models_better_than_naive(by_propensity) -> None:
    true = by_propensity["true"]
    assert true["ips_error_ratio"] < 0.2, true
    assert true["kendall_tau_ips_recall_at_10"] > true["kendall_tau_naive_recall_at_10"], true


def test_fitted_logistic_propensities_with_snips_beat_naive(by_propensity) -> None:
    logistic = by_propensity["logistic"]
    assert logistic["snips_error_ratio"] < 0.5, logistic
    assert logistic["kendall_tau_snips_recall_at_10"] >= logistic["kendall_tau_naive_recall_at_10"], logistic


@pytest.mark.xfail(
    strict=True,
    reason="Measured (default world, seed 0): plain IPS with the logistic propensities has error ratio 1.98. The "
    "logistic model estimates P(observed in the training log), on another scale than the round's exposure "
    "probability; plain IPS is not scale-free (SNIPS is: ratio 0.11). docs/evaluation.md reports it.",
)
def test_plain_ips_with_logistic_propensities_beats_naive(by_propensity) -> None:
    assert by_propensity["logistic"]["ips_error_ratio"] < 1.0
