"""Benchmarks: `make bench` writes their figures to reports/bench.json (timings never go into tests)."""
