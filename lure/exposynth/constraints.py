"""ExpoSynth's collaborative constraints (LURE §2.2): the genre transition matrix T and the item-item similarity S.

* T[g -> g'] counts consecutive interactions of a user (ordered by time) whose first listed genres are g and g',
  row-normalised: the probability that a user's next item has primary genre g' after one of primary genre g.
* S(i, j) is the cosine similarity of items i and j on the binary item x user incidence matrix (the users who
  interacted with each), kept sparse: each item keeps its ``neighbours`` most similar other items only (S of a pair
  outside an item's top-n is treated as 0, as in the public code's top-50 neighbour lists).

A step i -> j is accepted when T[g(i) -> g(j)] >= ``transition_min`` or S(i, j) >= ``delta``, and j != i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: Why a step was accepted (the ``constraint`` column of the synthetic log).
REASONS = ("transition", "similarity", "both", "unconstrained")


def transition_counts(train: pd.DataFrame, genre_of_item: np.ndarray, n_genres: int) -> np.ndarray:
    """Counts C[g, g'] of consecutive interactions (per user, by timestamp, then row order) from an item of primary
    genre g to one of primary genre g' (``genre_of_item``: the primary-genre code of each item, -1 = none; a
    transition touching a genre-less item is not counted)."""
    ordered = train.sort_values(["user_id", "timestamp"], kind="stable")
    users = ordered["user_id"].to_numpy()
    genres = genre_of_item[ordered["item_id"].to_numpy()]
    same_user = users[1:] == users[:-1]
    src, dst = genres[:-1][same_user], genres[1:][same_user]
    keep = (src >= 0) & (dst >= 0)
    return np.bincount(src[keep] * n_genres + dst[keep], minlength=n_genres * n_genres).reshape(n_genres, n_genres)


def transition_matrix(counts: np.ndarray) -> np.ndarray:
    """Row-normalised T (a row without any transition stays 0: nothing is known to follow that genre)."""
    totals = counts.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


def top_similar(train: pd.DataFrame, n_items: int, neighbours: int) -> sp.csr_matrix:
    """S: each item's ``neighbours`` highest cosine similarities to other items (CSR, float32, self excluded, zeros
    dropped), from the binary item x user incidence of ``train`` (repeat interactions count once)."""
    n_users = int(train["user_id"].max()) + 1 if len(train) else 0
    incidence = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float32), (train["item_id"].to_numpy(), train["user_id"].to_numpy())),
        shape=(n_items, n_users),
    )
    incidence.data[:] = 1.0  # duplicates were summed by the constructor: binary incidence
    norms = np.sqrt(np.asarray(incidence.multiply(incidence).sum(axis=1)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sp.diags(inverse.astype(np.float32)) @ incidence
    rows, cols, vals = [], [], []
    block = max(1, 2_000_000 // max(n_items, 1))  # a dense block of at most ~2M similarities at a time
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        sims = (unit[start:stop] @ unit.T).toarray()
        sims[np.arange(stop - start), np.arange(start, stop)] = 0.0  # no self-similarity
        n = min(neighbours, n_items - 1)
        if n <= 0:
            continue
        top = np.argpartition(-sims, n - 1, axis=1)[:, :n]
        values = np.take_along_axis(sims, top, axis=1)
        r = np.repeat(np.arange(start, stop), n)
        keep = values.ravel() > 0
        rows.append(r[keep])
        cols.append(top.ravel()[keep])
        vals.append(values.ravel()[keep])
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items))


@dataclass(frozen=True)
class Constraints:
    """T, S and the thresholds; :meth:`check` classifies a batch of steps at once."""

    transition: np.ndarray  # T, n_genres x n_genres, row-normalised
    counts: np.ndarray  # C, the raw transition counts (plausibility: which genre pairs ever occur)
    similar: sp.csr_matrix  # S, top-n per item
    genre_of_item: np.ndarray  # primary-genre code per item (-1 = none)
    transition_min: float
    delta: float

    def __post_init__(self) -> None:
        coo = self.similar.tocoo()
        keys = coo.row.astype(np.int64) * self.similar.shape[1] + coo.col
        order = np.argsort(keys)
        object.__setattr__(self, "_keys", keys[order])
        object.__setattr__(self, "_values", coo.data[order])

    def similarity(self, prev: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """S(prev, cand) for each step (0 where cand is not among prev's top-n neighbours)."""
        keys = np.asarray(prev, dtype=np.int64) * self.similar.shape[1] + np.asarray(cand, dtype=np.int64)
        at = np.searchsorted(self._keys, keys)
        at = np.minimum(at, max(len(self._keys) - 1, 0))
        found = (self._keys[at] == keys) if len(self._keys) else np.zeros(len(keys), dtype=bool)
        return np.where(found, self._values[at] if len(self._keys) else 0.0, 0.0)

    def check(self, prev: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """The reason code (index into :data:`REASONS`) of each step, -1 where it is rejected."""
        gp, gc = self.genre_of_item[prev], self.genre_of_item[cand]
        by_t = (gp >= 0) & (gc >= 0) & (self.transition[np.maximum(gp, 0), np.maximum(gc, 0)] >= self.transition_min)
        sim = self.similarity(prev, cand)
        by_s = (sim >= self.delta) & (sim > 0)  # delta 0 must not accept pairs S knows nothing about
        code = np.where(by_t & by_s, 2, np.where(by_t, 0, np.where(by_s, 1, -1)))
        return np.where(np.asarray(prev) == np.asarray(cand), -1, code)

    def plausible(self, prev: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Whether each step's primary-genre pair occurs among the real consecutive interactions (C > 0)."""
        gp, gc = self.genre_of_item[prev], self.genre_of_item[cand]
        known = (gp >= 0) & (gc >= 0)
        return known & (self.counts[np.maximum(gp, 0), np.maximum(gc, 0)] > 0)
