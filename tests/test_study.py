"""Across-seed study from `dvc exp show --json` (lure.study): parsing, same-spec filtering and the per-seed pairing
(the t interval itself is tested in test_stats.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


def with_language_bias(rev: str, name: str, seed: int, prior_share: tuple[float, float], groups: list[float]) -> dict:
    """A row whose report has a language-bias block and whose llm-eval-gdrt file has the top-1 group shares."""
    out = row(rev, name, seed, 0.3, 0.2)
    report = out["data"]["metrics"]["metrics/llm-report.json"]["data"]
    report["language_bias"] = {
        "gdrt": {"top1_top_prior_share": prior_share[0]},
        "sft": {"top1_top_prior_share": prior_share[1]},
    }
    out["data"]["metrics"]["metrics/llm-eval-gdrt.json"] = {"data": {"top1_group_share": groups, "hit_at_10": 0.9}}
    out["data"]["metrics"]["metrics/llm-eval-sft.json"] = {"data": {"top1_group_share": [1.0, 0.0, 0.0]}}
    return {**out, "experiments": None}


def test_language_bias_and_top1_groups_are_study_metrics() -> None:
    shown = [
        with_language_bias("a", "s0", 0, (0.98, 0.18), [0.0, 0.1, 0.9]),
        with_language_bias("b", "s1", 1, (0.60, 0.30), [0.2, 0.0, 0.8]),
    ]
    frame = seed_study(
        experiment_reports(shown), "gdrt", "sft", "world", ["top1_top_prior_share", "top1_group_share.2"], 0.95
    )
    prior = frame[(frame["metric"] == "top1_top_prior_share") & (frame["what"] == "gdrt-sft")].iloc[0]
    assert prior["values"] == [0.8, 0.3]  # 0.98 - 0.18, 0.60 - 0.30
    group = frame[frame["metric"] == "top1_group_share.2"].set_index("what")
    assert group.loc["gdrt", "values"] == [0.9, 0.8] and group.loc["sft", "values"] == [0.0, 0.0]
    # the report row wins over the evaluation file where both name a metric (hit_at_10 is absent from this report)
    with pytest.raises(ValueError, match=r"metric 'hit_at_10': not reported for 'sft' at seed 0; it has .*ndcg_at_10"):
        seed_study(experiment_reports(shown), "gdrt", "sft", "world", ["hit_at_10"], 0.95)


def test_study_cli_selects_one_grid_cell(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lure study -S method.tau=0.1` compares only the experiments run with that value (and params.yaml otherwise)."""
    import shutil
    from pathlib import Path

    import yaml
    from typer.testing import CliRunner

    from lure import cli, experiments

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    params = yaml.safe_load((root / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)

    def cell(rev: str, seed: int, tau: float, gdrt: float) -> dict:
        out = row(rev, rev, seed, gdrt, 0.2)
        out["data"]["params"]["params.yaml"]["data"] = {
            **params,
            "seed": seed,
            "method": {**params["method"], "tau": tau},
        }
        return {**out, "experiments": None}

    shown = [cell("t05-s0", 0, 0.5, 0.30), cell("t01-s0", 0, 0.1, 0.10), cell("t01-s1", 1, 0.1, 0.12)]
    monkeypatch.setattr(experiments, "dvc_exp_show", lambda all_commits=True: shown)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["study", "-S", "method.tau=0.1", "--metric", "ndcg_at_10", "--out", "s.csv"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 experiment(s)" in result.output and "t05-s0" in result.output
    frame = pd.read_csv(tmp_path / "s.csv")
    assert frame.set_index("what").loc["gdrt", "values"] == "[0.1, 0.12]"
    bad = runner.invoke(cli.app, ["study", "-S", "method.tau=abc"])
    assert bad.exit_code != 0 and "method.tau" in bad.output


def test_list_metrics_are_read_from_the_experiment_revision(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dvc exp show --json` drops lists, so top1_group_share comes from the metrics file at the experiment's rev."""
    import json
    import subprocess

    from lure.study import with_eval_files

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "llm-eval-gdrt.json").write_text(json.dumps({"top1_group_share": [0.1, 0.9]}))
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "exp")
    rev = git("rev-parse", "HEAD")
    # the workspace has moved on since: the experiment's own file must be read, not the one on disk
    (tmp_path / "metrics" / "llm-eval-gdrt.json").write_text(json.dumps({"top1_group_share": [0.5, 0.5]}))
    monkeypatch.chdir(tmp_path)
    shown = [{**row(rev, "exp", 0, 0.3, 0.2), "experiments": None}]
    reports = with_eval_files(experiment_reports(shown), ["gdrt", "sft"])
    frame = seed_study(reports, "gdrt", "sft", "world", ["ndcg_at_10"], 0.95)
    assert not frame.empty
    assert reports[0]["evals"]["gdrt"] == {"top1_group_share": [0.1, 0.9]}
    assert "sft" not in reports[0]["evals"]  # no file at that revision: nothing invented
    workspace = with_eval_files([{**reports[0], "rev": "workspace", "evals": {}}], ["gdrt"])
    assert workspace[0]["evals"]["gdrt"] == {"top1_group_share": [0.5, 0.5]}
