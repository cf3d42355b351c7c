"""Scores of the judged item pairs by a fine-tuned LLM recommender, on the interface of the classic zoo.

Why: the judge-agreement metric (PairAUC_IPS) reads, for every recommender, s(u, i) and s(u, j) of each judged pair
(u, i, j) of ``data/pairs/pairs.parquet``. A zoo model's s(u, i) is its score-matrix entry
(:func:`lure.models.zoo.score_pairs`); an LLM recommender's must be the score its exact ranking sorts by, so that
the pair is ordered here as the recommender orders it in its ranked lists. That is the sequence log-probability of
item i's completion tokens (title, the template's terminator, EOS; summed, no length normalisation) after the
user's next-item prompt: :func:`lure.llm.generate.rank_catalogue` computes it, for the ranking and here alike.

The prompt is the recommender's own (``model.template``), built as the window evaluation builds it
(:func:`lure.llm.evaluate.window_prompt_ids`: oldest items dropped until prompt + longest title fit
``max_length``) from the user's ``history_max`` most recent interactions of the holdout training split, the
interactions the zoo models are fitted on, oldest first.

Cost: a user's pairs name only a few distinct items, so those are scored (``rank_catalogue`` over their token
sequences) rather than the whole catalogue: on the default world (800 items, 983 users x 10 pairs, the default
tiny model) that is about 47 s of one CPU core instead of about 180 s. Users are scored one after the other, on one
thread (see :func:`score_llm_pairs`). A causal LM's log-probability of a sequence does not
depend on which other sequences are scored beside it, so the values are the catalogue-wide ones up to float32
rounding (a few 1e-6 nats: the batched matrix products differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lure.llm.data import title_lookup
from lure.llm.evaluate import window_prompt_ids
from lure.llm.prompts import PromptTemplate, encode_completion


def user_histories(train: pd.DataFrame, users: Sequence[int] | np.ndarray, history_max: int) -> list[np.ndarray]:
    """Item ids of each user's last ``history_max`` rows of ``train``, oldest first (empty for a user without any).

    ``train`` (user_id, item_id) must be in canonical sequence order, as every prepared split is: chronological
    where the source has time, a seeded order where it has none, so the file order is the order, not the
    timestamps.
    """
    if history_max < 1:
        raise ValueError(f"history_max must be at least 1, got {history_max}")
    wanted = np.asarray(users, dtype=np.int64)
    rows = train.loc[train["user_id"].isin(wanted), ["user_id", "item_id"]]
    recent = rows.groupby("user_id", sort=False).tail(history_max)
    by_user = {
        int(u): g.to_numpy(dtype=np.int64) for u, g in recent.groupby("user_id", sort=False)["item_id"]
    }  # groupby keeps the rows' order within a group
    empty = np.empty(0, dtype=np.int64)
    return [by_user.get(int(u), empty) for u in wanted]


def score_llm_pairs(
    model: Any,
    tokenizer: Any,
    template: PromptTemplate | str | None,
    items: pd.DataFrame,
    train: pd.DataFrame,
    history_max: int,
    pairs: pd.DataFrame,
    max_length: int,
    batch: int = 256,
    progress: bool = False,
) -> pd.DataFrame:
    """``pairs`` (user_id, item_i, item_j, any other columns) with ``score_i`` = s(u, item_i) and ``score_j`` =
    s(u, item_j) added (float64), rows in their order.

    s(u, i) = log P(completion of item i | prompt of u), exactly the score the exact ranking sorts the catalogue by
    (see the module docstring). ``items``: item_id, title; ``train``: the holdout training interactions (user_id,
    item_id, canonical order); ``max_length`` and ``batch`` as ``model.max_length`` and ``eval.llm.rank_batch``.
    """
    import torch

    from lure.display import progress as show_progress
    from lure.llm.forward import model_device
    from lure.llm.generate import rank_catalogue

    users = pairs["user_id"].to_numpy(dtype=np.int64)
    items_i = pairs["item_i"].to_numpy(dtype=np.int64)
    items_j = pairs["item_j"].to_numpy(dtype=np.int64)
    titles = title_lookup(items)
    unknown = sorted(set(np.r_[items_i, items_j].tolist()) - set(titles))
    if unknown:
        raise KeyError(f"{len(unknown)} pair items have no title in the items (e.g. {unknown[:3]})")
    out_i = np.full(len(pairs), np.nan, dtype=np.float64)
    out_j = np.full(len(pairs), np.nan, dtype=np.float64)
    uniq, inv = np.unique(users, return_inverse=True)
    histories = pd.DataFrame({"history": user_histories(train, uniq, history_max)})
    # every title of the catalogue: the prompt is truncated to fit the longest one, as in the window evaluation
    prompts = window_prompt_ids(histories, titles, tokenizer, max_length, template=template)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    completions: dict[int, list[int]] = {}
    steps: Any = range(len(uniq))
    if progress:
        steps = show_progress(steps, "scoring pairs")
    threads = torch.get_num_threads()
    if model_device(model).type == "cpu":
        # One user at a time, each op single-threaded: a user's few titles make many small ops, and intra-op threads
        # synchronise at every one (scoring 100 users of the default world took 4-7 s of CPU with one thread and
        # 35-90 s with two on a shared 2-core machine). rank_catalogue's own thread pool needs one shared catalogue.
        torch.set_num_threads(1)
    try:
        for u in steps:
            rows = order[bounds[u] : bounds[u + 1]]
            candidates = np.unique(np.r_[items_i[rows], items_j[rows]])
            sequences = []
            for item in candidates.tolist():
                if item not in completions:
                    completions[item] = encode_completion(tokenizer, titles[item], template)
                sequences.append(completions[item])
            scores = rank_catalogue(model, tokenizer, [prompts[u]], sequences=sequences, batch=batch)[0]
            values = scores.numpy().astype(np.float64)
            out_i[rows] = values[np.searchsorted(candidates, items_i[rows])]
            out_j[rows] = values[np.searchsorted(candidates, items_j[rows])]
    finally:
        torch.set_num_threads(threads)
    return pairs.assign(score_i=out_i, score_j=out_j)
