"""Cost of the propensity stage at MovieLens-1M scale: logistic fit, metrics, matched-pair sampling.

Data: ``data/raw/movielens-1m/{ratings,movies}.dat`` when present, else a synthetic log of the same shape
(6,040 users x 3,706 items, ~1M interactions, Zipf item popularity, lognormal user activity, timestamps over
three years). Run: ``python bench/propensity_bench.py``. Goals: logistic fit <= 60 s, >= 1M pairs per minute.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lure.data.canonical import item_table, sort_interactions
from lure.io import write_parquet

ROOT = Path(__file__).resolve().parents[1]
ML1M = ROOT / "data" / "raw" / "movielens-1m"
GENRES = [
    "Drama",
    "Comedy",
    "Action",
    "Thriller",
    "Romance",
    "Horror",
    "Adventure",
    "Sci-Fi",
    "Children's",
    "Crime",
    "War",
    "Documentary",
    "Musical",
    "Mystery",
    "Animation",
    "Fantasy",
    "Western",
    "Film-Noir",
]


def _synthetic(seed: int = 0, n_users: int = 6040, n_items: int = 3706, total: int = 1_000_209):
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    n_u = np.clip(np.rint(activity / activity.sum() * total), 20, n_items // 2).astype(np.int64)
    log_w = -1.0 * np.log(rng.permutation(n_items) + 1.0)  # Zipf popularity, random item order
    users, items = [], []
    for lo in range(0, n_users, 512):
        hi = min(n_users, lo + 512)
        keys = log_w[None, :] + rng.gumbel(size=(hi - lo, n_items))
        order = np.argsort(-keys, axis=1)
        for r in range(hi - lo):  # per user: its n_u first items of a Gumbel-top-k without replacement
            items.append(order[r, : n_u[lo + r]])
            users.append(np.full(n_u[lo + r], lo + r))
    users, items = np.concatenate(users), np.concatenate(items)
    start = 956_703_932  # 2000-04-25, the first ML-1M rating
    inter = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "timestamp": start + rng.integers(0, 3 * 365 * 86400, len(users)),
            "rating": 1.0,
            "source": "real",
        }
    )
    m = rng.integers(1, 4, n_items)
    genres = ["|".join(rng.choice(GENRES, size=k, replace=False)) for k in m]
    catalog = pd.DataFrame(
        {
            "item_id": np.arange(n_items),
            "title": [f"Movie {i}" for i in range(n_items)],
            "genres": genres,
            "year": rng.integers(1919, 2001, n_items),
        }
    )
    return catalog, inter


def _movielens():
    ratings = pd.read_csv(ML1M / "ratings.dat", sep="::", engine="python", names=["u", "m", "rating", "timestamp"])
    movies = pd.read_csv(
        ML1M / "movies.dat", sep="::", engine="python", names=["m", "title", "genres"], encoding="latin-1"
    )
    movies = movies[movies["m"].isin(ratings["m"])].sort_values("m").reset_index(drop=True)
    item_of = pd.Series(np.arange(len(movies)), index=movies["m"])
    user_of = pd.Series(np.arange(ratings["u"].nunique()), index=np.sort(ratings["u"].unique()))
    inter = pd.DataFrame(
        {
            "user_id": user_of[ratings["u"]].to_numpy(),
            "item_id": item_of[ratings["m"]].to_numpy(),
            "timestamp": ratings["timestamp"].to_numpy(np.int64),
            "rating": ratings["rating"].astype(float),
            "source": "real",
        }
    )
    year = movies["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype(float).fillna(0).astype(np.int64)
    catalog = pd.DataFrame(
        {"item_id": np.arange(len(movies)), "title": movies["title"], "genres": movies["genres"], "year": year}
    )
    return catalog, inter


def write_dataset(out: Path, seed: int = 0) -> str:
    """Canonical items + per-user chronological holdout (last ceil(0.2 n_u) to test) under ``out``."""
    source = "movielens-1m" if (ML1M / "ratings.dat").exists() else "synthetic-ml1m-shape"
    catalog, inter = _movielens() if source == "movielens-1m" else _synthetic(seed)
    inter = sort_interactions(inter)
    write_parquet(out / "items.parquet", item_table(catalog, inter, 5, 5))
    n = inter.groupby("user_id")["item_id"].transform("size").to_numpy()
    from_end = inter.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    test = from_end < np.ceil(0.2 * n)
    write_parquet(out / "splits" / "holdout_train.parquet", inter[~test].reset_index(drop=True))
    write_parquet(out / "splits" / "holdout_test.parquet", inter[test].reset_index(drop=True))
    return source


def bench_propensity(seed: int = 0, pairs_target: int = 1_000_000) -> dict[str, float | str]:
    """Seconds of the logistic fit, of its metrics, and pair sampling throughput (pairs per minute)."""
    from lure.pairs import load_candidates, sample_pairs
    from lure.propensity import fit_propensity, propensity_metrics
    from lure.spec.propensity import PairsSpec, PropensitySpec

    out: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        out["propensity_bench_data"] = write_dataset(d, seed)
        n_train = len(pd.read_parquet(d / "splits" / "holdout_train.parquet", columns=["user_id"]))
        out["propensity_bench_train_interactions"] = n_train

        t0 = time.perf_counter()
        model = fit_propensity(PropensitySpec(model="logistic"), d, seed)
        out["propensity_logistic_fit_s"] = round(time.perf_counter() - t0, 3)

        t0 = time.perf_counter()
        metrics = propensity_metrics(model, d, seed)
        out["propensity_metrics_s"] = round(time.perf_counter() - t0, 3)
        out["propensity_bench_ece_relative"] = round(metrics["ece_relative"], 4)

        n_users = pd.read_parquet(d / "splits" / "holdout_test.parquet", columns=["user_id"])["user_id"].nunique()
        for mode in ("labeled", "unlabeled"):
            spec = PairsSpec(mode=mode, per_user=max(1, -(-pairs_target // n_users)))
            t0 = time.perf_counter()
            cand = load_candidates(spec.match_on, d)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pairs = sample_pairs(spec, d, model, seed, candidates=cand)
            elapsed = time.perf_counter() - t0
            out[f"pairs_{mode}_load_s"] = round(load_s, 3)
            out[f"pairs_{mode}_n"] = len(pairs)
            out[f"pairs_{mode}_per_min"] = round(len(pairs) / elapsed * 60)
        out["pairs_per_min"] = out["pairs_labeled_per_min"]
    return out


if __name__ == "__main__":
    figures = bench_propensity()
    figures["goals"] = {  # type: ignore[assignment]
        "propensity_logistic_fit_s <= 60": figures["propensity_logistic_fit_s"] <= 60,
        "pairs_per_min >= 1e6": figures["pairs_per_min"] >= 1e6,
    }
    print(json.dumps(figures, indent=2))
