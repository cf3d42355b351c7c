"""The LLM part of the pipeline through real DVC: base model, SFT, GDRT (groups scored by the SFT model), Eq. 2
item groups, window evaluation of every recommender, the report and its plots; and `dvc exp run -S method.tau=...`
re-training GDRT only. The project is built once per test run (``llm_project`` in conftest.py); the experiment runs
on a copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import copy_project, dvc, ran

pytestmark = pytest.mark.slow

RECOMMENDERS = ("gdrt", "sft", "sasrec", "popularity")


def metrics(root: Path, stage: str) -> dict:
    return json.loads((root / "metrics" / f"{stage}.json").read_text())


def skipped(output: str) -> set[str]:
    lines = output.splitlines()
    return {line.split("'")[1] for line in lines if line.startswith("Stage '") and "didn't change" in line}


def test_every_llm_stage_ran_in_order(llm_project: tuple[Path, str]) -> None:
    _root, out = llm_project
    order = ran(out)
    llm = [s for s in order if s.startswith(("llm-", "train-", "gdrt-"))]
    assert llm[:4] == ["llm-base", "train-sft", "gdrt-groups", "train-gdrt"], order
    assert set(llm) == {
        "llm-base",
        "train-sft",
        "gdrt-groups",
        "train-gdrt",
        "llm-relevance",
        "llm-report",
        *(f"llm-eval-{r}" for r in RECOMMENDERS),
    }
    assert order[-2:] == ["tables", "track"]


def test_training_metrics_and_checkpoints_cleaned(llm_project: tuple[Path, str]) -> None:
    root, _ = llm_project
    for method in ("sft", "gdrt"):
        m = metrics(root, f"train-{method}")
        assert m["rows"] == 32 and m["steps"] == 2 and m["tokens_per_s"] > 0, m
        assert (root / "data" / "llm" / method / "model.safetensors").is_file()
        course = root / "data" / "llm" / method / "course.parquet"
        assert course.is_file()
    assert not any((root / ".lure" / "checkpoints").glob("*")), "checkpoints must be removed after success"
    groups = metrics(root, "gdrt-groups")
    assert len(groups["centers"]) == 3 and groups["centers"] == sorted(groups["centers"], reverse=True)
    assert abs(sum(groups["group_share"]) - 1) < 1e-3


def test_report_has_every_recommender_and_plausible_values(llm_project: tuple[Path, str]) -> None:
    root, _ = llm_project
    report = metrics(root, "llm-report")
    world = report["world"]
    assert set(world) == set(RECOMMENDERS)
    for name, values in world.items():
        for key in ("ndcg_at_5", "ndcg_at_10", "hit_at_5", "hit_at_10", "mgu_at_5", "dgu_at_5"):
            assert 0.0 <= values[key] <= (2.0 if key == "dgu_at_5" else 1.0), (name, key, values[key])
        assert values["hit_at_10"] >= values["hit_at_5"] >= values["ndcg_at_5"] - 1e-12
    assert set(report["comparison"]) == {"gdrt_vs_sft", "gdrt_vs_sasrec", "gdrt_vs_popularity"}
    assert set(report["attribution"]) == {"base", "sft", "gdrt"}
    for name in ("attribution", "top1_groups", "course"):
        for ext in ("csv", "png"):
            assert (root / "plots" / "llm" / f"{name}.{ext}").stat().st_size > 0


def test_set_tau_retrains_gdrt_only(llm_project: tuple[Path, str], tmp_path: Path) -> None:
    root = copy_project(llm_project[0], tmp_path / "proj")
    before = metrics(root, "train-sft")
    out = dvc("exp", "run", "-S", "method.tau=0.3", cwd=root).stdout
    # tau re-trains GDRT and re-evaluates it; the base model, SFT, the token groups, the item groups and the
    # baselines' evaluation are reused
    assert set(ran(out)) == {"validate", "train-gdrt", "llm-eval-gdrt", "llm-report", "tables", "track"}, out
    assert {"llm-base", "train-sft", "gdrt-groups", "llm-relevance", "prepare"} <= skipped(out), out
    assert {"llm-eval-sft", "llm-eval-sasrec", "llm-eval-popularity"} <= skipped(out), out
    assert metrics(root, "train-sft") == before
    assert metrics(root, "train-gdrt")["rows"] == 32
