"""The judge against real people (issue 14, point 5): does the judge prefer the item a user rated higher?

Coat's test ratings were collected on coats drawn uniformly at random for each user (missing at random), so two of
a user's test ratings that differ are a preference free of exposure bias: the platform did not choose which coats
the user saw. Coat's training ratings are self-selected (the user chose what to rate). Judging within-user pairs of
each log and comparing the judge's agreement with the users shows how far the judge can be trusted (MAR), and how
much its agreement depends on the exposure that shaped the log (the gap).

Pairs: per user and log, up to ``per_user`` pairs of two rated items with different ratings, drawn at random
(seeded); item i is the higher-rated one (the judge never learns which item is i: the A/B order is drawn per pair).
The history block shows the user's training positives except every item of that user's validity pairs, so no
candidate is quoted from the history and both logs are judged with the same history.

Agreement = the weighted share of labelled pairs whose label picks i (:func:`lure.metrics.pairwise.judge_accuracy`
against +1: a judge tie is never agreement), with a percentile bootstrap interval over users.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lure.data.sources.base import load_source
from lure.layout import Prepared
from lure.metrics.pairwise import judge_accuracy, per_user
from lure.rng import generator, stream
from lure.spec.source import RealSource
from lure.stats import bootstrap_ratio_ci

#: The two logs compared, in report order.
LOGS = ("mar", "self_selected")


def self_selected_ratings(prepared: Prepared, source: RealSource) -> pd.DataFrame:
    """The dataset's own (self-selected) ratings, every star level, in the prepared user and item ids: the prepared
    interactions keep only positives, and the validity pairs need every rating level a user gave."""
    raw = load_source(source).interactions[["user_id", "item_id", "rating"]]
    raw = raw.astype({"user_id": str, "item_id": str})  # the id maps hold the dataset's ids as text
    users = pd.read_parquet(prepared.user_ids).rename(columns={"user_id": "u", "raw_id": "user_id"})
    items = pd.read_parquet(prepared.item_ids).rename(columns={"item_id": "i", "raw_id": "item_id"})
    mapped = raw.merge(users.astype({"user_id": str}), on="user_id").merge(items.astype({"item_id": str}), on="item_id")
    return mapped[["u", "i", "rating"]].rename(columns={"u": "user_id", "i": "item_id"})


def rating_pairs(ratings: pd.DataFrame, per_user_pairs: int, seed: int, stream_name: str) -> pd.DataFrame:
    """Within-user pairs of items with different ratings: user_id, item_i (the higher rating), item_j, rating_i,
    rating_j; at most ``per_user_pairs`` per user, drawn uniformly among that user's unequal pairs."""
    rng = generator(seed, stream_name)
    rows = []
    for user, group in ratings.sort_values(["user_id", "item_id"]).groupby("user_id", sort=True):
        items = group["item_id"].to_numpy(np.int64)
        values = group["rating"].to_numpy(np.float64)
        a, b = np.triu_indices(len(items), k=1)
        unequal = values[a] != values[b]
        a, b = a[unequal], b[unequal]
        if not len(a):
            continue
        pick = rng.choice(len(a), size=min(per_user_pairs, len(a)), replace=False)
        for k in np.sort(pick):
            hi, lo = (a[k], b[k]) if values[a[k]] > values[b[k]] else (b[k], a[k])
            rows.append((int(user), int(items[hi]), int(items[lo]), values[hi], values[lo]))
    return pd.DataFrame(rows, columns=["user_id", "item_i", "item_j", "rating_i", "rating_j"])


def cap(pairs: pd.DataFrame, max_pairs: int | None, seed: int, stream_name: str) -> pd.DataFrame:
    """A seeded random subset of at most ``max_pairs`` rows (row order kept)."""
    if max_pairs is None or len(pairs) <= max_pairs:
        return pairs.reset_index(drop=True)
    keep = np.sort(generator(seed, stream_name).choice(len(pairs), size=max_pairs, replace=False))
    return pairs.iloc[keep].reset_index(drop=True)


def history_without(train: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """``train`` without the rows of any item that appears in one of the user's pairs."""
    shown = pd.concat(
        [
            pairs[["user_id", "item_i"]].rename(columns={"item_i": "item_id"}),
            pairs[["user_id", "item_j"]].rename(columns={"item_j": "item_id"}),
        ]
    ).drop_duplicates()
    marked = train.merge(shown.assign(_shown=True), on=["user_id", "item_id"], how="left")
    return train[marked["_shown"].isna().to_numpy()]


def agreement(
    users: np.ndarray, y: np.ndarray, v: np.ndarray, resamples: int, confidence: float, seed: int, name: str
) -> dict[str, Any]:
    """The judge's agreement with the users (label = +1) and its bootstrap CI over users."""
    base = judge_accuracy(y, v, np.ones(len(y), dtype=np.int8))
    omega = np.asarray(v, dtype=np.float64)
    ids, big_w, big_m = per_user(users, omega, (np.asarray(y) == 1).astype(np.float64))
    low, high = bootstrap_ratio_ci(big_m, big_w, resamples, confidence, stream(seed, f"validity.bootstrap.{name}"))
    return {**base, "users": len(ids), "ci_low": low, "ci_high": high}


def gap(report: dict[str, dict[str, Any]]) -> float | None:
    """Agreement on the self-selected log minus agreement on the MAR log (None where either is missing)."""
    mar, selected = report.get("mar", {}).get("accuracy"), report.get("self_selected", {}).get("accuracy")
    return None if mar is None or selected is None else float(selected - mar)
