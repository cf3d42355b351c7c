"""The simulated judge on the default world: what the judge stages add to ``make repro``.

Run: ``python bench/judge_bench.py`` (``make bench`` runs it too). Figures (seconds, one process):

* ``judge_simulated_s``: the ``judge`` stage's work on the default world's matched pairs (1,000 users, 10 pairs
  each): prompts, the simulated judge behind the request layer with a fresh answer store, parsing;
* ``judge_simulated_cached_s``: the same again with every usable answer stored;
* ``judge_metrics_s``: ``judge-metrics`` for the five zoo scorings (random scores here; the cost does not depend on
  them) with 1,000 bootstrap resamples.

Goal: ``judge_simulated_s + judge_metrics_s`` <= 30 s (the simulated judge adds at most 30 s to the default
``make repro``; stage start-up, which DVC adds, is not included).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def bench_judge() -> dict[str, float]:
    from lure.data.prepare import prepare
    from lure.judge.evaluate import judge_report
    from lure.judge.run import run_judge
    from lure.layout import Prepared
    from lure.pairs import sample_pairs
    from lure.propensity import fit_propensity
    from lure.requests import ResponseCache
    from lure.spec.model import Spec

    spec = Spec()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        prepare(spec.data, spec.seed, out)
        propensity = fit_propensity(spec.propensity, out, seed=spec.seed)
        pairs = sample_pairs(spec.pairs, out, propensity, seed=spec.seed)
        prepared = Prepared(out)
        items, train = prepared.read_items(), prepared.read_split("holdout", "train")
        figures = {}
        with ResponseCache(out / "requests.sqlite") as cache:
            t0 = time.perf_counter()
            answers, _ = run_judge(pairs, items, train, spec.judge, spec.seed, cache)
            figures["judge_simulated_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_judge(pairs, items, train, spec.judge, spec.seed, cache)
            figures["judge_simulated_cached_s"] = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        keys = pairs[["user_id", "item_i", "item_j"]]
        scores = {
            m: keys.assign(score_i=rng.random(len(keys)), score_j=rng.random(len(keys))) for m in spec.eval.models
        }
        t0 = time.perf_counter()
        judge_report(pairs, answers, scores, spec.judge, spec.eval.bootstrap, spec.eval.confidence, spec.seed)
        figures["judge_metrics_s"] = time.perf_counter() - t0
    figures["judge_stages_s"] = figures["judge_simulated_s"] + figures["judge_metrics_s"]
    return figures


if __name__ == "__main__":
    for key, value in bench_judge().items():
        print(f"{key}: {value:.2f}")
