"""Wall-clock cost of the classic zoo at MovieLens-1M scale: fit, top-100 lists and evaluation of every model.

Uses ``data/raw/movielens-1m/ratings.dat`` if present (``user::item::rating::timestamp``; every rating counts as
an interaction), else a synthetic dataset of the same shape: 6,040 users x 3,706 items, 1,000,000 distinct
interactions with lognormal user activity, Zipf item popularity and a rank-16 latent taste. The split is
leave-last-out; propensities of the test pairs follow the popularity model pi_i = (n_i / max n)^0.5.

Run: ``python bench/zoo_bench.py``. Goal: the whole zoo (fit + top-100 + evaluate) on ML-1M <= 60 s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lure.data.splits import loo_split
from lure.estimators import evaluate_zoo
from lure.models import build_model, top_k
from lure.spec.eval import EvalSpec

ROOT = Path(__file__).resolve().parents[1]
ML1M = ROOT / "data" / "raw" / "movielens-1m" / "ratings.dat"


def synthetic_ml1m(
    n_users: int = 6_040, n_items: int = 3_706, n_interactions: int = 1_000_000, seed: int = 0, rank: int = 16
) -> pd.DataFrame:
    """Distinct (user, item) pairs with ML-1M's shape, sorted by (user_id, timestamp)."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = np.arange(1, n_items + 1, dtype=np.float64) ** -0.8
    rng.shuffle(popularity)
    users_f = rng.normal(size=(n_users, rank)).astype(np.float32)
    items_f = rng.normal(size=(n_items, rank)).astype(np.float32)
    draws = int(n_interactions * 3.2)
    u = rng.choice(n_users, draws, p=activity / activity.sum())
    i = rng.choice(n_items, draws, p=popularity / popularity.sum())
    affinity = np.einsum("ij,ij->i", users_f[u], items_f[i]) / np.sqrt(rank)
    keep = rng.random(draws) < 1.0 / (1.0 + np.exp(-2.0 * affinity))
    keys = np.unique(u[keep].astype(np.int64) * n_items + i[keep])
    keys = rng.permutation(keys)[:n_interactions]
    frame = pd.DataFrame({"user_id": keys // n_items, "item_id": keys % n_items})
    frame["timestamp"] = rng.integers(0, 10**9, len(frame))
    return frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def load_ml1m(path: Path = ML1M) -> pd.DataFrame:
    """ML-1M ratings with ids remapped to dense 0..n-1 (users and items in order of first id)."""
    raw = pd.read_csv(path, sep="::", engine="python", names=["user", "item", "rating", "timestamp"])
    frame = pd.DataFrame(
        {
            "user_id": pd.factorize(raw["user"], sort=True)[0].astype(np.int64),
            "item_id": pd.factorize(raw["item"], sort=True)[0].astype(np.int64),
            "timestamp": raw["timestamp"].to_numpy(np.int64),
        }
    )
    return frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def bench_zoo(spec: EvalSpec | None = None, seed: int = 0, models: tuple[str, ...] | None = None) -> dict:
    """Seconds per model (``zoo_fit_s_<model>``, ``zoo_topk_s_<model>``), ``zoo_evaluate_s`` and the total."""
    spec = spec or EvalSpec()
    models = models or ("random", "popularity", "itemknn", "als", "bpr")
    source = "ml-1m" if ML1M.exists() else "synthetic"
    t0 = time.perf_counter()
    data = load_ml1m() if source == "ml-1m" else synthetic_ml1m(seed=seed)
    out: dict = {"zoo_source": source, "zoo_data_s": round(time.perf_counter() - t0, 3)}
    n_users, n_items = int(data["user_id"].max()) + 1, int(data["item_id"].max()) + 1
    train, _, test = loo_split(data)
    out.update({"zoo_users": n_users, "zoo_items": n_items, "zoo_interactions": len(data)})
    users = np.unique(test["user_id"].to_numpy())
    counts = np.bincount(train["item_id"].to_numpy(), minlength=n_items).astype(np.float64)
    propensity = np.clip((counts / counts.max()) ** 0.5, 1e-3, 1.0)[test["item_id"].to_numpy()]

    lists = {}
    total = 0.0
    for name in models:
        t0 = time.perf_counter()
        model = build_model(name, spec).fit(train, n_users, n_items, seed)
        t1 = time.perf_counter()
        lists[name] = top_k(model, users, train, spec.topk)
        t2 = time.perf_counter()
        out[f"zoo_fit_s_{name}"] = round(t1 - t0, 3)
        out[f"zoo_topk_s_{name}"] = round(t2 - t1, 3)
        total += t2 - t0
    t0 = time.perf_counter()
    result = evaluate_zoo(
        lists, test, propensity, spec.ks, train, None, None, spec.bootstrap, spec.confidence, seed
    )
    elapsed = time.perf_counter() - t0
    out["zoo_evaluate_s"] = round(elapsed, 3)
    out["zoo_total_s"] = round(total + elapsed, 3)
    for name in models:
        out[f"zoo_naive_recall_at_10_{name}"] = round(result[name]["naive"]["recall_at_10"]["mean"], 4)
    return out


if __name__ == "__main__":
    print(json.dumps(bench_zoo(), indent=2))
