"""The proof that the machinery works end to end: on data where the answer is known, the corrections move the zoo's
offline metrics towards the truth and rank the zoo at least as well as the naive estimate (issue: offline
evaluation; the world's estimand and an 8-model Kendall check at library level are tests/test_estimand.py).

Runs the real DVC pipeline up to `evaluate` (prepare → propensity → pairs → zoo → evaluate) with the fitted logistic
propensity model — not the true propensities — on the default simulated world and on Coat (MAR test = truth).
Claims that do not hold are recorded as strict xfails with the measured numbers, never tuned away. Both projects are
built once per test run (``world_project`` and ``coat_project`` in conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def summary_of(root: Path) -> dict:
    return json.loads((root / "metrics" / "evaluate.json").read_text())["summary"]


@pytest.fixture(scope="module")
def world_summary(world_project: Path) -> dict:
    return summary_of(world_project)


@pytest.fixture(scope="module")
def coat_summary(coat_project: Path) -> dict:
    return summary_of(coat_project)


def test_world_snips_with_fitted_propensities_halves_the_error_of_the_naive_estimate(world_summary: dict) -> None:
    assert world_summary["target"] == "truth"
    assert world_summary["snips_error_ratio"] <= 0.5, world_summary


def test_world_reports_every_propensity_model_side_by_side(world_summary: dict) -> None:
    by = world_summary["by_propensity"]
    assert set(by) == {"logistic", "popularity", "true"}
    # With the true propensities plain IPS is unbiased (tests/test_estimand.py): its error is a small fraction.
    assert by["true"]["ips_error_ratio"] < 0.2, by["true"]
    assert by["logistic"]["snips_error_ratio"] == world_summary["snips_error_ratio"]


def test_world_snips_ranks_the_zoo_at_least_as_well_as_naive(world_summary: dict) -> None:
    for metric in ("recall_at_10", "dcg_at_10"):
        assert world_summary[f"kendall_tau_snips_{metric}"] >= world_summary[f"kendall_tau_naive_{metric}"], (
            world_summary
        )


def test_coat_ips_halves_the_error_against_the_mar_test(coat_summary: dict) -> None:
    assert coat_summary["target"] == "mar"
    assert "ips_error_ratio" not in coat_summary  # plain IPS needs the truth's normaliser
    assert coat_summary["ips_global_sn_error_ratio"] <= 0.5, coat_summary
    assert set(coat_summary["by_propensity"]) == {"logistic", "popularity"}  # no 'true' off the world


@pytest.mark.xfail(
    strict=True,
    reason="Measured on Coat (seed 0, logistic propensities): Kendall tau against the MAR ranking is 0.2 for IPS "
    "and 0.6 for naive on recall@10 (5 models; IPS over-rates item-kNN). The claim does not hold here.",
)
def test_coat_ips_ranks_the_zoo_at_least_as_well_as_naive(coat_summary: dict) -> None:
    assert coat_summary["kendall_tau_ips_global_sn_recall_at_10"] >= coat_summary["kendall_tau_naive_recall_at_10"], (
        coat_summary
    )
