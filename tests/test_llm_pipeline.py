"""The LLM part of the pipeline through real DVC: base model, SFT, GDRT (groups scored by the SFT model), Eq. 2
item groups, window evaluation of every recommender, the report and its plots. (That `dvc exp run -S method.tau=...`
re-runs GDRT training and what follows only is checked on the probe project of test_dvc_pipeline.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SMALL_LLM, dvc, make_project

pytestmark = pytest.mark.slow

LLM_WORLD = """\
seed: 0
data:
  world: {n_users: 80, n_items: 60, activity_mean: 12, mar_fraction: 0.2, mar_exposures_per_user: 10}
method: {name: gdrt, tau: 0.5, groups: 3, relevance_model: sft}
baselines: [sft, sasrec, popularity]
eval:
  models: [popularity]
  bootstrap: 20
  sasrec: {epochs: 2, hidden: 16}
  llm: {max_samples: 12, attribution_samples: 3, fairness_scorer: sft, bootstrap: 50}
tracking: {enabled: false}
""" + SMALL_LLM.replace("course_points: 1", "course_points: 2")

RECOMMENDERS = ("gdrt", "sft", "sasrec", "popularity")


@pytest.fixture(scope="module")
def llm_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = make_project(tmp_path_factory.mktemp("llm") / "proj", LLM_WORLD)
    out = dvc("repro", cwd=root).stdout
    return root, out


def metrics(root: Path, stage: str) -> dict:
    return json.loads((root / "metrics" / f"{stage}.json").read_text())


def test_every_llm_stage_ran_in_order(llm_project: tuple[Path, str]) -> None:
    root, out = llm_project
    order = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")]
    llm = [s for s in order if s.startswith(("llm-", "train-", "gdrt-"))]
    assert llm[:4] == ["llm-base", "train-sft", "gdrt-groups", "train-gdrt"], order
    assert set(llm) == {"llm-base", "train-sft", "gdrt-groups", "train-gdrt", "llm-relevance", "llm-report",
                        *(f"llm-eval-{r}" for r in RECOMMENDERS)}
    assert order[-2:] == ["tables", "track"]


def test_training_metrics_and_checkpoints_cleaned(llm_project: tuple[Path, str]) -> None:
    root, _ = llm_project
    for method in ("sft", "gdrt"):
        m = metrics(root, f"train-{method}")
        assert m["rows"] == 32 and m["steps"] == 2 and m["tokens_per_s"] > 0, m
        assert (root / "data" / "llm" / method / "model.safetensors").is_file()
        course = (root / "data" / "llm" / method / "course.parquet")
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
