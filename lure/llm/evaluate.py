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

from lure.llm.prompts import (
    PromptTemplate,
    completion_title_span,
    encode_completion,
    encode_prompt,
    render_prompt,
)
from lure.metrics.fairness import dgu, group_unfairness, mgu
from lure.metrics.language_bias import (
    first_new_items,
    matched_reference,
    prior_groups,
    prior_top1_shares,
    spearman,
)
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
    from lure.display import progress as show_progress
    from lure.llm.generate import constrained_beam_search, rank_catalogue, top_items
    from lure.llm.trie import TokenTrie

    ids = np.asarray(item_ids, dtype=np.int64)
    position = {int(i): j for j, i in enumerate(ids)}
    out = np.full((len(prompts), k), -1, dtype=np.int64)
    trie = TokenTrie.from_titles(tokenizer, titles, template, items=ids.tolist())
    chunk = 32  # prompts per exact-ranking call: the title tree is built once per call
    starts = range(0, len(prompts), chunk if decoding == "exact" else 1)
    if progress:
        starts = show_progress(starts, f"ranking ({decoding})")
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


def _history_mask(top: np.ndarray, histories: Sequence[Sequence[int]]) -> np.ndarray:
    """(n, width) True where the ranked item is one of its window's history items."""
    if len(histories) != len(top):
        raise ValueError(f"need one history per ranked list ({len(top)}), got {len(histories)}")
    return np.array(
        [np.isin(row, np.asarray(h, dtype=np.int64)) & (row >= 0) for row, h in zip(top, histories, strict=True)],
        dtype=bool,
    ).reshape(top.shape)


def true_relevance(
    ranked: np.ndarray,
    users: Sequence[int],
    relevance: np.ndarray,
    k: int,
    histories: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """Per-sample mean true relevance r(u, i) of the first ``k`` ranked items that are not in the window's history
    (simulated world only; -1 slots skipped).

    Why beside HIT/NDCG: a window has one logged target, drawn through the platform's exposure, so HIT@K rewards
    predicting what was *shown*; the world's r(u, i) says whether a list fits the user at all. A recommender that
    learned only the popularity prior gets popularity's value; one that uses the history gets more.

    Why history items are dropped (``histories``): the user has already consumed them, and their r(u, i) is high by
    selection, so a recommender that copied the prompt's titles would beat one that recommends. Dropping them and
    reading on to the next items makes the value that of the list with history filtered out: invariant to where
    (or whether) a recommender ranks history items, and equal to the ``exclude_history: true`` value for exact
    ranking. The caller ranks deep enough (``k`` + the history length) for ``k`` non-history items to exist; a row
    with fewer (beam search found fewer) averages over those it has. ``histories=None`` keeps every item.
    """
    top = np.asarray(ranked, dtype=np.int64)
    valid = top >= 0
    if histories is not None:
        valid &= ~_history_mask(top, histories)
    valid &= np.cumsum(valid, axis=1) <= k  # the first k kept items of each row
    values = np.asarray(relevance)[np.asarray(users, dtype=np.int64)[:, None], np.where(valid, top, 0)]
    return np.where(valid, values, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


def history_share(ranked: np.ndarray, histories: Sequence[Sequence[int]], k: int) -> np.ndarray:
    """Per-sample share of the top-``k`` items (-1 slots skipped) that are items of the window's own history.

    Why: with ``eval.llm.exclude_history: false`` (the paper's protocol) a list metric computed over the top-K —
    HIT/NDCG, MGU/DGU, coverage, the top-1 group shares — also counts items the prompt itself lists. Reported
    beside every such metric, it shows how much of a list is copied from the prompt (0 when history is excluded).
    """
    top = np.asarray(ranked, dtype=np.int64)[:, :k]
    valid = top >= 0
    return _history_mask(top, histories).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


def coverage(ranked: np.ndarray, k: int, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-``k`` list (1/n_items·k-ish = the same list for all)."""
    top = np.asarray(ranked, dtype=np.int64)[:, :k]
    return float(np.unique(top[top >= 0]).size / n_items)


def item_relevance(
    model: Any,
    tokenizer: Any,
    titles: Sequence[str],
    batch: int = 256,
    template: PromptTemplate | str | None = None,
    include_terminator: bool = False,
) -> np.ndarray:
    """Eq. 2 per item: mean token log-probability of its title after the prompt with the history masked.

    The placeholder is the template's ``masked`` block (the paper's 'N/A'), the same text Eq. 3 and the feature
    ablation use. Scored tokens (:func:`relevance_tokens`): by default the title's own tokens; with
    ``include_terminator`` also the template's terminator and the EOS, i.e. every token the recommender generates.
    Why the default leaves them out: Eq. 2 is "the probability of the tokens for each item", and the closing quote
    and EOS are shared by all items and predicted from the title's end, not from the auxiliary tokens; counting
    them pulls every item's mean towards the same value by an amount that depends only on the title's length.
    """
    from lure.llm.generate import rank_catalogue

    spans = [relevance_tokens(tokenizer, t, template, include_terminator) for t in titles]
    prompt = encode_prompt(tokenizer, render_prompt([], template, mask=("history",))).input_ids
    # Causal LM: the log-probability of a token prefix of the completion is the sum over those tokens, so the
    # exact-ranking code path scores the tokens up to the span's end (and, if the span does not start the
    # completion, the tokens before it are scored and subtracted).
    upto = [seq[:end] for seq, (_, end) in spans]
    total = rank_catalogue(model, tokenizer, [prompt], sequences=upto, batch=batch)[0].numpy().astype(np.float64)
    late = [j for j, (_, (start, _)) in enumerate(spans) if start > 0]
    if late:
        head = [spans[j][0][: spans[j][1][0]] for j in late]
        total[late] -= rank_catalogue(model, tokenizer, [prompt], sequences=head, batch=batch)[0].numpy()
    counts = np.array([end - start for _, (start, end) in spans], dtype=np.float64)
    return total / counts  # Eq. 2: r(y) = (1/|y|) sum_t log P(y_t | x_task, y_<t)


def relevance_tokens(
    tokenizer: Any, title: str, template: PromptTemplate | str | None = None, include_terminator: bool = False
) -> tuple[list[int], tuple[int, int]]:
    """The completion tokens of ``title`` and the half-open span of them that Eq. 2 scores.

    Without ``include_terminator``: the title's own tokens (:func:`lure.llm.prompts.completion_title_span`); with
    it: the whole completion (title, terminator, EOS).
    """
    seq = encode_completion(tokenizer, title, template)
    return seq, ((0, len(seq)) if include_terminator else completion_title_span(tokenizer, title, template))


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


def _aligned(frame: pd.DataFrame, column: str, item_ids: np.ndarray) -> np.ndarray:
    """``frame[column]`` in the order of ``item_ids`` (every id must be present)."""
    values = frame.set_index("item_id")[column]
    missing = set(item_ids.tolist()) - set(values.index.tolist())
    if missing:
        raise KeyError(f"{len(missing)} items have no {column!r} (e.g. {sorted(missing)[:3]})")
    return values.reindex(item_ids).to_numpy(dtype=np.float64)


def eq2_correlations(
    eq2: Sequence[float] | np.ndarray, items: pd.DataFrame, truth_items: pd.DataFrame | None
) -> dict[str, float]:
    """What a model's Eq. 2 relevance follows: its Spearman correlation with ``popularity`` (items.parquet, training
    interaction counts) and, on the world (``truth_items`` not None), with the latent title prior rho.

    ``eq2[j]`` scores ``items.iloc[j]``. On a real dataset only the popularity correlation exists.
    """
    ids = items["item_id"].to_numpy(dtype=np.int64)
    out = {"eq2_spearman_popularity": spearman(eq2, items["popularity"].to_numpy(dtype=np.float64))}
    if truth_items is not None:
        out["eq2_spearman_prior"] = spearman(eq2, _aligned(truth_items, "title_prior", ids))
    return out


def prior_bias(
    ranked: np.ndarray,
    users: Sequence[int],
    histories: Sequence[Sequence[int]],
    relevance: np.ndarray,
    items: pd.DataFrame,
    truth_items: pd.DataFrame,
) -> dict[str, Any]:
    """Top-1 shares by title-prior quintile against the popularity-matched true-relevance reference (world only;
    :func:`lure.metrics.language_bias.prior_top1_shares`).

    ``items`` needs item_id and pop_bin, ``truth_items`` item_id and title_prior; item ids must be 0..n-1 (the
    columns of ``relevance``).
    """
    n = relevance.shape[1]
    ids = np.arange(n, dtype=np.int64)
    pop_bin = _aligned(items, "pop_bin", ids).astype(np.int64)
    groups = prior_groups(_aligned(truth_items, "title_prior", ids))
    picks = first_new_items(ranked, histories)
    reference = matched_reference(picks, users, histories, relevance, pop_bin)
    return prior_top1_shares(picks, reference, groups, pop_bin)
