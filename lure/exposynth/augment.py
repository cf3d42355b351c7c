"""The evaluate -> synthesize -> re-evaluate loop (issue 15, point 5): each zoo model re-trained on real + synthetic
interactions and evaluated again exactly as before (the same held-out log, propensities, pairs and judge labels),
overall and on the head and the tail of the catalogue.

What never changes: the synthetic rows enter the *fit* of the re-trained model only. The held-out log, the
propensities of its rows, the truth, the MAR log and the matched pairs are the stage's inputs untouched, and the
top-K lists still exclude the user's real training items only (a synthetic item is not something the user consumed,
so it may be recommended).

Slices: ``all``; ``head`` = held-out positives on items of popularity bins < ``tail_from`` and ``tail`` = on bins >=
``tail_from`` (:func:`lure.exposynth.metrics.tail_from`; the least popular 40 % under 5 bins). For the world's truth
a slice keeps the relevance of its items only, so true recall on the tail is the share of a user's tail relevance
mass that the top-K retrieves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lure.evaluation import evaluate_zoo
from lure.exposynth.metrics import tail_from

#: Evaluation slices, in report order.
SLICES = ("all", "head", "tail")
#: Suffix of a re-trained model's name in the evaluation.
AFTER = "+synth"


def augmented_log(train: pd.DataFrame, synthetic: pd.DataFrame) -> pd.DataFrame:
    """Real + synthetic rows (user_id, item_id, timestamp) that a re-trained model is fitted on."""
    cols = ["user_id", "item_id", "timestamp"]
    return pd.concat([train[cols], synthetic[cols]], ignore_index=True)


def slice_items(pop_bin: np.ndarray, n_bins: int, name: str) -> np.ndarray:
    """Boolean mask of the catalogue items in slice ``name``."""
    bins = np.asarray(pop_bin)
    start = tail_from(n_bins)
    return {"all": np.ones(len(bins), bool), "head": bins < start, "tail": bins >= start}[name]


def sliced_evaluation(
    topk: dict[str, pd.DataFrame],
    test: pd.DataFrame,
    propensity_of_test: np.ndarray,
    ks: list[int],
    train: pd.DataFrame,
    relevance: np.ndarray | None,
    mar: pd.DataFrame | None,
    population: np.ndarray,
    in_slice: np.ndarray,
    bootstrap: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """:func:`lure.evaluation.evaluate_zoo` of ``topk`` with the held-out positives, the truth and the MAR log
    restricted to the items of ``in_slice``."""
    keep = in_slice[test["item_id"].to_numpy()]
    rel = None if relevance is None else np.where(in_slice[None, :], relevance, 0.0).astype(np.float32)
    mar_in = None if mar is None else mar[in_slice[mar["item_id"].to_numpy()]]
    return evaluate_zoo(
        topk,
        test[keep],
        np.asarray(propensity_of_test)[keep],
        ks,
        train,
        rel,
        mar_in,
        bootstrap,
        confidence,
        seed,
        population=population,
    )


def before_after(result: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """Per model: each estimator's metrics before and after (means with CIs) and the change of the means."""
    out: dict[str, Any] = {}
    for m in models:
        before, after = result[m], result[m + AFTER]
        delta = {
            est: {
                metric: (
                    None
                    if after[est][metric]["mean"] is None or before[est][metric]["mean"] is None
                    else after[est][metric]["mean"] - before[est][metric]["mean"]
                )
                for metric in before[est]
            }
            for est in before
        }
        out[m] = {"before": before, "after": after, "delta": delta, "paired": paired_change(result, m)}
    return out


def paired_change(result: dict[str, Any], model: str) -> dict[str, Any]:
    """After - before on the same users, from the evaluation's paired comparisons (``evaluate_zoo`` compares every
    pair of models at its primary K): mean change, its paired-bootstrap CI and the Wilcoxon p-value, per estimator
    and metric. Empty when the evaluation compared other pairs (more than six models)."""
    pairs = result.get("comparisons", {}).get("pairs", {})
    tests = pairs.get(f"{model}_vs_{model}{AFTER}")  # before - after
    if tests is None:
        return {}
    flipped: dict[str, Any] = {}
    for est, metrics in tests.items():
        for metric, t in metrics.items():
            low, high = t["ci_low"], t["ci_high"]
            flipped.setdefault(est, {})[metric] = {
                "mean": None if t["mean_diff"] is None else -t["mean_diff"],
                "ci_low": None if high is None else -high,
                "ci_high": None if low is None else -low,
                "p_value": t["p_value"],
                "users": t["n"],
            }
    return flipped


def tidy(report: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, slice, data before/after, estimator, metric): mean and CI."""
    rows = []
    for model, slices in report.items():
        for slice_name, parts in slices.items():
            for data in ("before", "after"):
                for est, metrics in parts[data].items():
                    for metric, value in metrics.items():
                        rows.append(
                            {
                                "model": model,
                                "slice": slice_name,
                                "data": data,
                                "estimator": est,
                                "metric": metric,
                                "mean": value["mean"],
                                "ci_low": value["ci_low"],
                                "ci_high": value["ci_high"],
                            }
                        )
    return pd.DataFrame(rows)
