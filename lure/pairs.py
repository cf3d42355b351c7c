"""Matched item pairs with IPS weights (LURE §2.1 "Matched pairs", Eq. 1) and their balance diagnostics.

For every evaluation user u (a user of ``splits/holdout_test.parquet`` with training interactions):

* ``labeled`` mode: i = one of u's held-out (test) items, j = an item u never interacted with (neither in
  train nor in test) from the same *cell* as i -- the same value of every ``match_on`` column (pop_bin,
  age_bin, genre = first listed genre). Label +1: the held-out positive is preferred. A positive whose cell
  holds no never-interacted item for u is dropped and counted (``pairs_unmatched``).
* ``unlabeled`` mode (LURE's original): i and j both never-interacted by u, from one cell (label 0 = unknown).
  i is uniform among u's never-interacted items whose cell has another one.

``per_user`` pairs per user; labeled mode cycles through a random order of the user's matchable positives, so
every positive is used once before any repeats. All sampling is vectorised: j is drawn uniformly inside the
cell by rejection (u's own items rejected), and pairs still unresolved after a few rounds are drawn exactly from
the enumerated eligible items of their cell.

IPS weight, LURE Eq. 1, as written (:func:`pair_ips_weight`): w = 1 / max(pi_i, 1e-6) + 1 / max(pi_j, 1e-6), with
pi from a ``FittedPropensity`` (already clipped to [clip_min, clip_max], so the 1e-6 floor never binds and a missing
propensity is an error, not 1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lure.layout import Prepared
from lure.propensity.data import contains, pair_keys, primary_genre
from lure.propensity.fitted import FittedPropensity
from lure.rng import generator

#: Floor of Eq. 1 (LURE §2.1).
EQ1_FLOOR = 1e-6
#: Rejection rounds before the exact fallback.
REJECTION_ROUNDS = 8


def pair_ips_weight(pi_i: np.ndarray, pi_j: np.ndarray) -> np.ndarray:
    """The IPS weight of a judged pair (u, i, j) from pi(i|u) and pi(j|u): the one implementation of LURE Eq. 1.

    The pairs stage stores it as the column ``w``, which PairAUC_IPS and RJS (:mod:`lure.metrics.pairwise`) weight
    by. The propensities' dtype is kept (float32 propensities give float32 weights).
    """
    return 1.0 / np.maximum(pi_i, EQ1_FLOOR) + 1.0 / np.maximum(pi_j, EQ1_FLOOR)  # LURE Eq. 1


@dataclass(frozen=True)
class Candidates:
    """Everything pair sampling needs, loaded once: the catalogue cut into cells and who has seen what.

    ``cell`` maps item -> cell id; items of cell c are ``cell_items[cell_start[c]:cell_start[c] + cell_size[c]]``.
    ``seen`` holds the sorted keys u * n_items + i of every training and test pair; ``user_cell`` the sorted keys
    u * n_cells + c of them with ``user_cell_count`` (how many of u's items lie in cell c).
    """

    match_on: tuple[str, ...]
    items: pd.DataFrame  # item_id, popularity, year, pop_bin, age_bin, genre (primary)
    n_items: int
    cell: np.ndarray
    cell_values: pd.DataFrame  # one row per cell: its match_on values
    cell_items: np.ndarray
    cell_start: np.ndarray
    cell_size: np.ndarray
    seen: np.ndarray
    user_cell: np.ndarray
    user_cell_count: np.ndarray
    test: pd.DataFrame  # unique (user_id, item_id) of the held-out split, sorted
    train_users: np.ndarray  # bool per user id: has training interactions
    relevance: np.ndarray | None  # world only (memory-mapped)

    @property
    def n_cells(self) -> int:
        return len(self.cell_size)

    def is_seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return contains(self.seen, users * self.n_items + items)

    def eligible(self, users: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """How many items of cell c user u never interacted with."""
        keys = users * self.n_cells + cells
        pos = np.minimum(np.searchsorted(self.user_cell, keys), max(len(self.user_cell) - 1, 0))
        hit = self.user_cell[pos] == keys if len(self.user_cell) else np.zeros(len(keys), bool)
        return self.cell_size[cells] - np.where(hit, self.user_cell_count[pos], 0)


def load_candidates(match_on: list[str] | tuple[str, ...], prepared_dir: Path) -> Candidates:
    prepared = Prepared(prepared_dir)
    items = prepared.read_items()
    n_items = len(items)
    if not np.array_equal(items["item_id"].to_numpy(), np.arange(n_items)):
        raise ValueError(f"{prepared.items}: item_id must be 0..n-1 in order")
    items = items.assign(genre=primary_genre(items["genres"]))
    match_on = tuple(match_on)
    codes = np.stack([pd.factorize(items[c], sort=True)[0] for c in match_on], axis=1)
    _, first, cell = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    cell = cell.reshape(-1).astype(np.int64)
    cell_values = items.loc[first, list(match_on)].reset_index(drop=True)
    cell_items = np.argsort(cell, kind="stable").astype(np.int64)
    cell_size = np.bincount(cell, minlength=len(first)).astype(np.int64)
    cell_start = np.concatenate([[0], np.cumsum(cell_size)[:-1]]).astype(np.int64)

    train = prepared.read_split("holdout", "train")
    test = prepared.read_split("holdout", "test")
    both_u = np.concatenate([train["user_id"].to_numpy(np.int64), test["user_id"].to_numpy(np.int64)])
    both_i = np.concatenate([train["item_id"].to_numpy(np.int64), test["item_id"].to_numpy(np.int64)])
    seen = pair_keys(both_u, both_i, n_items)
    seen_u, seen_i = seen // n_items, seen % n_items
    user_cell, user_cell_count = np.unique(seen_u * len(cell_size) + cell[seen_i], return_counts=True)
    test_pairs = test[["user_id", "item_id"]].drop_duplicates().sort_values(["user_id", "item_id"])
    slots = int(max(both_u.max(initial=-1), 0)) + 1
    train_users = np.zeros(slots, dtype=bool)
    train_users[train["user_id"].to_numpy(np.int64)] = True
    return Candidates(
        match_on=match_on,
        items=items[["item_id", "popularity", "year", "pop_bin", "age_bin", "genre"]],
        n_items=n_items,
        cell=cell,
        cell_values=cell_values,
        cell_items=cell_items,
        cell_start=cell_start,
        cell_size=cell_size,
        seen=seen,
        user_cell=user_cell,
        user_cell_count=user_cell_count.astype(np.int64),
        test=test_pairs.reset_index(drop=True),
        train_users=train_users,
        relevance=prepared.read_relevance(),
    )


# --------------------------------------------------------------------------------------------------- sampling


def sample_pairs(
    spec: Any,
    prepared_dir: Path,
    propensity: FittedPropensity,
    seed: int,
    candidates: Candidates | None = None,
) -> pd.DataFrame:
    """Pairs of ``spec`` (a PairsSpec) for the evaluation users of ``prepared_dir``.

    Columns: user_id, item_i, item_j, label (+1 labeled / 0 unlabeled), the ``match_on`` columns (the shared
    cell), pi_i, pi_j, w (Eq. 1), and on the world r_i, r_j (true relevance) and true_pref (sign(r_i - r_j)).
    ``frame.attrs``: pairs_users, pairs_unmatched (positives dropped: no eligible j in their cell; in unlabeled
    mode, pairs of users without any matchable cell), pairs_users_without_train (test users skipped).
    """
    cand = candidates if candidates is not None else load_candidates(spec.match_on, prepared_dir)
    if tuple(spec.match_on) != cand.match_on:
        raise ValueError(f"candidates were built for match_on={cand.match_on}, spec says {spec.match_on}")
    rng = generator(seed, "pairs.sample")
    users = np.unique(cand.test["user_id"].to_numpy(np.int64))
    has_train = users < len(cand.train_users)
    has_train[has_train] = cand.train_users[users[has_train]]
    without_train = int((~has_train).sum())
    users = users[has_train]
    if spec.max_users is not None and len(users) > spec.max_users:
        users = np.sort(rng.choice(users, size=spec.max_users, replace=False))

    if spec.mode == "labeled":
        u, i, unmatched = _labeled_firsts(cand, users, spec.per_user, rng)
        j = _draw_in_cell(cand, u, cand.cell[i], rng, exclude=None)
        label = np.ones(len(u), dtype=np.int8)
    else:
        u, i, unmatched = _unlabeled_firsts(cand, users, spec.per_user, rng)
        j = _draw_in_cell(cand, u, cand.cell[i], rng, exclude=i)
        label = np.zeros(len(u), dtype=np.int8)

    pi_i = propensity.predict(u, i)
    pi_j = propensity.predict(u, j)
    w = pair_ips_weight(pi_i, pi_j)
    columns: dict[str, Any] = {"user_id": u, "item_i": i, "item_j": j, "label": label}
    cells = cand.cell_values.iloc[cand.cell[i]].reset_index(drop=True)
    for name in cand.match_on:
        columns[name] = cells[name].to_numpy()
    columns.update({"pi_i": pi_i, "pi_j": pi_j, "w": w})
    if cand.relevance is not None:
        r_i = np.asarray(cand.relevance[u, i], dtype=np.float32)
        r_j = np.asarray(cand.relevance[u, j], dtype=np.float32)
        columns.update({"r_i": r_i, "r_j": r_j, "true_pref": np.sign(r_i - r_j).astype(np.int8)})
    frame = pd.DataFrame(columns)
    frame.attrs.update(
        {
            "pairs_users": len(np.unique(u)),
            "pairs_unmatched": int(unmatched),
            "pairs_users_without_train": without_train,
        }
    )
    return frame


def _labeled_firsts(
    cand: Candidates, users: np.ndarray, per_user: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """(u, i) of every pair: per_user per user, cycling through a random order of u's matchable positives."""
    test = cand.test
    pos_u = test["user_id"].to_numpy(np.int64)
    pos_i = test["item_id"].to_numpy(np.int64)
    mine = np.isin(pos_u, users)
    pos_u, pos_i = pos_u[mine], pos_i[mine]
    ok = cand.eligible(pos_u, cand.cell[pos_i]) > 0
    unmatched = int((~ok).sum())
    pos_u, pos_i = pos_u[ok], pos_i[ok]
    return (*_cycle(pos_u, pos_i, per_user, rng), unmatched)


def _cycle(
    pos_u: np.ndarray, pos_i: np.ndarray, per_user: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """per_user rows per user: k-th row = the (k mod m_u)-th item of a random permutation of u's m_u items."""
    order = np.lexsort((rng.random(len(pos_u)), pos_u))
    pos_u, pos_i = pos_u[order], pos_i[order]
    user_list, start, count = np.unique(pos_u, return_index=True, return_counts=True)
    k = np.tile(np.arange(per_user), len(user_list))
    row = np.repeat(start, per_user) + k % np.repeat(count, per_user)
    return pos_u[row], pos_i[row]


def _unlabeled_firsts(
    cand: Candidates, users: np.ndarray, per_user: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """(u, i): i uniform among u's never-interacted items whose cell holds at least one more such item."""
    u = np.repeat(users, per_user)
    i = np.full(len(u), -1, dtype=np.int64)
    todo = np.arange(len(u))
    for _ in range(4 * REJECTION_ROUNDS):
        if todo.size == 0:
            break
        draw = rng.integers(0, cand.n_items, size=todo.size)
        ok = ~cand.is_seen(u[todo], draw) & (cand.eligible(u[todo], cand.cell[draw]) >= 2)
        i[todo[ok]] = draw[ok]
        todo = todo[~ok]
    if todo.size:  # exact: enumerate the catalogue for the few pairs left
        rows = np.repeat(todo, cand.n_items)
        items = np.tile(np.arange(cand.n_items), todo.size)
        ok = ~cand.is_seen(u[rows], items) & (cand.eligible(u[rows], cand.cell[items]) >= 2)
        chosen = _pick_one(rows[ok], items[ok], rng)
        i[chosen[0]] = chosen[1]
    keep = i >= 0
    return u[keep], i[keep], int((~keep).sum())


def _draw_in_cell(
    cand: Candidates, u: np.ndarray, cells: np.ndarray, rng: np.random.Generator, exclude: np.ndarray | None
) -> np.ndarray:
    """One item per row, uniform among the items of ``cells[r]`` that u never interacted with (and != exclude[r]).

    Callers guarantee at least one such item per row.
    """
    j = np.full(len(u), -1, dtype=np.int64)
    todo = np.arange(len(u))
    for _ in range(REJECTION_ROUNDS):
        if todo.size == 0:
            break
        c = cells[todo]
        draw = cand.cell_items[cand.cell_start[c] + (rng.random(todo.size) * cand.cell_size[c]).astype(np.int64)]
        ok = ~cand.is_seen(u[todo], draw)
        if exclude is not None:
            ok &= draw != exclude[todo]
        j[todo[ok]] = draw[ok]
        todo = todo[~ok]
    if todo.size:  # exact: enumerate the cells of the rows left
        sizes = cand.cell_size[cells[todo]]
        rows = np.repeat(todo, sizes)
        within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        items = cand.cell_items[np.repeat(cand.cell_start[cells[todo]], sizes) + within]
        ok = ~cand.is_seen(u[rows], items)
        if exclude is not None:
            ok &= items != exclude[rows]
        chosen = _pick_one(rows[ok], items[ok], rng)
        j[chosen[0]] = chosen[1]
    if (j < 0).any():
        raise AssertionError("a pair without an eligible item slipped through the eligibility check")
    return j


def _pick_one(rows: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly one (row, item) per distinct row: the item with the largest random key of its row."""
    order = np.lexsort((rng.random(len(rows)), rows))
    last = np.r_[rows[order][1:] != rows[order][:-1], True]
    return rows[order][last], items[order][last]


# --------------------------------------------------------------------------------------------------- balance


def smd(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference (mean_a - mean_b) / sqrt((var_a + var_b) / 2); 0 when both are constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    diff = a.mean() - b.mean()
    scale = np.sqrt((a.var() + b.var()) / 2)
    if scale == 0:
        return 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    return float(diff / scale)


def balance_diagnostics(pairs: pd.DataFrame, candidates: Candidates, seed: int) -> dict[str, float]:
    """SMD between item i and its partner, BEFORE matching (a uniform never-interacted item of the same user)
    and AFTER (the matched j), for log(1 + popularity), release year, pop_bin and age_bin.

    The bins are matched exactly, so their SMD after is 0 by construction (a check); log-popularity and year
    vary inside a bin, so their SMD after is the residual imbalance of the matching.
    """
    rng = generator(seed, "pairs.diagnostics")  # not the sampling stream: diagnostics never shift the pairs
    u = pairs["user_id"].to_numpy(np.int64)
    i = pairs["item_i"].to_numpy(np.int64)
    j = pairs["item_j"].to_numpy(np.int64)
    j0 = np.full(len(u), -1, dtype=np.int64)  # unmatched partner: uniform over u's never-interacted items
    todo = np.arange(len(u))
    for _ in range(1000):
        if todo.size == 0:
            break
        draw = rng.integers(0, candidates.n_items, size=todo.size)
        ok = ~candidates.is_seen(u[todo], draw) & (draw != i[todo])
        j0[todo[ok]] = draw[ok]
        todo = todo[~ok]
    if todo.size:
        raise ValueError(f"{todo.size} pairs belong to users who interacted with (almost) every item")
    items = candidates.items
    columns = {
        "log_pop": np.log1p(items["popularity"].to_numpy(np.float64)),
        "year": items["year"].to_numpy(np.float64),
        "pop_bin": items["pop_bin"].to_numpy(np.float64),
        "age_bin": items["age_bin"].to_numpy(np.float64),
    }
    out: dict[str, float] = {}
    for name, value in columns.items():
        out[f"smd_{name}_before"] = smd(value[i], value[j0])
        out[f"smd_{name}_after"] = smd(value[i], value[j])
    return out
