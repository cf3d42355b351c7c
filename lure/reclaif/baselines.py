"""Classic recommenders on RecLAIF's candidate protocol (Table 3's "Traditional" row): a zoo model fitted on the
window training interactions ranks each test prompt's candidates, and its top k is written as an answer, so the same
parser and metrics read it as they read an LLM's.

SASRec scores the prompt's own history (the items the LLM is shown, not the longer window history); a non-sequential
model scores the user. The answer names candidates only, k of them, each once, so its ValidRatio is 1 by construction
(Table 3 prints 1.0000 for SASRec on LastFM); it gives no preferences or reasons, so no explainability is rated
(the paper's '-').
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lure.reclaif.answer import write_answer
from lure.rng import int_seed


def candidate_top_k(scores: np.ndarray, candidates: Sequence[Sequence[int]], k: int) -> list[list[int]]:
    """Per row of ``scores`` (users or prompts x items), the indices into its candidates of the k best-scored
    candidates, best first (ties by candidate order)."""
    out = []
    for row, cands in zip(scores, candidates, strict=True):
        values = row[np.asarray(cands, dtype=np.int64)]
        out.append([int(j) for j in np.argsort(-values, kind="stable")[:k]])
    return out


def baseline_answers(
    name: str,
    eval_spec: Any,
    train: pd.DataFrame,
    n_items: int,
    test: pd.DataFrame,
    k: int,
    style: str,
    seed: int,
) -> list[str]:
    """The answers of zoo model ``name`` (built from ``eval_spec``, fitted on ``train``) to the test prompts:
    its top k of each prompt's candidates, written in ``style`` without preferences or reasons."""
    from lure.models.zoo import build_model

    n_users = int(max(train["user_id"].max(), test["user_id"].max())) + 1
    model = build_model(name, eval_spec).fit(train, n_users, n_items, int_seed(seed, f"reclaif.{name}"))
    if hasattr(model, "score_histories"):  # sequential: the prompt's own history
        scores = model.score_histories([np.asarray(h, dtype=np.int64) for h in test["history"]])
    else:
        scores = model.score(test["user_id"].to_numpy())
    picks = candidate_top_k(np.asarray(scores), list(test["candidates"]), k)
    return [
        write_answer((), [texts[j] for j in top], [""] * len(top), style)
        for top, texts in zip(picks, test["candidate_texts"], strict=True)
    ]
