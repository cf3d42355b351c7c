"""What propensity models are fitted on: the canonical items and the training part of the per-user holdout.

Files read from the prepared directory (written by ``prepare``; their names are ``lure.layout.Prepared``'s):

* ``items.parquet``                   the whole catalogue (item_id = 0..n-1, genres, pop_bin, age_bin, ...);
* ``splits/holdout_train.parquet``    per user all but the last ceil(0.2 n_u) interactions (the fit data);
* ``splits/holdout_test.parquet``     the rest (evaluation: calibration, pairs);
* ``truth/exposure_prob.npy``         world only: the true marginal exposure probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lure.layout import Prepared


def hour_weekday(timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour of day (0-23) and weekday (0 = Monday) of unix seconds, UTC. 1970-01-01 was a Thursday (3)."""
    ts = np.asarray(timestamps, dtype=np.int64)
    return (ts // 3600) % 24, (ts // 86400 + 3) % 7


def primary_genre(genres: pd.Series) -> np.ndarray:
    """The first listed genre of each item ("" when it has none): the world lists the most common genre first."""
    return genres.fillna("").astype(str).str.split("|", n=1).str[0].to_numpy(dtype=object)


def item_genre_matrix(genres: pd.Series) -> sp.csr_matrix:
    """Row-normalised item x genre matrix: each item's genres as a distribution (an item without genres: zeros)."""
    lists = genres.fillna("").astype(str).str.split("|")
    rows = np.repeat(np.arange(len(lists)), lists.str.len().to_numpy())
    names = np.concatenate([np.asarray(x, dtype=object) for x in lists]) if len(lists) else np.empty(0, object)
    keep = names != ""
    rows, names = rows[keep], names[keep]
    codes, _ = pd.factorize(names, sort=True)
    counts = np.bincount(rows, minlength=len(lists)).astype(np.float64)
    values = 1.0 / counts[rows]
    return sp.csr_matrix((values, (rows, codes)), shape=(len(lists), int(codes.max()) + 1 if len(codes) else 1))


@dataclass(frozen=True)
class PropensityData:
    """The fit data of a propensity model: catalogue, holdout_train interactions and derived per-user counts."""

    prepared_dir: Path
    items: pd.DataFrame
    train: pd.DataFrame
    n_items: int
    n_user_slots: int  # max user id + 1 (arrays are indexed by user id)
    train_users: np.ndarray  # sorted unique user ids of holdout_train

    @classmethod
    def load(cls, prepared_dir: Path) -> PropensityData:
        prepared_dir = Path(prepared_dir)
        prepared = Prepared(prepared_dir)
        items = prepared.read_items()
        n_items = len(items)
        if not np.array_equal(items["item_id"].to_numpy(), np.arange(n_items)):
            raise ValueError(f"{prepared.items}: item_id must be 0..n-1 in order")
        train = prepared.read_split("holdout", "train").reset_index(drop=True)
        if len(train) == 0:
            raise ValueError(f"{prepared.holdout_train} has no rows")
        users = train["user_id"].to_numpy(dtype=np.int64)
        item_ids = train["item_id"].to_numpy(dtype=np.int64)
        if users.min() < 0 or item_ids.min() < 0 or item_ids.max() >= n_items:
            raise ValueError(f"{prepared.holdout_train}: ids out of range")
        return cls(
            prepared_dir=prepared_dir,
            items=items,
            train=train,
            n_items=n_items,
            n_user_slots=int(users.max()) + 1,
            train_users=np.unique(users),
        )

    def user_counts(self) -> np.ndarray:
        """n_u: training interactions per user id (0 for ids without any)."""
        return np.bincount(self.train["user_id"].to_numpy(dtype=np.int64), minlength=self.n_user_slots)

    def item_counts(self) -> np.ndarray:
        """n_i: training interactions per item (the popularity the models see; test interactions excluded)."""
        return np.bincount(self.train["item_id"].to_numpy(dtype=np.int64), minlength=self.n_items)

    def observed_keys(self) -> np.ndarray:
        """Sorted unique keys u * n_items + i of the observed (training) pairs."""
        return pair_keys(self.train["user_id"].to_numpy(), self.train["item_id"].to_numpy(), self.n_items)

    def has_time(self) -> bool:
        """False when every timestamp is 0 (a dataset without times): hour and weekday carry nothing then."""
        return bool((self.train["timestamp"].to_numpy() != 0).any())

    def user_genre_entropy(self) -> np.ndarray:
        """H_u = -sum_g p_ug log p_ug of the genres of u's training items (each item's genres weigh 1/|G_i|)."""
        users = self.train["user_id"].to_numpy(dtype=np.int64)
        item_ids = self.train["item_id"].to_numpy(dtype=np.int64)
        ui = sp.csr_matrix((np.ones(len(users)), (users, item_ids)), shape=(self.n_user_slots, self.n_items))
        mass = np.asarray((ui @ item_genre_matrix(self.items["genres"])).todense())
        total = mass.sum(axis=1, keepdims=True)
        p = np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return h


def pair_keys(user_ids: np.ndarray, item_ids: np.ndarray, n_items: int) -> np.ndarray:
    """Sorted unique int64 keys u * n_items + i (membership tests with ``np.searchsorted``)."""
    return np.unique(np.asarray(user_ids, dtype=np.int64) * n_items + np.asarray(item_ids, dtype=np.int64))


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``keys`` are in ``sorted_keys`` (sorted, unique)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    pos = np.searchsorted(sorted_keys, keys)
    pos = np.minimum(pos, len(sorted_keys) - 1)
    return sorted_keys[pos] == keys
