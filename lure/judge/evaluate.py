"""From the judge's answers to what a reader compares: one label per pair, the judge's own accuracy, and every
recommender's agreement with the judge (PairAUC_IPS, Eq. 2, and RJS) overall and per popularity bucket (LURE
Table 1), with bootstrap CIs over users.

On the world two more references are reported, because there the truth is known: the judge's accuracy against the
true preference sign(r_i - r_j), and each recommender's agreement with the true preference in place of the judge's
label (``truth_label``: what PairAUC_IPS and RJS would be under a perfect judge, on the same pairs and weights).
The gap between the two is what the judge's errors cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lure.judge.labels import pair_labels
from lure.metrics.pairwise import judge_accuracy, pairwise_metrics, table_frame
from lure.spec.judge import JudgeSpec


def aligned_scores(pairs: pd.DataFrame, scores: pd.DataFrame, name: str) -> pd.DataFrame:
    """``pairs`` with the recommender's score_i, score_j; the score file must hold the same pairs in the same order
    (it is written from the pairs file by the recommender's stage)."""
    keys = ["user_id", "item_i", "item_j"]
    if len(scores) != len(pairs) or not (scores[keys].to_numpy() == pairs[keys].to_numpy()).all():
        raise ValueError(f"pair scores of {name!r} do not match data/pairs (re-run its stage after the pairs stage)")
    return pairs.assign(score_i=scores["score_i"].to_numpy(np.float64), score_j=scores["score_j"].to_numpy(np.float64))


def judge_report(
    pairs: pd.DataFrame,
    answers: pd.DataFrame,
    scores: Mapping[str, pd.DataFrame],
    spec: JudgeSpec,
    resamples: int,
    confidence: float,
    seed: int,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Metrics (``judge``: labels and accuracy; ``models``: per recommender and bucket) and Table 1's rows for every
    recommender (a ``model`` column before :func:`lure.metrics.pairwise.table_frame`'s)."""
    y, v, counts = pair_labels(answers, len(pairs), spec.invalid_policy, spec.evidence_check, spec.aggregate)
    judged = counts > 0
    labelled = judged & (v > 0)
    judge: dict[str, Any] = {
        "pairs": len(pairs),
        "pairs_judged": int(judged.sum()),
        "pairs_labelled": int(labelled.sum()),
        "label_rate": float(labelled.sum() / judged.sum()) if judged.any() else None,
        "tie_share": float((y[labelled] == 0).mean()) if labelled.any() else None,
    }
    if "label" in pairs:  # labelled pairs: i is the held-out positive (label 1); 0 marks an unlabelled pair
        judge["vs_heldout"] = judge_accuracy(y, v, pairs["label"].to_numpy())
    truth = pairs["true_pref"].to_numpy() if "true_pref" in pairs else None
    if truth is not None:
        judge["vs_truth"] = judge_accuracy(y, v, truth)
        judge["vs_truth_ips"] = judge_accuracy(y, v, truth, w=pairs["w"].to_numpy())
    rows = np.flatnonzero(judged)
    models: dict[str, Any] = {}
    tables = []
    for name, score_frame in scores.items():
        scored = aligned_scores(pairs, score_frame, name).iloc[rows]
        result = pairwise_metrics(scored, y[rows], v[rows], spec.metrics, resamples, confidence, seed)
        if truth is not None:
            ones = np.ones(len(rows))
            perfect = pairwise_metrics(scored, truth[rows], ones, spec.metrics, 0, confidence, seed)
            result["truth_label"] = {
                k: {"pair_auc_ips": c["pair_auc_ips"]["mean"], "rjs": c["rjs"]["mean"]} for k, c in perfect.items()
            }
        models[name] = result
        tables.append(table_frame({k: c for k, c in result.items() if k != "truth_label"}).assign(model=name))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(table):
        table = table[["model", *[c for c in table.columns if c != "model"]]]
    return {"judge": judge, "models": models}, table
