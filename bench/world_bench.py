"""Wall-clock cost of generating the simulated world, by number of users (default catalogue of 800 items).

Run: ``python bench/world_bench.py [sizes...]``. Goal: 10k users <= 30 s on 2 cores; 100k must finish.
"""

from __future__ import annotations

import json
import sys
import time

from lure.data.world import generate_world
from lure.spec.source import WorldSpec


def _label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def bench_world(sizes: tuple[int, ...] = (1_000, 10_000, 100_000), seed: int = 0) -> dict[str, float]:
    """Seconds to generate a default world with each number of users: ``{"world_gen_s_1k": ..., ...}``.

    Also reports exposures per second of the largest size (``world_exposures_per_s``), the throughput figure
    that stays comparable when the default activity or slate size changes.
    """
    out: dict[str, float] = {}
    for n in sizes:
        start = time.perf_counter()
        world = generate_world(WorldSpec(n_users=n), seed)
        elapsed = time.perf_counter() - start
        out[f"world_gen_s_{_label(n)}"] = round(elapsed, 3)
        out["world_exposures_per_s"] = round(len(world.exposures) / elapsed, 1)
        del world
    return out


if __name__ == "__main__":
    sizes = tuple(int(a) for a in sys.argv[1:]) or (1_000, 10_000, 100_000)
    print(json.dumps(bench_world(sizes), indent=2))
