"""Leave-last-out and sliding-window splits, on a hand-made log and on a prepared world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from lure.data.canonical import sort_interactions
from lure.data.prepare import prepare
from lure.data.splits import loo_split, window_samples, window_split
from lure.spec.data import DataSpec, SplitsSpec


def _log() -> pd.DataFrame:
    # user 1: items 10, 11, 12, 13 at t = 1..4; user 2: items 20, 21 at t = 2, 5; user 3: item 30 at t = 3.
    # Rows are given shuffled; the canonical order sorts them.
    rows = [(1, 12, 3), (2, 21, 5), (1, 10, 1), (3, 30, 3), (1, 13, 4), (2, 20, 2), (1, 11, 2)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame["rating"] = 1.0
    frame["source"] = "real"
    return sort_interactions(frame)


def test_loo_holds_out_last_and_second_last_interaction():
    train, valid, test = loo_split(_log())
    assert test[["user_id", "item_id"]].values.tolist() == [[1, 13], [2, 21], [3, 30]]
    assert valid[["user_id", "item_id"]].values.tolist() == [[1, 12], [2, 20]]
    assert train[["user_id", "item_id"]].values.tolist() == [[1, 10], [1, 11]]


def test_window_samples_hand_made():
    samples = window_samples(_log(), history_max=2)
    got = [(u, list(h), i, t) for u, h, i, t in samples.itertuples(index=False)]
    assert got == [(1, [10], 11, 2), (1, [10, 11], 12, 3), (1, [11, 12], 13, 4), (2, [20], 21, 5)]


def test_window_split_cuts_by_target_time():
    samples = window_samples(_log(), history_max=2)  # target times 2, 3, 4, 5
    train, valid, test = window_split(samples, [0.5, 0.25, 0.25])
    assert train["timestamp"].tolist() == [2, 3] and valid["timestamp"].tolist() == [4]
    assert test["timestamp"].tolist() == [5]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("splits")
    data = DataSpec.model_validate(
        {"source": {"name": "world", "n_users": 150, "n_items": 120}, "splits": {"history_max": 4}}
    )
    prepare(data, seed=2, out_dir=out)
    read = lambda name: pd.read_parquet(out / "splits" / f"{name}.parquet")  # noqa: E731
    return data, pd.read_parquet(out / "interactions.parquet"), read


def test_loo_on_world_test_is_each_users_last_interaction(prepared):
    _, inter, read = prepared
    train, valid, test = read("loo_train"), read("loo_valid"), read("loo_test")
    last = inter.groupby("user_id").tail(1).reset_index(drop=True)
    pd.testing.assert_frame_equal(test, last)
    assert test["user_id"].is_unique and valid["user_id"].is_unique
    assert len(train) + len(valid) + len(test) == len(inter)
    # Every training interaction precedes the user's validation one, which precedes the test one.
    t_valid = valid.set_index("user_id")["timestamp"]
    t_test = test.set_index("user_id")["timestamp"]
    assert (train.groupby("user_id")["timestamp"].max() < t_valid.loc[train["user_id"].unique()]).all()
    assert (t_valid < t_test.loc[t_valid.index]).all()


def test_window_histories_are_short_and_strictly_before_the_target(prepared):
    data, inter, read = prepared
    parts = [read(f"window_{p}") for p in ("train", "valid", "test")]
    samples = pd.concat(parts, ignore_index=True)
    # One sample per interaction that has an earlier one.
    assert len(samples) == len(inter) - inter["user_id"].nunique()
    seqs = {u: g for u, g in inter.groupby("user_id")}
    for row in samples.sample(300, random_state=0).itertuples(index=False):
        history = list(row.history)
        assert 1 <= len(history) <= data.splits.history_max
        seq = seqs[row.user_id]
        pos = int(np.flatnonzero((seq["timestamp"] == row.timestamp).to_numpy())[0])
        assert seq["item_id"].iloc[pos] == row.item_id
        assert history == seq["item_id"].iloc[max(0, pos - data.splits.history_max) : pos].tolist()
        assert (seq["timestamp"].iloc[max(0, pos - len(history)) : pos] < row.timestamp).all()


def test_window_split_is_time_ordered_with_the_configured_ratios(prepared):
    data, _, read = prepared
    train, valid, test = (read(f"window_{p}") for p in ("train", "valid", "test"))
    assert train["timestamp"].max() <= valid["timestamp"].min()
    assert valid["timestamp"].max() <= test["timestamp"].min()
    n = len(train) + len(valid) + len(test)
    for part, ratio in zip((train, valid, test), data.splits.ratios, strict=True):
        assert abs(len(part) - ratio * n) <= 1


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ([0.8, 0.1, 0.2], "sum to 1"),
        ([0.8, 0.2], "3 positive numbers"),
        ([1.0, 0.0, 0.0], "3 positive numbers"),
        ([0.9, 0.2, -0.1], "3 positive numbers"),
    ],
)
def test_bad_ratios_rejected(ratios, message):
    with pytest.raises(ValidationError, match=message):
        SplitsSpec(ratios=ratios)


def test_history_max_bounds():
    with pytest.raises(ValidationError):
        SplitsSpec(history_max=0)
    with pytest.raises(ValidationError):
        SplitsSpec(history_max=201)
    assert SplitsSpec(ratios=[0.7, 0.2, 0.1]).ratios == [0.7, 0.2, 0.1]
