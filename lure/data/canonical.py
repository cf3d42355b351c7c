"""The canonical dataset every later stage reads: interaction order, k-core, item bins and dataset statistics.

Conventions (shared by every source, simulated or real):

* ids are int64; ``timestamp`` is int64 unix seconds (UTC);
* the *sequence order* of a user's interactions is a stable sort by (user_id, timestamp): rows with equal
  timestamps keep the order the source gave them;
* ``pop_bin`` 0 holds the MOST popular items, ``n_pop_bins - 1`` the least popular ("tail");
* ``age_bin`` 0 holds the OLDEST items (earliest first appearance), ``n_age_bins - 1`` the newest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp", "rating", "source"]


def sort_interactions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Canonical sequence order: stable sort by (user_id, timestamp), fresh RangeIndex."""
    return interactions.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def k_core_users(interactions: pd.DataFrame, min_per_user: int) -> pd.DataFrame:
    """Drop users with fewer than ``min_per_user`` interactions (one pass, users only: items are never dropped,
    because the catalogue of the world is known and tail items are exactly what bias studies look at)."""
    counts = interactions.groupby("user_id")["item_id"].transform("size")
    return interactions[counts >= min_per_user].reset_index(drop=True)


def gini(values: np.ndarray | pd.Series) -> float:
    """Gini coefficient of non-negative values: G = sum_i (2i - n - 1) x_(i) / (n * sum x), x sorted ascending.

    0 when all values are equal; (n - 1) / n when a single value holds everything. 0 for an all-zero input.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def quantile_bins(order: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-frequency bins of items listed in ``order`` (position 0 -> bin 0).

    ``order`` is an argsort of the items by the binning key with ties already broken, so the rank is unique and
    ``pd.qcut`` on it gives ``min(n_bins, n)`` non-empty bins of sizes differing by at most one.
    """
    n = len(order)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    bins = min(n_bins, n)
    if bins <= 1:
        return np.zeros(n, dtype=np.int64)
    return pd.qcut(rank, q=bins, labels=False).astype(np.int64)


def popularity_bins(popularity: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin 0 = most interactions. Ties are broken by item position (item_id order), i.e. arbitrary but fixed."""
    order = np.lexsort((np.arange(len(popularity)), -np.asarray(popularity, dtype=np.int64)))
    return quantile_bins(order, n_bins)


def age_bins(first_seen: np.ndarray, n_bins: int, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Bin 0 = earliest first appearance (first interaction time).

    Items never interacted with (``first_seen`` NaN) count as the newest. Ties, and the never-seen items among
    themselves, are ordered by ``tiebreak`` (the world passes the release year) and then by item position.
    """
    first = np.asarray(first_seen, dtype=np.float64)
    first = np.where(np.isnan(first), np.inf, first)
    tb = np.zeros(len(first)) if tiebreak is None else np.asarray(tiebreak, dtype=np.float64)
    order = np.lexsort((np.arange(len(first)), tb, first))
    return quantile_bins(order, n_bins)


def item_table(catalog: pd.DataFrame, train: pd.DataFrame, n_pop_bins: int, n_age_bins: int) -> pd.DataFrame:
    """items.parquet: catalog columns (item_id, title, genres, year) + popularity, pop_bin, age_bin.

    Computed from the TRAINING interactions only (the holdout's train part): the bins are what pairs are matched
    on and the propensity models' features, and the held-out interactions they are evaluated on must not move
    them. ``popularity`` is the training interaction count; ``age_bin`` uses the first training interaction
    time with the release year as tiebreak (and as the only key among never-interacted items).
    """
    interactions = train
    items = catalog[["item_id", "title", "genres", "year"]].sort_values("item_id", kind="stable")
    items = items.reset_index(drop=True)
    counts = interactions.groupby("item_id").size()
    first = interactions.groupby("item_id")["timestamp"].min()
    items["popularity"] = counts.reindex(items["item_id"], fill_value=0).to_numpy(dtype=np.int64)
    first_seen = first.reindex(items["item_id"]).to_numpy(dtype=np.float64)
    items["pop_bin"] = popularity_bins(items["popularity"].to_numpy(), n_pop_bins)
    items["age_bin"] = age_bins(first_seen, n_age_bins, tiebreak=items["year"].to_numpy())
    return items


def dataset_stats(items: pd.DataFrame, interactions: pd.DataFrame, n_pop_bins: int) -> dict[str, float]:
    """Flat statistics with MLflow-legal names.

    * density = interactions / (users * items), items = the whole catalogue;
    * popularity_gini = Gini of the per-item interaction counts (of ``interactions``) over the catalogue (zeros
      included);
    * tail_share = share of interactions on items of the last popularity bin (pop_bin == n_pop_bins - 1);
      head_share likewise for bin 0.
    """
    n_users = int(interactions["user_id"].nunique())
    n_items = len(items)
    n_inter = len(interactions)
    # Counts over all the interactions described here (items["popularity"] counts the training part only).
    pop = np.bincount(interactions["item_id"].to_numpy(dtype=np.int64), minlength=n_items)
    tail_bin = int(items["pop_bin"].max()) if n_items else n_pop_bins - 1
    span = (interactions["timestamp"].max() - interactions["timestamp"].min()) / 86400 if n_inter else 0.0
    return {
        "users": n_users,
        "items": n_items,
        "items_interacted": int((pop > 0).sum()),
        "interactions": n_inter,
        "density": n_inter / (n_users * n_items) if n_users and n_items else 0.0,
        "popularity_gini": gini(pop),
        "tail_share": float(pop[items["pop_bin"].to_numpy() == tail_bin].sum() / n_inter) if n_inter else 0.0,
        "head_share": float(pop[items["pop_bin"].to_numpy() == 0].sum() / n_inter) if n_inter else 0.0,
        "interactions_per_user_mean": n_inter / n_users if n_users else 0.0,
        "interactions_per_item_mean": n_inter / n_items if n_items else 0.0,
        "time_span_days": float(span),
    }
