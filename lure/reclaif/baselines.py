"""Classic recommenders on RecLAIF's candidate protocol: each ranks a test prompt's candidates, and its top k is
written as an answer, so the same parser and metrics read it as they read an LLM's. Sequential (Table 3's
"Traditional" row): a zoo model fitted on the window training interactions. Retrieval (Table 2's BM25 row): BM25 of
the query over the candidates' texts (:func:`lure.reclaif.esci.bm25_rank`).

SASRec scores the prompt's own history (the items the LLM is shown, not the longer window history); a non-sequential
model scores the user. The answer names candidates only, k of them, each once, so its ValidRatio is 1 by construction
(Table 3 prints 1.0000 for SASRec on LastFM); it gives no preferences or reasons, so no explainability is rated
(the paper's '-').
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lure.llm.window_scores import window_scores
from lure.reclaif.answer import write_answer


def candidate_top_k(scores: np.ndarray, candidates: Sequence[Sequence[int]], k: int) -> list[list[int]]:
    """Per row of ``scores`` (users or prompts x items), the indices into its candidates of the k best-scored
    candidates, best first (ties by candidate order)."""
    out = []
    for row, cands in zip(scores, candidates, strict=True):
        values = row[np.asarray(cands, dtype=np.int64)]
        out.append([int(j) for j in np.argsort(-values, kind="stable")[:k]])
    return out


def written(picks: Sequence[Sequence[int]], test: pd.DataFrame, style: str) -> list[str]:
    """Answers naming each prompt's picked candidates (indices into its candidates), without preferences or
    reasons."""
    return [
        write_answer((), [texts[j] for j in top], [""] * len(top), style)
        for top, texts in zip(picks, test["candidate_texts"], strict=True)
    ]


def bm25_answers(test: pd.DataFrame, catalogue: pd.DataFrame, k: int, style: str) -> list[str]:
    """BM25's answers to the retrieval test prompts: the top k candidates by BM25 of the query over their texts
    (one corpus: the test candidates)."""
    from lure.reclaif.esci import bm25_rank

    picks = [
        [list(cands).index(item) for item in ranked[:k]]
        for ranked, cands in zip(bm25_rank(test, catalogue), test["candidates"], strict=True)
    ]
    return written(picks, test, style)


def zoo_answers(model: Any, test: pd.DataFrame, k: int, style: str) -> list[str]:
    """The answers of a fitted zoo model (its ``window-<name>`` stage's) to the test prompts: its top k of each
    prompt's candidates, written in ``style`` without preferences or reasons."""
    return written(candidate_top_k(window_scores(model, test), list(test["candidates"]), k), test, style)


def baseline_answers(spec: Any, test: pd.DataFrame, catalogue: pd.DataFrame | None) -> dict[str, list[str]]:
    """The answers of every baseline of ``reclaif.baselines`` (``spec``) to the test prompts: BM25 of the retrieval
    task, or the zoo models their ``window-<name>`` stages fitted."""
    from lure.layout import window_model_dir
    from lure.llm.data import load_window_model

    out: dict[str, list[str]] = {}
    for name in spec.baselines:
        if name == "bm25":
            assert catalogue is not None, "bm25 ranks the retrieval task's candidates (the spec checks the task)"
            out[name] = bm25_answers(test, catalogue, spec.k, spec.answer_style)
        else:
            model = load_window_model(Path(window_model_dir(name)))
            out[name] = zoo_answers(model, test, spec.k, spec.answer_style)
    return out
