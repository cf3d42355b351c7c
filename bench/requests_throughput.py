"""The request layer's overhead, against the loopback server (``lure.requests.loopback``) in its own process.

Run: ``python bench/requests_throughput.py [n_requests]`` (``make bench`` runs it too). Figures:

* ``requests_throughput_ratio_c16``: requests per second through ``run_requests`` (openai backend, answer store
  on, concurrency 16) divided by the ideal 16 / 0.05 s = 320/s of a server that answers every request in exactly
  50 ms. Goal: >= 0.9 (the harness adds less than ~10 % to the server's latency). It needs the harness to spend
  well under 3 ms of CPU per request (``requests_client_cpu_ms_per_request``), with the server's own CPU beside.
* ``requests_cached_rerun_s_10k``: seconds to re-run 10,000 requests whose answers are all stored (keys computed,
  one lookup per 900 keys, no backend call). Goal: <= 5 s. The store is filled first by a real run at
  concurrency 64 (``requests_fill_per_s_c64``, for information).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lure.requests import ChatRequest, OpenAIConfig, ResponseCache, build_backend, run_requests

LATENCY_S = 0.05
CONCURRENCY = 16
KEY_ENV = "LURE_BENCH_REQUESTS_KEY"


def _requests(n: int, prefix: str) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=[
                {"role": "system", "content": "You compare two recommendations and answer in JSON."},
                {"role": "user", "content": f"{prefix} pair {i}: which list is better, A or B?"},
            ],
            max_tokens=16,
            response_format={"type": "json_object"},
        )
        for i in range(n)
    ]


def _start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "lure.requests.loopback", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
            ),
        },
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def bench_requests(n: int = 800, n_cached: int = 10_000, repeats: int = 3) -> dict[str, float]:
    """``{"requests_throughput_ratio_c16", "requests_per_s_c16", "requests_client_cpu_ms_per_request",
    "requests_fill_per_s_c64", "requests_cached_rerun_s_10k"}`` (see the module docstring).

    Throughput is the best of ``repeats`` passes of ``n`` fresh requests (timeit's convention: the least disturbed
    pass; the CPUs may be shared). ``requests_client_cpu_ms_per_request`` is this process's CPU time per request
    in that pass (the harness and the openai client; the server runs in another process): the throughput one
    free core could sustain is about 1000 / it.
    """
    os.environ.setdefault(KEY_ENV, "bench-key")
    server, url = _start_server(LATENCY_S)
    try:
        config = OpenAIConfig(base_url=url, model="bench", api_key_env=KEY_ENV, max_retries=0, timeout=30)
        with tempfile.TemporaryDirectory() as tmp, ResponseCache(Path(tmp) / "answers.sqlite") as cache:
            run_requests(build_backend(config), _requests(CONCURRENCY * 2, "warm-up"), cache, concurrency=CONCURRENCY)
            passes = []
            for p in range(repeats):
                timed = _requests(n, f"timed {p}")
                cpu, start = time.process_time(), time.perf_counter()
                result = run_requests(build_backend(config), timed, cache, concurrency=CONCURRENCY)
                passes.append((time.perf_counter() - start, time.process_time() - cpu))
                assert result.ledger.ok == n, result.ledger
            elapsed, cpu_s = min(passes)
            per_s = n / elapsed

            many = _requests(n_cached, "cached")
            start = time.perf_counter()
            filled = run_requests(build_backend(config), many, cache, concurrency=64)
            fill_s = time.perf_counter() - start
            assert filled.ledger.ok == n_cached, filled.ledger
            start = time.perf_counter()
            rerun = run_requests(build_backend(config), many, cache, concurrency=CONCURRENCY)
            rerun_s = time.perf_counter() - start
            assert rerun.ledger.sent == 0 and rerun.ledger.cache_hits == n_cached, rerun.ledger
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {
        "requests_throughput_ratio_c16": per_s / (CONCURRENCY / LATENCY_S),
        "requests_per_s_c16": per_s,
        "requests_client_cpu_ms_per_request": 1000 * cpu_s / n,
        "requests_fill_per_s_c64": n_cached / fill_s,
        "requests_cached_rerun_s_10k": rerun_s,
    }


if __name__ == "__main__":
    figures = bench_requests(int(sys.argv[1])) if len(sys.argv) > 1 else bench_requests()
    for name, value in figures.items():
        print(f"{name}: {value:.3f}")
