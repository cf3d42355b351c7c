"""The ``prepare`` stage: turn a data source into the canonical parquet files and report dataset statistics.

``data.source`` selects the simulated world or a real dataset (``lure.data.sources``, docs/datasets.md); every
source goes through the same filter, order, bins and splits, so later stages cannot tell them apart.

Layout under ``out_dir`` (file names: ``lure.layout.Prepared``; all writes atomic through ``lure.io``; same
spec and seed -> byte-identical files):

* ``items.parquet``         item_id, title, genres ("|"-joined), year, popularity, pop_bin, age_bin
* ``interactions.parquet``  user_id, item_id, timestamp (int64 unix s), rating (float), source ("real"/"synth")
* ``splits/loo_{train,valid,test}.parquet``     same columns as interactions
* ``splits/window_{train,valid,test}.parquet``  user_id, history (list<int64>), item_id (target), timestamp
* ``splits/holdout_{train,test}.parquet``       same columns as interactions (per-user last share)
* world only, ``truth/``: ``relevance.npy`` (float32 users x items, r(u,i); row = user_id, column = item_id),
  ``exposure_prob.npy``, ``exposures.parquet``, ``mar.parquet``, ``users.parquet``, ``items.parquet``
  (popularity_prior, quality, title_prior, formulaic_title).
* real sources: ``ids/users.parquet`` and ``ids/items.parquet`` (user_id / item_id, raw_id: the dataset's own
  ids); Coat also ``truth/mar.parquet`` (user_id, item_id, rating, clicked): the missing-at-random ratings.

Real sources without timestamps (Coat, LastFM: every timestamp 0) get a seeded random order within each user
before the canonical stable sort, so "last" in LOO, the holdout and window histories means "random", not "file
order" (which is sorted by item id and would put the highest ids into every test set).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lure.data.canonical import (
    INTERACTION_COLUMNS,
    age_bins,
    dataset_stats,
    gini,
    item_table,
    k_core_users,
    sort_interactions,
)
from lure.data.fetch import ensure_raw
from lure.data.sources import RawDataset, SourceDefinition, load_source
from lure.data.splits import holdout_split, loo_split, window_samples, window_split
from lure.data.world import World, generate_world
from lure.io import write_npy, write_parquet
from lure.layout import SPLITS, Prepared
from lure.registry import SOURCES
from lure.rng import generator
from lure.spec.data import DataSpec
from lure.spec.source import WorldSpec

#: Coat's MAR ratings count as a click ("the user likes it") from this rating on when data.source.min_rating is null:
#: the usual positive threshold on 1-5 stars in the debiasing literature on Coat and Yahoo! R3.
MAR_POSITIVE_RATING = 4.0


def world_interactions(world: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training, held-out) interactions: the clicks of the logged exposures and of the evaluation round, as
    interactions with rating 1.0 and source "real" (synthetic ones come later)."""
    return _clicks(world.exposures), _clicks(world.evaluation)


def _clicks(log: pd.DataFrame) -> pd.DataFrame:
    clicks = log[log["clicked"].to_numpy()]
    return pd.DataFrame(
        {
            "user_id": clicks["user_id"].to_numpy(dtype=np.int64),
            "item_id": clicks["item_id"].to_numpy(dtype=np.int64),
            "timestamp": clicks["timestamp"].to_numpy(dtype=np.int64),
            "rating": np.ones(len(clicks), dtype=np.float64),
            "source": np.full(len(clicks), "real", dtype=object),
        }
    )[INTERACTION_COLUMNS]


def prepare(data: DataSpec, seed: int, out_dir: Path) -> dict[str, float]:
    """Generate the world or read a real dataset, write the canonical files under ``out_dir``, return statistics.

    How is the source's definition's (``lure.registry.SOURCES``): the world registers its own below; real datasets
    share :func:`_prepare_real`.
    """
    source = SOURCES.get(data.source.name)
    return (source.prepare or _prepare_real)(data, seed, Path(out_dir))


def _prepare_world(data: DataSpec, seed: int, out_dir: Path) -> dict[str, float]:
    """The world's holdout is its evaluation round (docs/world.md, "The estimand"): train = the clicks of the
    training log (users with at least min_interactions_per_user of them), test = the round's clicks of those users."""
    world = generate_world(data.source, seed)
    raw_train, raw_test = world_interactions(world)
    train = sort_interactions(k_core_users(raw_train, data.min_interactions_per_user))
    test = sort_interactions(raw_test[raw_test["user_id"].isin(train["user_id"].unique())])
    interactions = sort_interactions(pd.concat([train, test], ignore_index=True))
    items = item_table(world.items, train, data.bins.n_pop_bins, data.bins.n_age_bins)
    stats = dataset_stats(items, interactions, data.bins.n_pop_bins)
    stats["users_dropped"] = int(raw_train["user_id"].nunique()) - int(train["user_id"].nunique())
    stats.update(_write_canonical(data, items, interactions, out_dir, holdout=(train, test)))
    _write_truth(world, Prepared(out_dir))
    stats.update(world_stats(world))
    return stats


def _write_canonical(
    data: DataSpec,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    out_dir: Path,
    holdout: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> dict[str, int]:
    """items, interactions and every split (the part that is the same for all sources); returns split sizes.

    ``holdout`` (train, test) is given by sources that define their own held-out log (the world's evaluation
    round); otherwise it is the per-user last ``holdout_fraction`` (:func:`holdout_split`).
    """
    loo = loo_split(interactions)
    window = window_split(window_samples(interactions, data.splits.history_max), data.splits.ratios)
    if holdout is None:
        holdout = holdout_split(interactions, data.splits.holdout_fraction)
    prepared = Prepared(out_dir)
    write_parquet(prepared.items, items)
    write_parquet(prepared.interactions, interactions)
    sizes: dict[str, int] = {}
    for kind, parts in zip(SPLITS, (loo, window, holdout), strict=True):  # loo, window, holdout
        for name, part in zip(SPLITS[kind], parts, strict=True):
            write_parquet(prepared.split(kind, name), part)
            sizes[f"{kind}_{name}"] = len(part)
    return sizes


# ---------------------------------------------------------------- real datasets


def real_interactions(raw: RawDataset, data: DataSpec, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """The source's log after the rating filter and the user k-core, in canonical order; plus filter counts.

    Sources without time are first put in a seeded random order (a permutation of all rows; the later stable
    sort by user then keeps that order within each user, since every timestamp is 0).
    """
    log = raw.interactions
    n_raw = len(log)
    floor = data.source.rating_floor()
    if floor is not None:
        log = log[log["rating"].to_numpy() >= floor]
    if raw.time_kind == "none":
        rng = generator(seed, "prepare.order")
        log = log.iloc[rng.permutation(len(log))]
    log = log.reset_index(drop=True).assign(source=np.full(len(log), "real", dtype=object))[INTERACTION_COLUMNS]
    kept = sort_interactions(k_core_users(log, data.min_interactions_per_user))
    counts = {
        "raw_interactions": n_raw,
        "raw_users": len(raw.users),
        "rating_filtered": n_raw - len(log),
        "users_dropped": int(log["user_id"].nunique()) - int(kept["user_id"].nunique()),
        "rating_mean": float(kept["rating"].mean()) if len(kept) else 0.0,
    }
    return kept, counts


def real_items(raw: RawDataset, train: pd.DataFrame, data: DataSpec) -> pd.DataFrame:
    """items.parquet of a real source, its popularity and bins from the training part of the holdout (``train``):
    the held-out interactions that pairs are labelled on never move a bin. With real unix times, age = first
    (training) interaction time, as for the world.

    Without them (Coat, LastFM: none; Beauty: positions that are not comparable across users) age falls back to
    the release year, and to the item id where the year is unknown (-1): item ids follow the dataset's own id
    order, which for LastFM and the P5 files is roughly order of first appearance in the crawl. For Coat it has
    no time meaning at all; the bins are then only a fixed, arbitrary partition (see docs/datasets.md).
    """
    items = item_table(raw.items, train, data.bins.n_pop_bins, data.bins.n_age_bins)
    if raw.time_kind != "unix":
        year = items["year"].to_numpy(dtype=np.float64)
        items["age_bin"] = age_bins(np.where(year >= 0, year, np.nan), data.bins.n_age_bins)
    return items


def mar_truth(raw: RawDataset, data: DataSpec) -> pd.DataFrame:
    """Coat's MAR ratings with ``clicked`` = rating >= min_rating (or 4 when min_rating is null)."""
    assert raw.mar is not None
    floor = data.source.rating_floor()
    threshold = MAR_POSITIVE_RATING if floor is None else floor
    mar = raw.mar.sort_values(["user_id", "item_id"], kind="stable").reset_index(drop=True)
    return mar.assign(clicked=mar["rating"].to_numpy() >= threshold)


def _prepare_real(data: DataSpec, seed: int, out_dir: Path) -> dict[str, float]:
    ensure_raw(data.source)
    raw = load_source(data.source)
    interactions, counts = real_interactions(raw, data, seed)
    if interactions.empty:
        raise ValueError(
            f"{data.source.name}: no interactions left after min_rating={data.source.rating_floor()} and "
            f"min_interactions_per_user={data.min_interactions_per_user}"
        )
    holdout = holdout_split(interactions, data.splits.holdout_fraction)
    items = real_items(raw, holdout[0], data)
    stats = dataset_stats(items, interactions, data.bins.n_pop_bins)
    stats["users_dropped"] = counts.pop("users_dropped")
    if raw.time_kind != "unix":
        stats["time_span_days"] = 0.0  # no clock: Beauty's timestamps are sequence positions, Coat/LastFM's all 0
    stats.update(_write_canonical(data, items, interactions, out_dir, holdout=holdout))
    prepared = Prepared(out_dir)
    write_parquet(prepared.user_ids, raw.users)
    write_parquet(prepared.item_ids, raw.items[["item_id", "raw_id"]])
    stats.update(counts)
    stats["raw_items"] = len(raw.items)
    stats.update({f"raw_{key}": value for key, value in raw.notes.items()})
    if raw.mar is not None:
        mar = mar_truth(raw, data)
        write_parquet(prepared.mar, mar)
        stats["mar_ratings"] = len(mar)
        stats["mar_users"] = int(mar["user_id"].nunique())
        stats["mar_click_rate"] = float(mar["clicked"].mean()) if len(mar) else 0.0
    return stats


def world_stats(world: World) -> dict[str, float]:
    """Statistics only the world has: exposure concentration, click rates, propensity range, MAR log size."""
    exp = world.exposures
    n_items = len(world.items)
    return {
        "world_exposures": len(exp),
        "world_click_rate": float(exp["clicked"].mean()) if len(exp) else 0.0,
        "world_exposure_gini": gini(np.bincount(exp["item_id"].to_numpy(), minlength=n_items)),
        "world_relevance_mean": float(world.relevance.mean(dtype=np.float64)),
        "world_propensity_min": float(exp["propensity"].min()) if len(exp) else 0.0,
        "world_mar_users": int(world.users["in_mar"].sum()),
        "world_mar_click_rate": float(world.mar["clicked"].mean()) if len(world.mar) else 0.0,
        "world_eval_exposures": len(world.evaluation),
        "world_eval_click_rate": float(world.evaluation["clicked"].mean()) if len(world.evaluation) else 0.0,
        "world_eval_propensity_min": float(world.evaluation["propensity"].min()) if len(world.evaluation) else 0.0,
    }


#: Columns of ``truth/items.parquet``: what the world knows about an item and a model must not see.
TRUTH_ITEM_COLUMNS = ("item_id", "popularity_prior", "quality", "title_prior", "formulaic_title")


def _write_truth(world: World, prepared: Prepared) -> None:
    write_npy(prepared.relevance, world.relevance)
    write_npy(prepared.exposure_prob, world.exposure_prob)
    write_parquet(prepared.exposures, world.exposures)
    write_parquet(prepared.evaluation_round, world.evaluation)
    write_parquet(prepared.mar, world.mar)
    write_parquet(prepared.truth_users, world.users)
    write_parquet(prepared.truth_items, world.items[list(TRUTH_ITEM_COLUMNS)])


SOURCES.add(
    SourceDefinition(
        "world",
        spec=WorldSpec,
        reads=("data.source",),
        raw_files=False,
        prepare=_prepare_world,
        description="the simulated world (known true relevance and exposure propensities)",
    )
)
