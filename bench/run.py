"""Run every benchmark and write one JSON file of figures (seconds unless the name says otherwise)."""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lure.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Median wall time of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_spec() -> dict[str, float]:
    from lure.pipeline.generate import render_dvc_yaml
    from lure.spec.load import load_spec

    spec = load_spec(ROOT / "params.yaml")
    return {
        "spec_validate_s": timed(lambda: load_spec(ROOT / "params.yaml"), 50),
        "dvc_yaml_generate_s": timed(lambda: render_dvc_yaml(spec), 50),
    }


def bench_noop_repro() -> dict[str, float]:
    """`dvc repro` on an up-to-date pipeline (the first call brings it up to date if needed)."""
    dvc = [sys.executable, "-m", "dvc", "repro"]
    subprocess.run(dvc, cwd=ROOT, check=True, capture_output=True)
    return {"dvc_repro_noop_s": timed(lambda: subprocess.run(dvc, cwd=ROOT, check=True, capture_output=True), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench.json")
    parser.add_argument("--world-sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    args = parser.parse_args(argv)

    from bench.abpo_bench import bench_abpo
    from bench.exposynth_bench import bench_exposynth
    from bench.judge_bench import bench_judge
    from bench.llm_bench import bench_llm
    from bench.offline_eval_bench import bench_offline_eval
    from bench.reclaif_bench import bench_reclaif
    from bench.requests_throughput import bench_requests
    from bench.train_bench import bench_train
    from bench.world_bench import bench_world

    figures: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": len(__import__("os").sched_getaffinity(0))}
    }
    benches = [
        ("spec", bench_spec),
        ("world", lambda: bench_world(tuple(args.world_sizes))),
        ("offline evaluation (MovieLens-1M)", bench_offline_eval),
        ("LLM ranking (tiny model, 2,000 titles)", bench_llm),
        ("SFT vs GDRT training step (tiny model)", bench_train),
        ("LLM request layer (loopback server, 50 ms answers)", bench_requests),
        ("simulated judge (default world)", bench_judge),
        ("ExpoSynth (MovieLens-1M, paper preset)", bench_exposynth),
        ("RecLAIF (default world, tiny model)", bench_reclaif),
        ("ABPO vs GRPO update step (default world, tiny model)", bench_abpo),
        ("dvc", bench_noop_repro),
    ]
    for name, fn in benches:
        print(f"bench: {name} ...", flush=True)
        figures.update(fn())
    at_most = {
        "dvc_repro_noop_s": 3.0,
        "world_gen_s_10k": 30.0,
        "ml1m_propensity_logistic_fit_s": 60.0,
        "ml1m_zoo_total_s": 60.0,
        "llm_rank_top10_s_per_user": 0.2,
        "gdrt_over_sft_step_ratio": 1.10,
        "requests_cached_rerun_s_10k": 5.0,
        "judge_stages_s": 30.0,
        "exposynth_ml1m_seconds": 8.0,
        "exposynth_ml1m_peak_rss_mb": 4096.0,
        "reclaif_dpo_step_s": 2.0,
        "abpo_over_grpo_step_ratio": 1.15,
    }
    at_least = {
        "pairs_per_min": 1_000_000,
        "requests_throughput_ratio_c16": 0.9,
        "reclaif_answers_per_s": 10.0,
        "reclaif_judged_pairs_per_min": 10_000.0,
        "abpo_rollouts_per_s": 100.0,
    }
    goals = {
        k: {"goal": f"<= {v}", "measured": figures.get(k), "met": figures.get(k, 1e18) <= v} for k, v in at_most.items()
    }
    goals.update(
        {
            k: {"goal": f">= {v}", "measured": figures.get(k), "met": figures.get(k, -1) >= v}
            for k, v in at_least.items()
        }
    )
    figures["goals"] = goals
    write_json(args.out, figures)
    for key, value in figures.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
