"""Stage ``llm-eval-<name>``: rank the catalogue for a sample of test windows with one recommender — a fine-tuned
LLM (exact ranking or constrained beam search) or a classic baseline fitted on the window training data — and write
per-window HIT/NDCG, MGU/DGU, top-1 relevance-group shares, the share of the window's own history in every top-K
(``history_share_at_K``), on the world the true relevance of the first K non-history items and the top-1 shares by
title-prior quintile against a popularity-matched true-relevance reference, and, for LLMs, the feature-ablation
attribution and what the model's own Eq. 2 relevance follows (title prior vs popularity).

Lists are ranked ``max K`` deep plus, when history items stay candidates (``eval.llm.exclude_history: false``), the
longest history, so that K non-history items exist for ``true_relevance_at_K``; every other metric reads the first
K slots only, so the extra depth changes none of them."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lure.io import write_parquet
from lure.layout import (
    ITEM_RELEVANCE_ITEMS,
    LLM_BASE,
    Prepared,
    llm_eval_course,
    llm_eval_per_sample,
    llm_model_course,
    llm_model_dir,
    window_model_dir,
)
from lure.llm.data import load_window_model, load_window_split, sample_windows, title_lookup
from lure.llm.evaluate import (
    accuracy,
    coverage,
    eq2_correlations,
    fairness,
    history_share,
    item_relevance,
    prior_bias,
    rank_llm,
    rank_scores,
    true_relevance,
    window_prompt_ids,
)
from lure.llm.window_scores import window_scores
from lure.metrics.fairness import group_shares
from lure.registry import METHODS
from lure.stage import run_stage

if __name__ == "__main__":
    name = sys.argv[1]
    with run_stage(f"llm-eval-{name}") as st:
        cfg = st.spec.eval.llm
        seed = st.spec.seed
        prepared = Prepared()
        items = prepared.read_items(columns=["item_id", "title", "popularity", "pop_bin"])
        truth_items = prepared.read_truth_items(columns=["item_id", "title_prior"])  # None on a real dataset
        titles = title_lookup(items)
        test = sample_windows(load_window_split(prepared, "test"), cfg.max_samples, seed, "windows.test")
        relevance = pd.read_parquet(ITEM_RELEVANCE_ITEMS)
        item_group = dict(zip(relevance["item_id"].astype(int), relevance["group"].astype(int), strict=True))
        histories = [np.asarray(h, dtype=np.int64) for h in test["history"]]
        exclude = histories if cfg.exclude_history else None
        k = max(*cfg.ks, cfg.fairness_k)
        depth = k if cfg.exclude_history else min(k + max((len(h) for h in histories), default=0), len(items))
        extra: dict = {}
        language: dict = {}  # language bias against the truth (docs/gdrt.md)
        if name in METHODS:
            from lure.llm.base import load_trained
            from lure.llm.diagnostics import segment_attribution
            from lure.llm.model import set_torch_threads

            set_torch_threads()
            model, tokenizer = load_trained(Path(llm_model_dir(name)), Path(LLM_BASE), st.spec.model)
            template = st.spec.model.template
            prompts = window_prompt_ids(test, titles, tokenizer, st.spec.model.max_length, template=template)
            item_ids = items["item_id"].astype(int).tolist()
            ranked = rank_llm(
                model,
                tokenizer,
                prompts,
                item_ids,
                [titles[i] for i in item_ids],
                cfg.decoding,
                depth,
                cfg.beam,
                cfg.rank_batch,
                exclude,
                template=template,
            )
            few = test.iloc[: cfg.attribution_samples]
            extra["attribution"] = segment_attribution(
                model,
                tokenizer,
                [[titles[int(i)] for i in h] for h in few["history"]],
                [titles[int(i)] for i in few["item_id"]],
                template,
                include_terminator=cfg.attribution_include_terminator,
            ).ratios()  # task ÷ history and first token ÷ history (Fig. 2/7, after fine-tuning)
            if name == cfg.fairness_scorer:  # llm-relevance already scored this very model
                eq2 = relevance.set_index("item_id").loc[items["item_id"], "relevance"].to_numpy(dtype=np.float64)
            else:  # this model's own Eq. 2 (llm-relevance scores one fixed model for the groups)
                eq2 = item_relevance(
                    model,
                    tokenizer,
                    items["title"].tolist(),
                    batch=cfg.rank_batch,
                    template=template,
                    include_terminator=cfg.relevance_include_terminator,
                )
            language.update(eq2_correlations(eq2, items, truth_items))
            course = pd.read_parquet(llm_model_course(name))
            course["group"] = [item_group.get(int(i), -1) for i in course["item_id"]]
            write_parquet(llm_eval_course(name), course)
        else:  # a zoo model, fitted once by its window-<name> stage
            model = load_window_model(Path(window_model_dir(name)))
            ranked = rank_scores(window_scores(model, test), depth, exclude)
        per_sample = accuracy(ranked, test["item_id"].to_numpy(), cfg.ks)
        truth = prepared.read_relevance()
        if truth is not None:  # the simulated world: how well the list fits the user, beyond the one logged target
            per_sample[f"true_relevance_at_{max(cfg.ks)}"] = true_relevance(
                ranked, test["user_id"].to_numpy(), truth, max(cfg.ks), histories
            )
            if truth_items is not None:  # top-1 by title-prior quintile vs the popularity-matched truth
                language["top1_prior"] = prior_bias(
                    ranked, test["user_id"].to_numpy(), histories, truth, items, truth_items
                )
        # beside every list metric (HIT/NDCG@K, MGU/DGU@fairness_k, coverage@max K, top-1 shares): how much of the
        # list is the window's own history (all 0 with exclude_history)
        for cut in sorted({1, *cfg.ks, cfg.fairness_k}):
            per_sample[f"history_share_at_{cut}"] = history_share(ranked, histories, cut)
        frame = pd.DataFrame(
            {
                "user_id": test["user_id"].to_numpy(),
                "item_id": test["item_id"].to_numpy(),
                "ranked": list(ranked),
                **per_sample,
            }
        )
        write_parquet(llm_eval_per_sample(name), frame)
        fair = fairness(ranked, histories, item_group, cfg.fairness_k, cfg.fairness_groups, cfg.fairness_average)
        st.metrics.update({m: float(v.mean()) for m, v in per_sample.items()})
        st.metrics.update(fair, samples=len(frame))
        st.metrics[f"coverage_at_{max(cfg.ks)}"] = coverage(ranked, max(cfg.ks), len(items))
        st.metrics["top1_group_share"] = [
            round(float(x), 4) for x in group_shares(ranked[:, 0], item_group, cfg.fairness_groups)
        ]
        st.metrics["target_group_share"] = [
            round(float(x), 4) for x in group_shares(test["item_id"], item_group, cfg.fairness_groups)
        ]
        st.metrics.update(extra)
        if language:
            st.metrics["language_prior"] = language
