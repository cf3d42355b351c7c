"""Genres of the catalogue and each user's anchor genres (LURE §2.2, "Anchor").

A user's anchors are the ``k`` genres that appear most often among the items of the user's history window (every
listed genre of an item counts once), weighted by their share among those k (within-user prevalence). The window is
the user's ``window`` most recent interactions (None = the whole history, the public code's choice). Ties in count
are broken by genre name, so the anchors are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class Genres:
    """Genre codes of the catalogue: names sorted, the primary (first listed) genre of each item and the binary item
    x genre membership (every listed genre)."""

    names: tuple[str, ...]
    primary: np.ndarray  # int64 code per item, -1 = the item lists no genre
    membership: sp.csr_matrix  # n_items x n_genres, 1.0 where the item lists the genre

    @property
    def primary_membership(self) -> sp.csr_matrix:
        """n_items x n_genres, 1.0 at each item's primary genre only (the public code's notion of an item's genre)."""
        has = self.primary >= 0
        rows = np.flatnonzero(has)
        return sp.csr_matrix(
            (np.ones(len(rows)), (rows, self.primary[has])), shape=self.membership.shape, dtype=np.float64
        )

    @classmethod
    def of(cls, genres: pd.Series) -> Genres:
        lists = genres.fillna("").astype(str).str.split("|").map(lambda gs: [g.strip() for g in gs if g.strip()])
        names = tuple(sorted({g for gs in lists for g in gs}))
        code = {g: c for c, g in enumerate(names)}
        primary = np.array([code[gs[0]] if gs else -1 for gs in lists], dtype=np.int64)
        rows = np.repeat(np.arange(len(lists)), lists.map(len).to_numpy())
        cols = np.array([code[g] for gs in lists for g in gs], dtype=np.int64)
        membership = sp.csr_matrix(
            (np.ones(len(cols)), (rows, cols)), shape=(len(lists), max(len(names), 1)), dtype=np.float64
        )
        membership.data[:] = 1.0  # an item listing a genre twice is still a member once
        return cls(names, primary, membership)


@dataclass(frozen=True)
class Anchors:
    """Per user (rows of ``users``): up to k anchor genre codes and their weights (rows sum to 1; a padded slot has
    weight 0 and code -1)."""

    users: np.ndarray
    codes: np.ndarray  # n_users x k
    weights: np.ndarray  # n_users x k

    def draw(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One anchor genre code for each user row in ``rows`` (drawn by the anchor weights)."""
        cum = np.cumsum(self.weights[rows], axis=1)
        u = rng.random(len(rows))[:, None] * cum[:, -1:]
        slot = np.minimum((cum <= u).sum(axis=1), cum.shape[1] - 1)
        return self.codes[rows, slot]


def recent_window(train: pd.DataFrame, window: int | None) -> pd.DataFrame:
    """Each user's ``window`` most recent interactions (by timestamp, then row order); None = all of them."""
    if window is None:
        return train
    ordered = train.sort_values(["user_id", "timestamp"], kind="stable")
    from_end = ordered.groupby("user_id").cumcount(ascending=False)
    return ordered[from_end.to_numpy() < window]


def user_anchors(train: pd.DataFrame, membership: sp.csr_matrix, k: int, window: int | None) -> Anchors:
    """The top-``k`` genres of each user's history window, weighted by count; ``membership`` (items x genres) says
    which genres an item counts for (every listed one, or the primary one only). Users whose window has no genre
    are left out: they have nothing to anchor on."""
    history = recent_window(train, window)
    user_row, users = pd.factorize(history["user_id"].to_numpy(), sort=True)
    n_items = membership.shape[0]
    incidence = sp.csr_matrix(
        (np.ones(len(history)), (user_row, history["item_id"].to_numpy())), shape=(len(users), n_items)
    )
    counts = np.asarray((incidence @ membership).todense())  # users x genres
    k = min(k, counts.shape[1])
    # descending count, ties by genre code (names are sorted): a stable sort of -count over codes in order
    top = np.argsort(-counts, axis=1, kind="stable")[:, :k]
    top_counts = np.take_along_axis(counts, top, axis=1)
    totals = top_counts.sum(axis=1)
    keep = totals > 0
    weights = top_counts[keep] / totals[keep, None]
    codes = np.where(top_counts[keep] > 0, top[keep], -1)
    return Anchors(users[keep], codes, weights)
