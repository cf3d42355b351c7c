"""The prepare stage: canonical layout, bins, statistics and byte-level determinism."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lure.data.canonical import age_bins, gini, item_table, popularity_bins, quantile_bins
from lure.data.prepare import prepare
from lure.layout import Prepared
from lure.spec.data import DataSpec

SMALL = {"source": {"name": "world", "n_users": 150, "n_items": 120}}
FILES = [
    "items.parquet",
    "interactions.parquet",
    *(f"splits/{kind}_{part}.parquet" for kind in ("loo", "window") for part in ("train", "valid", "test")),
    "splits/holdout_train.parquet",
    "splits/holdout_test.parquet",
    "truth/relevance.npy",
    "truth/exposure_prob.npy",
    "truth/exposures.parquet",
    "truth/evaluation.parquet",
    "truth/mar.parquet",
    "truth/users.parquet",
    "truth/items.parquet",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    data = DataSpec.model_validate(SMALL)
    return data, out, prepare(data, seed=1, out_dir=out)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_written_files_are_the_layouts(prepared):
    _, out, _ = prepared
    p = Prepared(out)
    world = [p.items, p.interactions, *p.split_files(), p.relevance, p.exposure_prob, p.exposures,
             p.evaluation_round, p.mar, p.truth_users, p.truth_items]  # fmt: skip
    assert sorted(path.relative_to(out).as_posix() for path in world) == sorted(FILES) == sorted(_files(out))
    assert p.read_items().equals(pd.read_parquet(out / "items.parquet"))


def test_layout_and_columns(prepared):
    data, out, _ = prepared
    assert sorted(_files(out)) == sorted(FILES)  # and no temporary files left behind
    items = pd.read_parquet(out / "items.parquet")
    assert list(items.columns) == ["item_id", "title", "genres", "year", "popularity", "pop_bin", "age_bin"]
    assert items["item_id"].tolist() == list(range(data.source.n_items))
    inter = pd.read_parquet(out / "interactions.parquet")
    assert list(inter.columns) == ["user_id", "item_id", "timestamp", "rating", "source"]
    assert inter["timestamp"].dtype == np.int64 and (inter["rating"] == 1.0).all()
    assert set(inter["source"]) == {"real"}
    window = pd.read_parquet(out / "splits" / "window_train.parquet")
    assert list(window.columns) == ["user_id", "history", "item_id", "timestamp"]
    relevance = np.load(out / "truth" / "relevance.npy")
    assert relevance.shape == (data.source.n_users, data.source.n_items) and relevance.dtype == np.float32
    exposures = pd.read_parquet(out / "truth" / "exposures.parquet")
    assert {"propensity", "draw_prob", "clicked", "relevance", "click_prob"} <= set(exposures.columns)


def test_truth_items_carry_the_title_prior_and_items_parquet_does_not(prepared, tmp_path):
    data, out, _ = prepared
    truth = Prepared(out).read_truth_items()
    assert list(truth.columns) == ["item_id", "popularity_prior", "quality", "title_prior", "formulaic_title"]
    assert truth["item_id"].tolist() == list(range(data.source.n_items))
    assert truth["formulaic_title"].sum() == round(data.source.title_prior_share * data.source.n_items)
    # what a model reads (items.parquet) says nothing of the prior
    assert not {"title_prior", "formulaic_title"} & set(Prepared(out).read_items().columns)
    assert Prepared(tmp_path).read_truth_items() is None  # a real dataset has no truth: the LLM stages skip


def test_interactions_are_the_clicks_of_kept_users_in_sequence_order(prepared):
    data, out, stats = prepared
    inter = pd.read_parquet(out / "interactions.parquet")
    exposures = pd.read_parquet(out / "truth" / "exposures.parquet")
    held_out = pd.read_parquet(out / "truth" / "evaluation.parquet")
    train = pd.read_parquet(out / "splits" / "holdout_train.parquet")
    test = pd.read_parquet(out / "splits" / "holdout_test.parquet")
    # The k-core counts training clicks; the holdout is the evaluation round's clicks of the kept users.
    counts = train.groupby("user_id").size()
    assert counts.min() >= data.min_interactions_per_user
    clicks = exposures[exposures["clicked"] & exposures["user_id"].isin(counts.index)]
    round_clicks = held_out[held_out["clicked"] & held_out["user_id"].isin(counts.index)]
    assert len(clicks) == len(train) and len(round_clicks) == len(test) and len(inter) == len(train) + len(test)
    assert set(map(tuple, test[["user_id", "item_id"]].to_numpy())) == set(
        map(tuple, round_clicks[["user_id", "item_id"]].to_numpy())
    )
    # Every held-out click comes after its user's last training click.
    last_train = train.groupby("user_id")["timestamp"].max()
    assert (test["timestamp"].to_numpy() > last_train.loc[test["user_id"]].to_numpy()).all()
    sorted_copy = inter.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(inter, sorted_copy)
    assert stats["users"] == inter["user_id"].nunique() and stats["interactions"] == len(inter)


def test_same_seed_gives_byte_identical_files_other_seed_differs(tmp_path):
    data = DataSpec.model_validate(SMALL)
    stats_a = prepare(data, seed=5, out_dir=tmp_path / "a")
    stats_b = prepare(data, seed=5, out_dir=tmp_path / "b")
    prepare(data, seed=6, out_dir=tmp_path / "c")
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a.keys() == b.keys() == c.keys()
    for name in a:
        assert a[name] == b[name], name
        assert a[name] != c[name], name
    assert stats_a == stats_b


def test_pop_bin_zero_holds_the_most_popular_items(prepared):
    data, out, _ = prepared
    items = pd.read_parquet(out / "items.parquet")
    sizes = items["pop_bin"].value_counts().sort_index()
    assert list(sizes.index) == list(range(data.bins.n_pop_bins))
    assert sizes.max() - sizes.min() <= 1  # equal-frequency bins, none empty
    means = items.groupby("pop_bin")["popularity"].mean().to_numpy()
    assert (np.diff(means) < 0).all() and means.argmax() == 0
    # Ranked bins: every item of a lower bin is at least as popular as every item of a higher bin.
    per_bin = items.groupby("pop_bin")["popularity"]
    assert (per_bin.min().to_numpy()[:-1] >= per_bin.max().to_numpy()[1:]).all()


def test_age_bin_zero_holds_the_earliest_items(prepared):
    data, out, _ = prepared
    items = pd.read_parquet(out / "items.parquet")
    inter = pd.read_parquet(out / "interactions.parquet")
    first = inter.groupby("item_id")["timestamp"].min()
    items["first"] = items["item_id"].map(first).astype(float).fillna(np.inf)
    assert items["age_bin"].nunique() == data.bins.n_age_bins
    per_bin = items.groupby("age_bin")["first"]
    assert (per_bin.max().to_numpy()[:-1] <= per_bin.min().to_numpy()[1:]).all()


def test_bins_break_ties_by_rank_so_no_bin_is_empty():
    # Heavy ties (most items with zero interactions) would collapse value-based quantile edges.
    popularity = np.array([9, 0, 0, 0, 0, 0, 0, 0, 0, 3])
    bins = popularity_bins(popularity, 5)
    assert np.bincount(bins).tolist() == [2, 2, 2, 2, 2]
    assert bins[0] == 0 and bins[9] == 0  # the two popular items share the head bin
    first_seen = np.array([5.0, np.nan, 1.0, np.nan, 3.0, 2.0])
    years = np.array([2000, 1990, 2010, 1980, 2000, 2000])
    assert age_bins(first_seen, 3, tiebreak=years).tolist() == [1, 2, 0, 2, 1, 0]
    assert quantile_bins(np.array([2, 0, 1]), 5).tolist() == [1, 2, 0]  # fewer items than bins


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1, 1, 1, 1], 0.0), ([0, 0, 0, 1], 0.75), ([1, 2, 3, 4], 0.25), ([4, 3, 2, 1], 0.25), ([0, 0], 0.0)],
)
def test_gini_hand_computed(values, expected):
    # [1, 2, 3, 4]: sum_i (2i - n - 1) x_i = -3*1 - 1*2 + 1*3 + 3*4 = 10; 10 / (4 * 10) = 0.25.
    assert gini(np.array(values)) == pytest.approx(expected)


def test_stats_are_flat_numbers_with_mlflow_legal_names(prepared):
    data, out, stats = prepared
    for key in ("users", "items", "interactions", "density", "popularity_gini", "tail_share"):
        assert key in stats
    for key, value in stats.items():
        assert re.fullmatch(r"[A-Za-z0-9_]+", key), key
        assert isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value), key
    items = pd.read_parquet(out / "items.parquet")
    inter = pd.read_parquet(out / "interactions.parquet")
    assert stats["density"] == pytest.approx(len(inter) / (inter["user_id"].nunique() * len(items)))
    counts = np.bincount(inter["item_id"], minlength=len(items))
    assert stats["popularity_gini"] == pytest.approx(gini(counts))
    tail = items.loc[items["pop_bin"] == data.bins.n_pop_bins - 1, "item_id"]
    assert stats["tail_share"] == pytest.approx(inter["item_id"].isin(tail).mean())
    assert 0 <= stats["tail_share"] < 0.2 < stats["head_share"]  # the logging policy favours the head
    assert stats["loo_test"] == stats["users"]


def test_data_spec_validation():
    with pytest.raises(ValueError, match="bins"):
        DataSpec.model_validate(
            {
                "source": {
                    "name": "world",
                    "n_items": 10,
                    "exposures_per_step": 5,
                    "mar_exposures_per_user": 5,
                    "eval_exposures_per_user": 5,
                },
                "bins": {"n_pop_bins": 12},
            }
        )
    with pytest.raises(ValueError, match="Input tag 'movielens-10m' found using 'name' does not match"):
        DataSpec.model_validate({"source": "movielens-10m"})
    for model in (DataSpec, DataSpec.model_fields["bins"].annotation, DataSpec.model_fields["splits"].annotation):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


def test_bins_come_from_the_training_interactions_only(prepared):
    """Pairs are matched on the bins and labelled on the held-out clicks: those must not move a bin."""
    data, out, _ = prepared
    items = pd.read_parquet(out / "items.parquet")
    train = pd.read_parquet(out / "splits" / "holdout_train.parquet")
    test = pd.read_parquet(out / "splits" / "holdout_test.parquet")
    np.testing.assert_array_equal(items["popularity"], np.bincount(train["item_id"], minlength=len(items)))
    with_test = np.bincount(pd.concat([train, test])["item_id"], minlength=len(items))
    assert not np.array_equal(items["popularity"], with_test)
    rebuilt = item_table(
        items[["item_id", "title", "genres", "year"]], train, data.bins.n_pop_bins, data.bins.n_age_bins
    )
    pd.testing.assert_frame_equal(rebuilt[["pop_bin", "age_bin"]], items[["pop_bin", "age_bin"]])
