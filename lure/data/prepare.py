"""The ``prepare`` stage: turn a data source into the canonical parquet files and report dataset statistics.

Layout under ``out_dir`` (all writes atomic through ``lure.io``; same spec and seed -> byte-identical files):

* ``items.parquet``         item_id, title, genres ("|"-joined), year, popularity, pop_bin, age_bin
* ``interactions.parquet``  user_id, item_id, timestamp (int64 unix s), rating (float), source ("real"/"synth")
* ``splits/loo_{train,valid,test}.parquet``     same columns as interactions
* ``splits/window_{train,valid,test}.parquet``  user_id, history (list<int64>), item_id (target), timestamp
* world only, ``truth/``: ``relevance.npy`` (float32 users x items, r(u,i); row = user_id, column = item_id),
  ``exposures.parquet``, ``mar.parquet``, ``users.parquet``, ``items.parquet`` (popularity_prior, quality).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lure.data.canonical import (
    INTERACTION_COLUMNS,
    dataset_stats,
    gini,
    item_table,
    k_core_users,
    sort_interactions,
)
from lure.data.splits import loo_split, window_samples, window_split
from lure.data.world import World, generate_world
from lure.io import write_parquet, write_with
from lure.spec.data import DataSpec


def world_interactions(world: World) -> pd.DataFrame:
    """Clicks of the logged exposures as interactions: rating 1.0, source "real" (synthetic ones come later)."""
    clicks = world.exposures[world.exposures["clicked"].to_numpy()]
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
    """Generate (or later: load) the dataset, write the canonical files under ``out_dir``, return its statistics."""
    out_dir = Path(out_dir)
    world = generate_world(data.world, seed)
    raw = world_interactions(world)
    interactions = sort_interactions(k_core_users(raw, data.min_interactions_per_user))
    items = item_table(world.items, interactions, data.bins.n_pop_bins, data.bins.n_age_bins)
    loo = loo_split(interactions)
    window = window_split(window_samples(interactions, data.splits.history_max), data.splits.ratios)

    write_parquet(out_dir / "items.parquet", items)
    write_parquet(out_dir / "interactions.parquet", interactions)
    for name, part in zip(("train", "valid", "test"), loo, strict=True):
        write_parquet(out_dir / "splits" / f"loo_{name}.parquet", part)
    for name, part in zip(("train", "valid", "test"), window, strict=True):
        write_parquet(out_dir / "splits" / f"window_{name}.parquet", part)
    _write_truth(world, out_dir / "truth")

    stats = dataset_stats(items, interactions, data.bins.n_pop_bins)
    stats["users_dropped"] = int(raw["user_id"].nunique()) - stats["users"]
    for name, part in zip(("train", "valid", "test"), loo, strict=True):
        stats[f"loo_{name}"] = len(part)
    for name, part in zip(("train", "valid", "test"), window, strict=True):
        stats[f"window_{name}"] = len(part)
    stats.update(world_stats(world))
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
    }


def _write_truth(world: World, truth: Path) -> None:
    relevance = world.relevance

    def save(path: Path) -> None:
        # Through a file handle: np.save on a path would append ".npy" to the temporary name.
        with open(path, "wb") as fh:
            np.save(fh, relevance, allow_pickle=False)

    write_with(truth / "relevance.npy", save)
    write_parquet(truth / "exposures.parquet", world.exposures)
    write_parquet(truth / "mar.parquet", world.mar)
    write_parquet(truth / "users.parquet", world.users)
    write_parquet(truth / "items.parquet", world.items[["item_id", "popularity_prior", "quality"]])
