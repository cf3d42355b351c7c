"""ExpoSynth's cost (issue 15). Run: ``python -m bench.exposynth_bench`` (``make bench`` runs it too).

* ``exposynth_ml1m_seconds``: the ``paper`` preset on every MovieLens-1M rating, the work the public code does in
  79 s on one core (T and S from the log, anchors, 6,040 users x 8 steps, up to 10 tries each). Goal <= 8 s.
* ``exposynth_ml1m_peak_rss_mb``: the process's peak resident memory after it (loading ML-1M included). Goal < 4 GB.
* ``exposynth_world_seconds``: the default spec's ``exposynth`` work on the default world (the corrected preset).
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.offline_eval_bench import RAW, ensure_movielens_1m


def bench_exposynth() -> dict[str, float | str]:
    from lure.data.canonical import popularity_bins
    from lure.data.prepare import prepare
    from lure.data.sources.movielens import load_ml1m
    from lure.exposynth.run import run_exposynth
    from lure.layout import Prepared
    from lure.spec.exposynth import ExposynthSpec
    from lure.spec.model import Spec

    figures: dict[str, float | str] = {}
    if ensure_movielens_1m():
        raw = load_ml1m(RAW / "movielens-1m")
        log = raw.interactions[["user_id", "item_id", "timestamp"]]
        items = raw.items[["item_id", "genres"]].copy()
        items["popularity"] = np.bincount(log["item_id"], minlength=len(items))
        items["pop_bin"] = popularity_bins(items["popularity"].to_numpy(), 5)
        t0 = time.perf_counter()
        synth = run_exposynth(log, items, ExposynthSpec(preset="paper"), 5, seed=0)
        figures["exposynth_ml1m_seconds"] = round(time.perf_counter() - t0, 3)
        figures["exposynth_ml1m_accepted"] = synth.report["accepted"]
        figures["exposynth_ml1m_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    else:
        figures["exposynth_ml1m_seconds"] = "skipped: MovieLens-1M not available (data/raw/movielens-1m)"
    spec = Spec()
    with tempfile.TemporaryDirectory() as tmp:
        prepare(spec.data, spec.seed, Path(tmp))
        prepared = Prepared(tmp)
        train, items = prepared.read_split("holdout", "train"), prepared.read_items()
        t0 = time.perf_counter()
        run_exposynth(train, items, spec.exposynth, spec.data.bins.n_pop_bins, spec.seed)
        figures["exposynth_world_seconds"] = round(time.perf_counter() - t0, 3)
    return figures


if __name__ == "__main__":
    for key, value in bench_exposynth().items():
        print(f"{key}: {value}")
