"""Across-seed study from `dvc exp show --json` (lure.study): parsing and the t intervals, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lure.study import experiment_reports, same_spec, seed_study, t_interval


def row(rev: str, name: str | None, seed: int, gdrt: float, sft: float) -> dict:
    report = {"world": {"gdrt": {"ndcg_at_10": gdrt}, "sft": {"ndcg_at_10": sft}}, "comparison": {}}
    return {"rev": rev, "name": name, "data": {
        "rev": rev, "params": {"params.yaml": {"data": {"seed": seed, "method": {"tau": 0.5}}}},
        "metrics": {"metrics/llm-report.json": {"data": report}, "metrics/other.json": {"data": {"x": 1}}},
    }}


SHOWN = [
    {**row("workspace", None, 0, 0.30, 0.20), "experiments": None},
    {**row("abc123", "main", 0, 0.30, 0.20), "experiments": [
        {"revs": [{**row("e1", "exp-seed1", 1, 0.25, 0.22), "experiments": None}], "name": "exp-seed1"},
        {"revs": [{**row("e2", "exp-seed2", 2, 0.35, 0.24), "experiments": None}], "name": "exp-seed2",
         "executor": {"state": "success"}},
        # still running: its workspace holds the baseline's metrics under the new seed; must not count
        {"revs": [{**row("e3", "exp-seed3", 3, 0.30, 0.20), "experiments": None}], "name": "exp-seed3",
         "executor": {"state": "running"}},
    ]},
]


def test_reports_are_found_once_per_seed() -> None:
    reports = experiment_reports(SHOWN)
    assert sorted(r["seed"] for r in reports) == [0, 1, 2]


def test_t_interval_by_hand() -> None:
    mean, lo, hi = t_interval([1.0, 2.0, 3.0], 0.95)
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t_{0.975, 2} * s / sqrt(n), s = 1
    assert mean == 2.0 and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    assert t_interval([5.0]) == (5.0, 5.0, 5.0)


def test_seed_study_pairs_by_seed() -> None:
    frame = seed_study(experiment_reports(SHOWN), "gdrt", "sft", "world", ["ndcg_at_10"])
    diff = frame[frame["what"] == "gdrt-sft"].iloc[0]
    assert diff["n_seeds"] == 3 and diff["values"] == [0.1, 0.03, 0.11]
    assert diff["mean"] == pytest.approx(np.mean([0.1, 0.03, 0.11]))
    assert diff["ci_low"] < diff["mean"] < diff["ci_high"]
    with pytest.raises(ValueError, match="no experiment"):
        seed_study(experiment_reports(SHOWN), "gdrt", "sasrec", "world", ["ndcg_at_10"])


def test_only_experiments_of_the_same_spec_count() -> None:
    older = row("old1", "seed-1-of-an-older-spec", 1, 0.9, 0.1)
    older["data"]["params"]["params.yaml"]["data"]["method"] = {"tau": 0.3}
    reports = experiment_reports([*SHOWN, {**older, "experiments": None}])
    kept, skipped = same_spec(reports, {"seed": 0, "method": {"tau": 0.5}})
    assert sorted(r["seed"] for r in kept) == [0, 1, 2]  # the seed itself is not part of the comparison
    assert [r["name"] for r in skipped] == ["seed-1-of-an-older-spec"]
