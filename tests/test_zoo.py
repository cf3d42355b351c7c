"""The classic zoo: shapes and dtypes, hand-checked popularity and ItemKNN, top-K exclusion and order,
determinism of ALS/BPR, and that the learned models beat random on a small simulated world."""

from __future__ import annotations

import math
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from lure.estimators import naive
from lure.metrics.ranking import list_ranks
from lure.models import (
    ALSRecommender,
    BPRRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    RandomRecommender,
    Recommender,
    build_model,
    score_pairs,
    top_k,
)
from lure.models.zoo import ZOO as ZOO_REGISTRY
from lure.models.zoo import _top_mask
from lure.spec.eval import EvalSpec, ZooModel

ZOO = ("random", "popularity", "itemknn", "als", "bpr")
FAST = EvalSpec(als={"factors": 8, "iterations": 5}, bpr={"factors": 8, "iterations": 10}, itemknn={"neighbors": 5})


def _toy(n_users: int = 30, n_items: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = rng.random((n_users, n_items)) < 0.3
    cells[:, 0] = True  # everyone has item 0, so no user is empty
    u, i = np.nonzero(cells)
    return pd.DataFrame({"user_id": u, "item_id": i})


@pytest.mark.parametrize("name", ZOO)
def test_fit_and_score_shape(name: str) -> None:
    train = _toy()
    model = build_model(name, FAST).fit(train, 30, 20, seed=0)
    assert isinstance(model, Recommender)
    scores = model.score(np.array([3, 0, 29]))
    assert scores.shape == (3, 20) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(model.score(np.array([0])), scores[1:2])  # independent of the batch


def test_registry() -> None:
    spec = EvalSpec(als={"factors": 7, "iterations": 3, "regularization": 0.5}, itemknn={"neighbors": 4})
    als = build_model("als", spec)
    assert isinstance(als, ALSRecommender) and (als.factors, als.iterations, als.regularization) == (7, 3, 0.5)
    assert build_model("itemknn", spec).neighbors == 4
    assert isinstance(build_model("bpr"), BPRRecommender)
    with pytest.raises(KeyError, match="unknown zoo model"):
        build_model("svd")
    assert ZOO_REGISTRY.names() == list(get_args(ZooModel)), "every model the spec accepts has a definition"
    for definition in ZOO_REGISTRY:  # its parameter section is the eval field of the same name
        assert definition.spec is None or EvalSpec.model_fields[definition.name].annotation is definition.spec


def test_spec_topk_covers_ks() -> None:
    with pytest.raises(ValidationError, match="topk must be >= max"):
        EvalSpec(ks=[5, 50], topk=20)
    with pytest.raises(ValidationError):
        EvalSpec(bpr={"learning_rate": 0})
    assert EvalSpec().topk == 100


def test_popularity_ranks_by_count() -> None:
    train = pd.DataFrame({"user_id": [0, 1, 2, 0, 1, 0, 3], "item_id": [2, 2, 2, 0, 0, 3, 3]})
    model = PopularityRecommender().fit(train, 5, 5, seed=0)
    np.testing.assert_array_equal(model.score(np.array([4]))[0], [2, 0, 3, 2, 0])
    lists = top_k(model, np.array([4, 0]), train, k=5)
    # user 4 (no train items): 2 (3), then 0 and 3 tied at 2 -> lower id first, then 1 and 4 tied at 0
    assert lists[lists.user_id == 4].item_id.tolist() == [2, 0, 3, 1, 4]
    # user 0 trained on 0, 2, 3: only 1 and 4 remain, so the list is shorter than k
    assert lists[lists.user_id == 0].item_id.tolist() == [1, 4]
    assert lists[lists.user_id == 0]["rank"].tolist() == [1, 2]


def test_itemknn_cosine_by_hand() -> None:
    # users x items        i0 i1 i2 i3
    #   u0                  1  1  0  0
    #   u1                  1  1  1  0
    #   u2                  0  1  1  1
    #   u3                  1  0  0  1
    # |U_i| = 3, 3, 2, 2.  co(0,1) = 2 -> 2/3;  co(0,2) = co(0,3) = co(1,3) = 1 -> 1/sqrt(6);
    # co(1,2) = 2 -> 2/sqrt(6);  co(2,3) = 1 -> 1/2.
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1]])
    u, i = np.nonzero(x)
    train = pd.DataFrame({"user_id": u, "item_id": i})
    s6 = 1 / math.sqrt(6)
    full = np.array(
        [
            [0, 2 / 3, s6, s6],
            [2 / 3, 0, 2 * s6, s6],
            [s6, 2 * s6, 0, 0.5],
            [s6, s6, 0.5, 0],
        ]
    )
    model = ItemKNNRecommender(neighbors=3).fit(train, 4, 4, seed=0)
    np.testing.assert_allclose(model.w.toarray(), full, rtol=1e-6)
    # u0 = {i0, i1}: score_j = sim(0, j) + sim(1, j) = (2/3, 2/3, 3/sqrt6, 2/sqrt6)
    np.testing.assert_allclose(model.score(np.array([0]))[0], [2 / 3, 2 / 3, 3 * s6, 2 * s6], rtol=1e-6)
    # one neighbour per target column: col0 <- i1 (2/3), col1 <- i2 (2/sqrt6), col2 <- i1 (2/sqrt6), col3 <- i2 (1/2)
    pruned = ItemKNNRecommender(neighbors=1).fit(train, 4, 4, seed=0)
    expect = np.zeros((4, 4))
    expect[1, 0], expect[2, 1], expect[1, 2], expect[2, 3] = 2 / 3, 2 * s6, 2 * s6, 0.5
    np.testing.assert_allclose(pruned.w.toarray(), expect, rtol=1e-6)
    np.testing.assert_allclose(pruned.score(np.array([0]))[0], [2 / 3, 0, 2 * s6, 0], rtol=1e-6)
    # blocks of target items give the same matrix
    blocked = ItemKNNRecommender(neighbors=3, block_cells=4).fit(train, 4, 4, seed=0)
    np.testing.assert_allclose(blocked.w.toarray(), full, rtol=1e-6)


def test_top_mask_ties_go_to_lower_index() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 3.0, -np.inf], [-np.inf, -np.inf, 2.0, -np.inf, -np.inf]], np.float32)
    np.testing.assert_array_equal(_top_mask(scores, 2), [[0, 1, 1, 0, 0], [0, 0, 1, 0, 0]])


@pytest.mark.parametrize("name", ZOO)
def test_top_k_excludes_train_and_is_sorted(name: str) -> None:
    train = _toy(seed=1)
    model = build_model(name, FAST).fit(train, 30, 20, seed=0)
    users = np.arange(30)
    lists = top_k(model, users, train, k=8, batch_size=7)  # batches that do not divide the users
    assert list(lists.columns) == ["user_id", "rank", "item_id", "score"]
    assert lists.merge(train, on=["user_id", "item_id"]).empty
    assert (lists.groupby("user_id")["score"].diff().dropna() <= 0).all()
    assert (lists.groupby("user_id")["rank"].diff().dropna() == 1).all()
    assert lists.groupby("user_id").size().le(8).all()
    # the stored scores are the model's, and every excluded-from-list unseen item scores no higher
    full = model.score(users)
    np.testing.assert_array_equal(lists["score"], full[lists.user_id, lists.item_id])
    seen = np.zeros((30, 20), bool)
    seen[train.user_id, train.item_id] = True
    listed = np.zeros((30, 20), bool)
    listed[lists.user_id, lists.item_id] = True
    last = lists.groupby("user_id")["score"].min().reindex(users).to_numpy()
    assert (np.where(~seen & ~listed, full, -np.inf).max(axis=1) <= last).all()
    pd.testing.assert_frame_equal(lists, top_k(model, users, train, k=8))  # batching does not matter


def test_score_pairs_matches_full_scores() -> None:
    train = _toy(seed=2)
    model = build_model("als", FAST).fit(train, 30, 20, seed=0)
    rng = np.random.default_rng(0)
    u, i, j = rng.integers(0, 30, 100), rng.integers(0, 20, 100), rng.integers(0, 20, 100)
    si, sj = score_pairs(model, u, i, j, batch_size=4)
    full = model.score(np.arange(30))
    np.testing.assert_array_equal(si, full[u, i])
    np.testing.assert_array_equal(sj, full[u, j])


@pytest.mark.parametrize("name", ["als", "bpr", "random"])
def test_deterministic_given_seed(name: str) -> None:
    train = _toy(seed=3)
    a = build_model(name, FAST).fit(train, 30, 20, seed=5).score(np.arange(30))
    b = build_model(name, FAST).fit(train, 30, 20, seed=5).score(np.arange(30))
    c = build_model(name, FAST).fit(train, 30, 20, seed=6).score(np.arange(30))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_is_uniform_and_seeded() -> None:
    scores = RandomRecommender().fit(_toy(), 30, 20, seed=0).score(np.arange(30))
    assert 0.0 <= scores.min() and scores.max() < 1.0
    assert abs(scores.mean() - 0.5) < 0.05 and len(np.unique(scores)) > 550


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lure.data.prepare import prepare
    from lure.spec.data import DataSpec
    from lure.spec.source import WorldSpec

    out = tmp_path_factory.mktemp("world")
    prepare(DataSpec(source=WorldSpec(n_users=500, n_items=200)), 0, out)
    return out


def test_learned_models_beat_random_on_world(small_world: Path) -> None:
    train = pd.read_parquet(small_world / "splits" / "loo_train.parquet")
    held = pd.concat(
        [pd.read_parquet(small_world / "splits" / f"loo_{p}.parquet") for p in ("valid", "test")], ignore_index=True
    )
    n_users, n_items = np.load(small_world / "truth" / "relevance.npy").shape
    users, group = np.unique(held["user_id"].to_numpy(), return_inverse=True)
    recall = {}
    for name in ZOO:
        model = build_model(name).fit(train, n_users, n_items, seed=0)
        lists = top_k(model, users, train, k=10)
        ranks = list_ranks(lists, held["user_id"].to_numpy(), held["item_id"].to_numpy())
        recall[name] = naive(group, ranks, len(users), 10)[0].mean()
    assert recall["random"] < 0.1  # about 10 / 200 unseen items
    for name in ("itemknn", "als", "bpr"):
        assert recall[name] > 2.5 * recall["random"], recall
    assert recall["popularity"] > recall["random"], recall
