"""Stage ``gdrt-groups``: token relevance to the auxiliary tokens (GDRT Eq. 3, history masked as 'N/A') for every
training target token, grouped into ``method.groups`` groups (§3, K-means or equal-count bins)."""

from pathlib import Path

import numpy as np
import pandas as pd

from lure.io import write_json, write_parquet
from lure.layout import GDRT_CENTERS, GDRT_TOKEN_GROUPS, LLM_BASE, Prepared, llm_model_dir
from lure.llm.base import load_base, load_trained
from lure.llm.data import TRAIN_WINDOWS, load_window_split, sample_windows, sft_examples, title_lookup
from lure.llm.model import set_torch_threads
from lure.rng import int_seed
from lure.stage import run_stage
from lure.train.gdrt import dataset_token_relevance, group_tokens

if __name__ == "__main__":
    with run_stage("gdrt-groups") as st:
        spec = st.spec
        set_torch_threads()
        prepared = Prepared()
        titles = title_lookup(prepared.read_items())
        windows = sample_windows(load_window_split(prepared, "train"), spec.train.max_samples, spec.seed, TRAIN_WINDOWS)
        if spec.method.relevance_model == "sft":
            model, tokenizer = load_trained(Path(llm_model_dir("sft")), Path(LLM_BASE), spec.model)
        else:
            model, tokenizer = load_base(Path(LLM_BASE), spec.model)
        masked = sft_examples(
            windows, titles, tokenizer, spec.model.template, mask=("history",), max_length=spec.model.max_length
        )
        relevance = dataset_token_relevance(model, masked, tokenizer.pad_token_id)
        flat = np.concatenate(relevance)
        groups, centers = group_tokens(
            flat, spec.method.groups, int_seed(spec.seed, "gdrt.grouping"), method=spec.method.grouping
        )
        bounds = np.cumsum([0, *(len(r) for r in relevance)])
        frame = pd.DataFrame(
            {
                "row": np.arange(len(windows)),
                "user_id": windows["user_id"].to_numpy(),
                "item_id": windows["item_id"].to_numpy(),
                "relevance": [r.astype(np.float32) for r in relevance],
                "groups": [groups[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
            }
        )
        write_parquet(GDRT_TOKEN_GROUPS, frame)
        write_json(GDRT_CENTERS, {"centers": centers.tolist(), "grouping": spec.method.grouping})
        sizes = np.bincount(groups, minlength=len(centers))
        st.metrics.update(
            tokens=int(flat.size),
            rows=len(windows),
            centers=[round(float(c), 4) for c in centers],
            group_share=[round(float(s), 4) for s in sizes / sizes.sum()],
            relevance_mean=float(flat.mean()),
        )
