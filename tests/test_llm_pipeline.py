"""The LLM part of the pipeline through real DVC: base model, SFT, GDRT (groups scored by the SFT model), Eq. 2
item groups, window evaluation of every recommender, the judged pairs scored by the fine-tuned ones, the report and
its plots; and `dvc exp run -S method.tau=...` re-training GDRT only. The project is built once per test run
(``llm_project`` in conftest.py); the experiment runs on a copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import copy_project, dvc, ran

pytestmark = pytest.mark.slow

RECOMMENDERS = ("gdrt", "sft", "sasrec", "popularity")
FINE_TUNED = ("gdrt", "sft")  # the recommenders that score the judged pairs in llm-pairs-<method>


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
        *(f"llm-pairs-{m}" for m in FINE_TUNED),
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


def test_fine_tuned_recommenders_score_every_judged_pair(llm_project: tuple[Path, str]) -> None:
    """llm-pairs-<method> writes the zoo's pair-score columns for every row of the pairs, in their order."""
    import pandas as pd

    root, _ = llm_project
    pairs = pd.read_parquet(root / "data" / "pairs" / "pairs.parquet", columns=["user_id", "item_i", "item_j"])
    for method in FINE_TUNED:
        scored = pd.read_parquet(root / "data" / "llm" / "pairs" / method / "pair_scores.parquet")
        assert list(scored.columns) == ["user_id", "item_i", "item_j", "score_i", "score_j"]
        pd.testing.assert_frame_equal(scored[pairs.columns], pairs)
        values = scored[["score_i", "score_j"]].to_numpy()
        assert values.dtype == "float64" and np.isfinite(values).all() and (values < 0).all()
        m = metrics(root, f"llm-pairs-{method}")
        assert m["pairs_scored"] == len(pairs) and m["users"] == pairs["user_id"].nunique(), m


def test_set_tau_retrains_gdrt_only(llm_project: tuple[Path, str], tmp_path: Path) -> None:
    root = copy_project(llm_project[0], tmp_path / "proj")
    before = metrics(root, "train-sft")
    out = dvc("exp", "run", "-S", "method.tau=0.3", cwd=root).stdout
    # tau re-trains GDRT and re-evaluates it (its pair scores, hence the judge's metrics and Calib-Link, too); the
    # base model, SFT, the token groups, the item groups, the baselines' evaluation and the judge's answers are reused
    assert set(ran(out)) == {
        "validate",
        "train-gdrt",
        "llm-eval-gdrt",
        "llm-pairs-gdrt",
        "llm-report",
        "judge-metrics",
        "calibrate",
        "tables",
        "track",
    }, out
    assert "judge" in skipped(out), out
    assert {"llm-base", "train-sft", "gdrt-groups", "llm-relevance", "prepare"} <= skipped(out), out
    assert {"llm-eval-sft", "llm-eval-sasrec", "llm-eval-popularity", "llm-pairs-sft"} <= skipped(out), out
    assert metrics(root, "train-sft") == before
    assert metrics(root, "train-gdrt")["rows"] == 32


def test_report_shows_language_bias_before_and_after_fine_tuning(llm_project: tuple[Path, str]) -> None:
    """The base model (pretrained on the prior-weighted corpus) next to every recommender: attribution ratios and
    Eq. 2 correlations where a language model was scored, top-1 title-prior shares for everyone (the world)."""
    import pandas as pd

    root, _ = llm_project
    base = metrics(root, "llm-base")
    assert base["pretrain"]["steps"] == 10 and base["pretrain"]["rows"] == 160, base["pretrain"]
    assert set(base["language_prior"]) == {"eq2_spearman_popularity", "eq2_spearman_prior"}
    bias = metrics(root, "llm-report")["language_bias"]
    assert set(bias) == {"base", *RECOMMENDERS}
    llm_columns = {"ratio_task_to_history", "ratio_first_token_to_history", "eq2_spearman_prior"}
    for name in ("base", "sft", "gdrt"):
        assert llm_columns <= set(bias[name]), (name, bias[name])
    for name in RECOMMENDERS:
        top1 = metrics(root, f"llm-eval-{name}")["language_prior"]["top1_prior"]
        assert top1["windows"] > 0 and abs(sum(top1["share"]) - 1) < 1e-9 and abs(sum(top1["expected"]) - 1) < 1e-9
        assert bias[name]["top1_top_prior_excess"] == top1["share"][0] - top1["expected"][0]
    assert not llm_columns & set(bias["sasrec"])  # a classic baseline has no attribution and no Eq. 2
    table = pd.read_csv(root / "reports" / "llm" / "language_bias.csv")
    assert table["model"].tolist() == ["base", *RECOMMENDERS]
