"""Stage ``llm-relevance``: Eq. 2 relevance of every catalogue item to the auxiliary tokens (history masked by the
template's placeholder, 'N/A'; over the title's own tokens unless ``eval.llm.relevance_include_terminator``), scored
by one fixed model for all methods, and the equal-count item groups of MGU/DGU (§4.1.4)."""

from pathlib import Path

import numpy as np

from lure.io import write_parquet
from lure.layout import ITEM_RELEVANCE_ITEMS, LLM_BASE, Prepared, llm_model_dir
from lure.llm.base import load_base, load_trained
from lure.llm.evaluate import item_relevance
from lure.llm.model import set_torch_threads
from lure.metrics.fairness import item_groups_by_relevance
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("llm-relevance") as st:
        cfg = st.spec.eval.llm
        set_torch_threads()
        items = Prepared().read_items(columns=["item_id", "title"])
        if cfg.fairness_scorer == "sft":
            model, tokenizer = load_trained(Path(llm_model_dir("sft")), Path(LLM_BASE), st.spec.model)
        else:
            model, tokenizer = load_base(Path(LLM_BASE), st.spec.model)
        relevance = item_relevance(
            model,
            tokenizer,
            items["title"].tolist(),
            batch=cfg.rank_batch,
            template=st.spec.model.template,
            include_terminator=cfg.relevance_include_terminator,
        )
        groups = item_groups_by_relevance([int(i) for i in items["item_id"]], relevance, cfg.fairness_groups)
        frame = items.assign(relevance=relevance, group=[groups[int(i)] for i in items["item_id"]])
        write_parquet(ITEM_RELEVANCE_ITEMS, frame)
        st.metrics.update(
            items=len(frame),
            scorer=cfg.fairness_scorer,
            group_mean_relevance=[
                round(float(frame.loc[frame["group"] == g, "relevance"].mean()), 4) for g in range(cfg.fairness_groups)
            ],
            relevance_spread=float(np.ptp(relevance)),
        )
