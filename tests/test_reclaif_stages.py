"""RecLAIF's stages under DVC on a tiny world: data → distillation → one DPO iteration → evaluation, with Figure 3,
and a change of a DPO setting re-running only what it touches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SMALL_LLM, SMALL_OFFLINE, dvc, make_project, ran

pytestmark = pytest.mark.slow

SPEC = {
    **SMALL_OFFLINE,
    **SMALL_LLM,
    "eval": {**SMALL_OFFLINE["eval"], "sasrec": {"epochs": 1, "hidden": 16}},
    "reclaif": {
        "history": 4,
        "candidates": 5,
        "k": 2,
        "train_prompts": 24,
        "dpo_prompts": 8,
        "eval_prompts": 6,
        "sft_epochs": 1,
        "iterations": 1,
        "max_new_tokens": 40,
        "dpo": {"batch_size": 4},
    },
}


def test_reclaif_stages_run_under_dvc_and_rerun_only_what_a_change_touches(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", SPEC)
    first = dvc("repro", cwd=root)
    stages = ran(first.stdout)
    assert [s for s in stages if s.startswith(("llm-base", "reclaif"))] == [
        "llm-base",
        "reclaif-data",
        "reclaif-sft",
        "reclaif-dpo-1",
        "reclaif-eval",
    ]
    data = json.loads((root / "metrics" / "reclaif-data.json").read_text())
    assert data["instances"]["sft"] == 24 and data["teacher_valid_ratio"] == 1.0
    dpo = json.loads((root / "metrics" / "reclaif-dpo-1.json").read_text())
    assert dpo["pairs"]["judged"] == 8
    assert dpo["pairs"]["ok"] + dpo["pairs"]["tie"] + dpo["pairs"]["invalid"] == 8
    report = json.loads((root / "metrics" / "reclaif-eval.json").read_text())["world"]
    assert set(report["models"]) == {"teacher", "base", "sft", "dpo-1", "sasrec", "popularity"}
    assert report["models"]["sasrec"]["valid_ratio"]["mean"] == 1.0  # k candidates, each once, by construction
    assert report["models"]["teacher"]["valid_ratio"]["mean"] == 1.0
    assert "change_over_sft" in report["models"]["dpo-1"]
    assert (root / "plots" / "reclaif-eval" / "iterations.png").stat().st_size > 0
    lines = (root / "plots" / "reclaif-eval" / "iterations.csv").read_text().splitlines()
    assert lines[0] == "metric,step,model,mean,ci_low,ci_high" and len(lines) == 1 + 6 * 2  # 6 panels x (SFT, Iter1)

    params = (root / "params.yaml").read_text()
    assert params.count("beta: 0.1\n") == 1
    (root / "params.yaml").write_text(params.replace("beta: 0.1\n", "beta: 0.2\n"))
    again = ran(dvc("repro", cwd=root).stdout)
    assert "reclaif-dpo-1" in again and "reclaif-eval" in again
    assert set(again) <= {"validate", "reclaif-dpo-1", "reclaif-eval", "tables", "track"}  # no data, no SFT
