"""Evaluation of next-item recommenders on the sliding-window test split (GDRT §4.1.3-4.1.4).

Every recommender — a title-generating LLM or a classic baseline — produces one ranked list of item ids per test
window; :func:`accuracy` (HIT/NDCG by exact title match, i.e. by item id since titles are unique) and
:func:`fairness` (MGU/DGU over Eq. 2 relevance groups) then treat them identically.

LLM rankings come from exact scoring of every catalogue title (``decoding: exact``) or from trie-constrained beam
search (``decoding: beam``), both in :mod:`lure.llm.generate`. The metrics themselves are :mod:`lure.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lure.llm.prompts import PromptTemplate, encode_completion, encode_prompt, render_prompt
from lure.metrics.fairness import dgu, group_unfairness, mgu
from lure.metrics.ranking import hit_at_k, ndcg_at_k, target_ranks


def window_prompt_ids(
    windows: pd.DataFrame,
    titles: Mapping[int, str],
    tokenizer: Any,
    max_length: int,
    mask: Sequence[str] = (),
    template: PromptTemplate | str | None = None,
) -> list[list[int]]:
    """Encoded prompts of the windows; the oldest history items are dropped until prompt + longest title fit."""
    longest = max(len(encode_completion(tokenizer, t, template)) for t in titles.values())
    out = []
    for history in windows["history"]:
        hist = [titles[int(i)] for i in history]
        while True:
            ids = encode_prompt(tokenizer, render_prompt(hist, template, mask=mask)).input_ids
            if len(ids) + longest <= max_length or not hist:
                break
            hist = hist[1:]
        out.append(ids)
    return out


def rank_llm(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    item_ids: Sequence[int],
    titles: Sequence[str],
    decoding: str,
    k: int,
    beam: int,
    batch: int,
    exclude: Sequence[Sequence[int]] | None = None,
    progress: bool = True,
    template: PromptTemplate | str | None = None,
) -> np.ndarray:
    """(n_prompts, k) item ids, best first (-1 where beam search found fewer than k items).

    ``item_ids[j]`` is the id of ``titles[j]``; ``exclude`` lists item ids removed per prompt (e.g. its history).
    """
    from rich.progress import track

    from lure.llm.generate import constrained_beam_search, rank_catalogue, top_items
    from lure.llm.trie import TokenTrie

    ids = np.asarray(item_ids, dtype=np.int64)
    position = {int(i): j for j, i in enumerate(ids)}
    out = np.full((len(prompts), k), -1, dtype=np.int64)
    trie = TokenTrie.from_titles(tokenizer, titles, template, items=ids.tolist())
    chunk = 32  # prompts per exact-ranking call: the title tree is built once per call
    starts = range(0, len(prompts), chunk if decoding == "exact" else 1)
    if progress:
        starts = track(starts, description=f"ranking ({decoding})", transient=True)
    for start in starts:
        if decoding == "exact":
            block = list(prompts[start : start + chunk])
            drop = (
                None
                if exclude is None
                else [
                    [position[int(i)] for i in exclude[start + row] if int(i) in position] for row in range(len(block))
                ]
            )
            scores = rank_catalogue(
                model, tokenizer, block, sequences=trie.sequences, batch=batch, top_k=k, exclude=drop
            )
            out[start : start + len(block)] = ids[top_items(scores, k).numpy()]
        elif decoding == "beam":
            drop = exclude[start] if exclude is not None else ()
            t = trie.without(drop) if len(drop) else trie
            found = constrained_beam_search(model, tokenizer, [prompts[start]], t, beam=beam, top_k=k)[0].items
            out[start, : len(found)] = found
        else:
            raise ValueError(f"unknown decoding {decoding!r}")
    return out


def rank_scores(scores: np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """(n, k) item ids of the highest scores per row (ties to the lower id), optionally excluding items per row."""
    s = np.array(scores, dtype=np.float32)
    if exclude is not None:
        for n, items in enumerate(exclude):
            if len(items):
                s[n, np.asarray(items, dtype=np.int64)] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k].astype(np.int64)


def accuracy(ranked: np.ndarray, targets: Sequence[int], ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-sample HIT@K and NDCG@K of the ranked item ids (one target per window, :mod:`lure.metrics.ranking`)."""
    ranks = target_ranks(np.asarray(ranked, dtype=np.int64), np.asarray(targets, dtype=np.int64))
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"hit_at_{k}"] = hit_at_k(ranks, k)
        out[f"ndcg_at_{k}"] = ndcg_at_k(ranks, k)
    return out


def true_relevance(ranked: np.ndarray, users: Sequence[int], relevance: np.ndarray, k: int) -> np.ndarray:
    """Per-sample mean true relevance r(u, i) of the top-``k`` items (simulated world only; -1 slots skipped).

    Why beside HIT/NDCG: a window has one logged target, drawn through the platform's exposure, so HIT@K rewards
    predicting what was *shown*; the world's r(u, i) says whether a list fits the user at all. A recommender that
    learned only the popularity prior gets popularity's value; one that uses the history gets more.
    """
    top = np.asarray(ranked, dtype=np.int64)[:, :k]
    valid = top >= 0
    values = np.asarray(relevance)[np.asarray(users, dtype=np.int64)[:, None], np.where(valid, top, 0)]
    return np.where(valid, values, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


def coverage(ranked: np.ndarray, k: int, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-``k`` list (1/n_items·k-ish = the same list for all)."""
    top = np.asarray(ranked, dtype=np.int64)[:, :k]
    return float(np.unique(top[top >= 0]).size / n_items)


def item_relevance(
    model: Any, tokenizer: Any, titles: Sequence[str], batch: int = 256, template: PromptTemplate | str | None = None
) -> np.ndarray:
    """Eq. 2 per item: mean token log-probability of its completion after the prompt with the history masked ('N/A').

    The completion is the title, the template's terminator and EOS — the tokens the recommender generates.
    """
    from lure.llm.generate import rank_catalogue

    sequences = [encode_completion(tokenizer, t, template) for t in titles]
    prompt = encode_prompt(tokenizer, render_prompt([], template, mask=("history",))).input_ids
    total = rank_catalogue(model, tokenizer, [prompt], sequences=sequences, batch=batch)[0].numpy()
    return total / np.array([len(s) for s in sequences], dtype=np.float64)  # Eq. 2


def fairness(
    ranked: np.ndarray,
    histories: Sequence[Sequence[int]],
    item_group: Mapping[int, int],
    k: int,
    n_groups: int,
    average: str,
) -> dict[str, Any]:
    """MGU@K, DGU@K (§4.1.4, :mod:`lure.metrics.fairness`) and the signed per-group discrepancies GU(g) of the
    ranked item ids (-1 slots skipped)."""
    top = [[int(i) for i in row[:k] if i >= 0] for row in ranked]
    hist = [[int(i) for i in h] for h in histories]
    gu = group_unfairness(top, hist, item_group, k, n_groups, average=average)  # type: ignore[arg-type]
    return {f"mgu_at_{k}": mgu(gu), f"dgu_at_{k}": dgu(gu), "gu": [float(x) for x in gu]}
