"""ABPO's stages under DVC on a tiny world: the prior policy's bandit log, two rounds of three compared methods,
the report with its ablation table and per-round chart, and a change of one method's switch re-running only that
method and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SMALL_LLM, SMALL_OFFLINE, dvc, make_project, ran

pytestmark = pytest.mark.slow

SPEC = {
    **SMALL_OFFLINE,
    **SMALL_LLM,
    "method": {"name": "sft"},
    "eval": {**SMALL_OFFLINE["eval"], "llm": {"max_samples": 4, "attribution_samples": 2}},
    "abpo": {
        "rounds": 2,
        "contexts": 8,
        "eval_contexts": 6,
        "group_size": 2,
        "batch_size": 4,
        "ctr_samples": 2,
        "variants": {
            "sft_positive": {"method": "sft_positive"},
            "grpo": {"method": "grpo"},
            "abpo": {"method": "abpo"},
        },
    },
}


def test_abpo_stages_run_under_dvc_and_rerun_only_what_a_change_touches(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", SPEC)
    stages = ran(dvc("repro", cwd=root).stdout)
    assert [s for s in stages if s.startswith(("banditlog", "abpo"))] == [
        "banditlog",
        "abpo-sft_positive",
        "abpo-grpo",
        "abpo-abpo",
        "abpo-report",
    ]
    log = pd.read_parquet(root / "data" / "abpo" / "banditlog" / "log.parquet")
    assert len(log) == 8 and (log["round"] == 1).all() and (log["policy"] == "prior:sft").all()
    assert ((log["mu"] > 0) & (log["mu"] <= 1)).all()
    contexts = pd.read_parquet(root / "data" / "abpo" / "banditlog" / "contexts.parquet")
    assert contexts.groupby("round").size().to_dict() == {0: 6, 1: 8, 2: 8}
    logs = pd.read_parquet(root / "data" / "abpo" / "abpo" / "logs.parquet")
    assert logs.groupby("round")["policy"].first().to_dict() == {1: "prior:sft", 2: "abpo:1"}  # round 2: its own
    round_2 = contexts[contexts["round"] == 2]["context_id"].tolist()
    assert logs[logs["round"] == 2]["context_id"].tolist() == round_2  # the same windows for every method
    metrics = json.loads((root / "metrics" / "abpo-abpo.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2]
    first = metrics["rounds"][0]
    assert {"hit_at_10", "ndcg_at_10", "true_ctr", "ips_ctr", "snips_ctr", "prior_exposed_share_at_10"} <= set(first)
    assert 0 <= first["true_ctr"] <= 1 and first["update"]["steps"] == 2  # 8 contexts / batches of 4
    table = pd.read_csv(root / "reports" / "abpo" / "ablation.csv")
    assert table["method"].tolist() == ["sft (round 0)", "sft_positive", "grpo", "abpo"]
    lines = (root / "plots" / "abpo-report" / "rounds.csv").read_text().splitlines()
    assert lines[0] == "metric,method,round,value" and len(lines) == 1 + 4 * 3 * 3  # metrics x methods x rounds 0-2
    report = json.loads((root / "metrics" / "abpo-report.json").read_text())
    assert set(report["world"]["methods"]) == {"sft_positive", "grpo", "abpo"}
    assert set(report["ope"]) == {"ips_ctr", "snips_ctr"}

    params = (root / "params.yaml").read_text()
    assert params.count("tempering: inverse") == 3  # one per variant (defaults written out)
    entry = "    abpo:\n      method: abpo\n      anchor_in_baseline: true\n      snips: true\n      tempering: "
    changed = params.replace(entry + "inverse", entry + "direct")
    assert changed != params
    (root / "params.yaml").write_text(changed)
    again = ran(dvc("repro", cwd=root).stdout)
    assert "abpo-abpo" in again and "abpo-report" in again
    assert set(again) <= {"validate", "abpo-abpo", "abpo-report", "tables", "track"}  # no log, no other method
