"""Stage ``llm-pairs-<method>``: score the judged item pairs with a fine-tuned LLM recommender and write them as a
zoo model's stage does (user_id, item_i, item_j, score_i, score_j), so the judge-agreement metric reads every
recommender alike. s(u, i) is the score the exact ranking sorts by (:mod:`lure.llm.pair_scores`)."""

import sys
from pathlib import Path

import pandas as pd

from lure.io import write_parquet
from lure.layout import LLM_BASE, PAIRS, Prepared, llm_model_dir, llm_pair_scores
from lure.llm.pair_scores import score_llm_pairs
from lure.stage import run_stage

if __name__ == "__main__":
    name = sys.argv[1]
    with run_stage(f"llm-pairs-{name}") as st:
        from lure.llm.base import load_trained
        from lure.llm.model import set_torch_threads

        set_torch_threads()
        prepared = Prepared()
        model, tokenizer = load_trained(Path(llm_model_dir(name)), Path(LLM_BASE), st.spec.model)
        pairs = pd.read_parquet(PAIRS, columns=["user_id", "item_i", "item_j"])
        scored = score_llm_pairs(
            model,
            tokenizer,
            st.spec.model.template,
            prepared.read_items(columns=["item_id", "title"]),
            prepared.read_split("holdout", "train", columns=["user_id", "item_id"]),
            st.spec.data.splits.history_max,
            pairs,
            max_length=st.spec.model.max_length,
            batch=st.spec.eval.llm.rank_batch,
            progress=True,
        )
        write_parquet(llm_pair_scores(name), scored)
        st.metrics.update(pairs_scored=len(scored), users=int(scored["user_id"].nunique()))
