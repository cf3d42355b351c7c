"""Offline-evaluation benchmarks on MovieLens-1M through the real code paths (prepare → propensity → pairs →
zoo → evaluate). Goals: logistic propensity fit ≤ 60 s; ≥ 1M pairs per minute; the zoo's evaluation ≤ 60 s.

ML-1M comes from ``data/raw/movielens-1m/`` (put the GroupLens files there, or let ``prepare`` fetch them when
online); on a machine with the shared test data, ``../shared/data/get-movielens.sh`` provides them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
GET_MOVIELENS = ROOT.parent / "shared" / "data" / "get-movielens.sh"


def ensure_movielens_1m(raw: Path = RAW) -> bool:
    """ML-1M files under ``raw/movielens-1m``: already there, or copied from the shared test-data script."""
    target = raw / "movielens-1m"
    if (target / "ratings.dat").is_file():
        return True
    if not GET_MOVIELENS.is_file():
        return False
    cache = raw / "_cache"
    subprocess.run(["bash", str(GET_MOVIELENS), str(cache)], check=True, capture_output=True)
    shutil.copytree(cache / "ml-1m", target, dirs_exist_ok=True)
    return (target / "ratings.dat").is_file()


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 3)


def bench_offline_eval(seed: int = 0, pairs_target: int = 1_000_000) -> dict[str, float | str]:
    from lure.data.prepare import prepare
    from lure.evaluation import evaluate_zoo
    from lure.models.zoo import build_model, top_k
    from lure.pairs import load_candidates, sample_pairs
    from lure.propensity import fit_propensity
    from lure.spec.data import DataSpec
    from lure.spec.eval import EvalSpec
    from lure.spec.pairs import PairsSpec
    from lure.spec.propensity import PropensitySpec

    if not ensure_movielens_1m():
        return {"offline_eval_bench": "skipped: MovieLens-1M files not available (see bench docstring)"}
    out: dict[str, float | str] = {"offline_eval_bench_data": "movielens-1m"}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        stats, out["ml1m_prepare_s"] = _timed(
            lambda: prepare(DataSpec.model_validate({"source": {"name": "movielens-1m", "raw_dir": str(RAW)}}), seed, d)
        )
        out["ml1m_interactions"] = stats["interactions"]
        model, out["ml1m_propensity_logistic_fit_s"] = _timed(
            lambda: fit_propensity(PropensitySpec(model={"name": "logistic"}), d, seed)
        )
        test = pd.read_parquet(d / "splits" / "holdout_test.parquet")
        train = pd.read_parquet(d / "splits" / "holdout_train.parquet")
        spec = PairsSpec(per_user=max(1, -(-pairs_target // test["user_id"].nunique())))
        cand = load_candidates(spec.match_on, d)
        pairs, secs = _timed(lambda: sample_pairs(spec, d, model, seed, candidates=cand))
        out["ml1m_pairs"] = len(pairs)
        out["pairs_per_min"] = round(len(pairs) / secs * 60)

        eval_spec = EvalSpec()
        n_items = len(pd.read_parquet(d / "items.parquet", columns=["item_id"]))
        n_users = int(max(train["user_id"].max(), test["user_id"].max())) + 1
        users = np.unique(test["user_id"].to_numpy())
        topk = {}
        t_zoo = time.perf_counter()
        for name in eval_spec.models:
            fitted, out[f"ml1m_zoo_{name}_fit_s"] = _timed(
                lambda name=name: build_model(name, eval_spec).fit(train, n_users, n_items, seed)
            )
            topk[name], out[f"ml1m_zoo_{name}_topk_s"] = _timed(
                lambda fitted=fitted: top_k(fitted, users, train, eval_spec.topk)
            )
        pi = model.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
        _, out["ml1m_evaluate_s"] = _timed(
            lambda: evaluate_zoo(
                topk, test, pi, list(eval_spec.ks), train, None, None, eval_spec.bootstrap, eval_spec.confidence, seed
            )
        )
        out["ml1m_zoo_total_s"] = round(time.perf_counter() - t_zoo, 3)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(bench_offline_eval(), indent=2))
