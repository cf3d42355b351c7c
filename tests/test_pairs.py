"""Matched pairs: eligibility and matching of every pair, LURE Eq. 1 weights, balance, determinism, both modes.
Each test checks one claim of docs/propensity.md ("Pairs") and can fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lure.data.prepare import prepare
from lure.pairs import balance_diagnostics, load_candidates, sample_pairs, smd
from lure.propensity import FittedPropensity, MissingPropensityError, fit_propensity
from lure.spec.data import DataSpec
from lure.spec.pairs import PairsSpec
from lure.spec.propensity import PropensitySpec

SMALL = {"n_users": 150, "n_items": 120}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare(DataSpec.model_validate({"source": {"name": "world", **SMALL}}), seed=3, out_dir=out)
    return out


@pytest.fixture(scope="module")
def propensity(prepared) -> FittedPropensity:
    return fit_propensity(PropensitySpec(model={"name": "logistic"}), prepared, seed=0)


@pytest.fixture(scope="module")
def splits(prepared) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    items = pd.read_parquet(prepared / "items.parquet")
    train = pd.read_parquet(prepared / "splits" / "holdout_train.parquet")
    test = pd.read_parquet(prepared / "splits" / "holdout_test.parquet")
    return items, train, test


def _seen(train: pd.DataFrame, test: pd.DataFrame) -> set[tuple[int, int]]:
    both = pd.concat([train, test])
    return set(zip(both["user_id"].tolist(), both["item_id"].tolist(), strict=True))


@pytest.mark.parametrize("match_on", [["pop_bin", "age_bin"], ["pop_bin", "age_bin", "genre"]])
def test_labeled_pairs_are_eligible_and_matched(prepared, propensity, splits, match_on):
    items, train, test = splits
    spec = PairsSpec(mode="labeled", per_user=6, match_on=match_on)
    pairs = sample_pairs(spec, prepared, propensity, seed=0)
    assert list(pairs.columns) == [
        "user_id",
        "item_i",
        "item_j",
        "label",
        *match_on,
        "pi_i",
        "pi_j",
        "w",
        "r_i",
        "r_j",
        "true_pref",
    ]
    assert (pairs["label"] == 1).all()
    seen = _seen(train, test)
    held_out = set(zip(test["user_id"].tolist(), test["item_id"].tolist(), strict=True))
    for u, i, j in pairs[["user_id", "item_i", "item_j"]].itertuples(index=False):
        assert (u, i) in held_out  # i: a held-out positive
        assert (u, j) not in seen  # j: never interacted (neither train nor test)
    keys = items.assign(genre=items["genres"].str.split("|").str[0]).set_index("item_id")[match_on]
    np.testing.assert_array_equal(keys.loc[pairs["item_i"]].to_numpy(), keys.loc[pairs["item_j"]].to_numpy())
    np.testing.assert_array_equal(pairs[match_on].to_numpy(), keys.loc[pairs["item_i"]].to_numpy())


def test_unmatched_positives_are_dropped_and_counted(prepared, propensity, splits):
    """With genre matching some held-out positives have no never-interacted partner in their cell."""
    items, train, test = splits
    match_on = ["pop_bin", "age_bin", "genre"]
    pairs = sample_pairs(PairsSpec(per_user=4, match_on=match_on), prepared, propensity, seed=0)
    keyed = items.assign(genre=items["genres"].str.split("|").str[0])
    cell = keyed.groupby(match_on).ngroup().to_numpy()
    seen = _seen(train, test)
    expected = 0  # brute force: positives whose cell has no item the user never touched
    for u, i in test[["user_id", "item_id"]].drop_duplicates().itertuples(index=False):
        if not any((u, j) not in seen for j in np.flatnonzero(cell == cell[i])):
            expected += 1
    assert expected > 0
    assert pairs.attrs["pairs_unmatched"] == expected
    used = set(pairs["item_i"].astype(str) + "-" + pairs["user_id"].astype(str))
    assert all(
        f"{i}-{u}" not in used
        for u, i in test[["user_id", "item_id"]].itertuples(index=False)
        if not any((u, j) not in seen for j in np.flatnonzero(cell == cell[i]))
    )


def test_every_user_gets_per_user_pairs_cycling_through_positives(prepared, propensity, splits):
    items, train, test = splits
    per_user = 5
    pairs = sample_pairs(PairsSpec(per_user=per_user), prepared, propensity, seed=0)
    assert (pairs.groupby("user_id").size() == per_user).all()
    assert pairs["user_id"].nunique() == pairs.attrs["pairs_users"]
    # Each user's positives are used evenly: counts differ by at most one ...
    counts = pairs.groupby(["user_id", "item_i"]).size().groupby("user_id").agg(["min", "max"])
    assert (counts["max"] - counts["min"] <= 1).all()
    # ... and every matchable positive is used before any repeats (brute-force matchable count per user).
    cell = items.groupby(["pop_bin", "age_bin"]).ngroup().to_numpy()
    seen = _seen(train, test)
    matchable = (
        test.assign(
            ok=[
                any((u, j) not in seen for j in np.flatnonzero(cell == cell[i]))
                for u, i in test[["user_id", "item_id"]].itertuples(index=False)
            ]
        )
        .groupby("user_id")["ok"]
        .sum()
    )
    distinct = pairs.groupby("user_id")["item_i"].nunique()
    np.testing.assert_array_equal(distinct, np.minimum(per_user, matchable.loc[distinct.index]))
    assert (matchable >= per_user).sum() > 10 and (matchable < per_user).sum() > 10


def test_eq1_weight_by_hand(prepared, splits):
    """w = 1/max(pi_i, 1e-6) + 1/max(pi_j, 1e-6): a propensity of 0.5 on even items and 0.25 on odd ones."""
    items, train, _ = splits

    class Halves:
        name = "halves"

        def predict(self, user_ids, item_ids):
            return np.where(item_ids % 2 == 0, 0.5, 0.25)

    known = np.zeros(int(train["user_id"].max()) + 1, dtype=bool)
    known[train["user_id"].to_numpy()] = True
    fitted = FittedPropensity(Halves(), 1e-3, 1.0, known, len(items), {})
    pairs = sample_pairs(PairsSpec(per_user=5), prepared, fitted, seed=1)
    expected = np.where(pairs["item_i"] % 2 == 0, 2.0, 4.0) + np.where(pairs["item_j"] % 2 == 0, 2.0, 4.0)
    np.testing.assert_array_equal(pairs["w"].to_numpy(), expected)
    assert set(np.unique(expected)) == {4.0, 6.0, 8.0}


def test_weights_come_from_the_propensity_and_differ_across_pairs(prepared, propensity):
    """The public code gave every judged pair the same weight; ours follow each pair's own propensities."""
    pairs = sample_pairs(PairsSpec(per_user=10), prepared, propensity, seed=0)
    u, i, j = (pairs[c].to_numpy() for c in ("user_id", "item_i", "item_j"))
    np.testing.assert_array_equal(pairs["pi_i"], propensity.predict(u, i))
    np.testing.assert_array_equal(pairs["pi_j"], propensity.predict(u, j))
    np.testing.assert_allclose(pairs["w"], 1 / pairs["pi_i"] + 1 / pairs["pi_j"], rtol=1e-12)
    distinct_pairs = len(pairs.drop_duplicates(["user_id", "item_i", "item_j"]))
    assert pairs["w"].nunique() > 0.9 * distinct_pairs
    assert pairs["w"].std() > 0.1 * pairs["w"].mean()


def test_missing_propensity_raises(prepared, propensity):
    known = propensity.known_users.copy()
    known[np.flatnonzero(known)[0]] = False
    crippled = FittedPropensity(propensity.model, 1e-3, 1.0, known, propensity.n_items, {})
    with pytest.raises(MissingPropensityError):
        sample_pairs(PairsSpec(), prepared, crippled, seed=0)


def test_matching_removes_bin_imbalance(prepared, propensity):
    spec = PairsSpec(per_user=10)
    candidates = load_candidates(spec.match_on, prepared)
    pairs = sample_pairs(spec, prepared, propensity, seed=0, candidates=candidates)
    bal = balance_diagnostics(pairs, candidates, seed=0)
    print({k: round(v, 3) for k, v in bal.items()})
    # Held-out positives are more popular and older than a random unseen item ...
    assert bal["smd_log_pop_before"] > 0.4 and abs(bal["smd_pop_bin_before"]) > 0.4
    # ... the matched partner is in the same bins (exactly), and close in the continuous variables too.
    assert bal["smd_pop_bin_after"] == 0.0 and bal["smd_age_bin_after"] == 0.0
    assert abs(bal["smd_log_pop_after"]) < 0.3 < abs(bal["smd_log_pop_before"])
    assert abs(bal["smd_age_bin_before"]) > 0.3


def test_smd_by_hand():
    assert smd(np.array([1.0, 3.0]), np.array([0.0, 2.0])) == pytest.approx(1.0)  # diff 1, both var 1
    assert smd(np.ones(3), np.ones(3)) == 0.0


def test_world_truth_columns(prepared, propensity):
    pairs = sample_pairs(PairsSpec(per_user=5), prepared, propensity, seed=0)
    rel = np.load(prepared / "truth" / "relevance.npy")
    np.testing.assert_array_equal(pairs["r_i"], rel[pairs["user_id"], pairs["item_i"]])
    np.testing.assert_array_equal(pairs["r_j"], rel[pairs["user_id"], pairs["item_j"]])
    np.testing.assert_array_equal(pairs["true_pref"], np.sign(pairs["r_i"] - pairs["r_j"]).astype(np.int8))
    # Held-out positives are truly more relevant than their matched never-interacted partner, mostly.
    assert (pairs["true_pref"] == 1).mean() > 0.6


def test_deterministic_by_seed(prepared, propensity):
    spec = PairsSpec(per_user=8)
    a = sample_pairs(spec, prepared, propensity, seed=4)
    b = sample_pairs(spec, prepared, propensity, seed=4)
    c = sample_pairs(spec, prepared, propensity, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a["item_j"].equals(c["item_j"])


def test_unlabeled_mode_two_unseen_items_of_one_cell(prepared, propensity, splits):
    items, train, test = splits
    pairs = sample_pairs(PairsSpec(mode="unlabeled", per_user=6), prepared, propensity, seed=0)
    assert (pairs["label"] == 0).all() and len(pairs) == 6 * test["user_id"].nunique()
    assert (pairs["item_i"] != pairs["item_j"]).all()
    seen = _seen(train, test)
    for u, i, j in pairs[["user_id", "item_i", "item_j"]].itertuples(index=False):
        assert (u, i) not in seen and (u, j) not in seen
    keys = items.set_index("item_id")[["pop_bin", "age_bin"]]
    np.testing.assert_array_equal(keys.loc[pairs["item_i"]].to_numpy(), keys.loc[pairs["item_j"]].to_numpy())


def test_max_users_takes_a_seeded_subset(prepared, propensity):
    pairs = sample_pairs(PairsSpec(per_user=3, max_users=20), prepared, propensity, seed=0)
    assert pairs["user_id"].nunique() == 20 and len(pairs) == 60
    again = sample_pairs(PairsSpec(per_user=3, max_users=20), prepared, propensity, seed=0)
    pd.testing.assert_frame_equal(pairs, again)
