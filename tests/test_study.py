"""Across-seed study from `dvc exp show --json` (lure.study): parsing, same-spec filtering and the per-seed pairing
(the t interval itself is tested in test_stats.py)."""

from __future__ import annotations

import numpy as np
import pytest

from lure.stats import t_interval
from lure.study import experiment_reports, same_spec, seed_study


def row(rev: str, name: str | None, seed: int, gdrt: float, sft: float) -> dict:
    report = {"world": {"gdrt": {"ndcg_at_10": gdrt}, "sft": {"ndcg_at_10": sft}}, "comparison": {}}
    return {
        "rev": rev,
        "name": name,
        "data": {
            "rev": rev,
            "params": {"params.yaml": {"data": {"seed": seed, "method": {"tau": 0.5}}}},
            "metrics": {"metrics/llm-report.json": {"data": report}, "metrics/other.json": {"data": {"x": 1}}},
        },
    }


SHOWN = [
    {**row("workspace", None, 0, 0.30, 0.20), "experiments": None},
    {
        **row("abc123", "main", 0, 0.30, 0.20),
        "experiments": [
            {"revs": [{**row("e1", "exp-seed1", 1, 0.25, 0.22), "experiments": None}], "name": "exp-seed1"},
            {
                "revs": [{**row("e2", "exp-seed2", 2, 0.35, 0.24), "experiments": None}],
                "name": "exp-seed2",
                "executor": {"state": "success"},
            },
            # still running: its workspace holds the baseline's metrics under the new seed; must not count
            {
                "revs": [{**row("e3", "exp-seed3", 3, 0.30, 0.20), "experiments": None}],
                "name": "exp-seed3",
                "executor": {"state": "running"},
            },
        ],
    },
]


def test_reports_are_found_once_per_seed() -> None:
    reports = experiment_reports(SHOWN)
    assert sorted(r["seed"] for r in reports) == [0, 1, 2]


def test_seed_study_pairs_by_seed() -> None:
    frame = seed_study(experiment_reports(SHOWN), "gdrt", "sft", "world", ["ndcg_at_10"], 0.9)
    diff = frame[frame["what"] == "gdrt-sft"].iloc[0]
    # seeds 0, 1, 2: gdrt - sft = 0.30 - 0.20, 0.25 - 0.22, 0.35 - 0.24 (paired by seed)
    assert diff["n_seeds"] == 3 and diff["values"] == [0.1, 0.03, 0.11]
    paired = np.subtract([0.30, 0.25, 0.35], [0.20, 0.22, 0.24])
    assert (diff["mean"], diff["ci_low"], diff["ci_high"]) == t_interval(paired, 0.9)
    gdrt = frame[frame["what"] == "gdrt"].iloc[0]
    assert (gdrt["mean"], gdrt["ci_low"], gdrt["ci_high"]) == t_interval([0.30, 0.25, 0.35], 0.9)
    with pytest.raises(ValueError, match="no experiment"):
        seed_study(experiment_reports(SHOWN), "gdrt", "sasrec", "world", ["ndcg_at_10"], 0.95)


def test_only_experiments_of_the_same_spec_count() -> None:
    older = row("old1", "seed-1-of-an-older-spec", 1, 0.9, 0.1)
    older["data"]["params"]["params.yaml"]["data"]["method"] = {"tau": 0.3}
    reports = experiment_reports([*SHOWN, {**older, "experiments": None}])
    kept, skipped = same_spec(reports, {"seed": 0, "method": {"tau": 0.5}})
    assert sorted(r["seed"] for r in kept) == [0, 1, 2]  # the seed itself is not part of the comparison
    assert [r["name"] for r in skipped] == ["seed-1-of-an-older-spec"]
