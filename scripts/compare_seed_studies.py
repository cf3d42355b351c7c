"""Compare two seed studies written by ``lure study --out`` (e.g. the old seeding against named random streams).

Why: a change that redraws every random number (a new seeding scheme, a new world generator) must be judged
against seed-to-seed noise, not against one seed. For every (metric, recommender) present in both studies this
prints both sets of per-seed values, the difference of means (new − old) with a 95 % Welch interval, and Welch's
t-test p-value, as a Markdown table.

    python scripts/compare_seed_studies.py OLD.csv[,OLD2.csv] NEW.csv[,NEW2.csv]
"""

from __future__ import annotations

import ast
import sys

import numpy as np
import pandas as pd
from scipy import stats


def load(paths: list[str]) -> pd.Series:
    """Per-seed values by (metric, what) from one or more ``lure study --out`` CSV files."""
    frame = pd.concat([pd.read_csv(p) for p in paths]).drop_duplicates(["metric", "what"])
    frame["values"] = frame["values"].map(ast.literal_eval)
    return frame.set_index(["metric", "what"])["values"]


def welch(old: np.ndarray, new: np.ndarray) -> tuple[float, float, float, float]:
    """(new − old, interval low, interval high, p) by Welch's unequal-variance t."""
    diff = float(new.mean() - old.mean())
    var_old, var_new = old.var(ddof=1) / len(old), new.var(ddof=1) / len(new)
    se = float(np.sqrt(var_old + var_new))
    if se == 0.0:
        return diff, diff, diff, 1.0 if diff == 0.0 else 0.0
    dof = (var_old + var_new) ** 2 / (var_old**2 / (len(old) - 1) + var_new**2 / (len(new) - 1))
    half = float(stats.t.ppf(0.975, dof)) * se
    p = float(stats.ttest_ind(new, old, equal_var=False).pvalue)
    return diff, diff - half, diff + half, p


def main(old_paths: str, new_paths: str) -> None:
    old, new = load(old_paths.split(",")), load(new_paths.split(","))
    print("| metric | recommender | old (per seed) | new (per seed) | new − old [95 % Welch interval] | Welch p |")
    print("|---|---|---|---|---|---|")
    for key in old.index:
        if key not in new.index:
            continue
        a, b = np.asarray(old[key], dtype=float), np.asarray(new[key], dtype=float)
        diff, low, high, p = welch(a, b)
        values = lambda v: ", ".join(f"{x:.4f}" for x in v)  # noqa: E731
        print(f"| {key[0]} | {key[1]} | {values(a)} | {values(b)} | {diff:+.4f} [{low:+.4f}, {high:+.4f}] | {p:.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
