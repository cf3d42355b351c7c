"""Stage ``train-<method>``: fine-tune the base model on the training windows with TRL, the loss on the title only.

``sft`` uses TRL's ``SFTTrainer`` as is (Eq. 1); ``gdrt`` its subclass ``GDRTTrainer`` (Eq. 5) with the token groups
of the ``gdrt-groups`` stage. A crashed run resumes from its newest checkpoint (``lure.train.finetune``).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lure.io import fingerprint, read_json, write_json, write_parquet
from lure.llm.base import load_base
from lure.llm.data import load_window_split, sample_windows, sft_examples, title_lookup
from lure.llm.evaluate import window_prompt_ids
from lure.llm.model import set_torch_threads
from lure.llm.trie import TokenTrie
from lure.pipeline.stages import GDRT_GROUPS, LLM_BASE, PREPARED, llm_model_dir
from lure.spec.load import canonical_json
from lure.stage import fail, run_stage
from lure.train.finetune import (
    COURSE_COLUMNS,
    checkpoint_dir,
    fine_tune,
    make_course_callback,
    run_key,
)
from lure.train.gdrt import TOKEN_GROUPS_COLUMN, token_groups_column

if __name__ == "__main__":
    method = sys.argv[1]
    with run_stage(f"train-{method}") as st:
        spec = st.spec
        threads = set_torch_threads(spec.train.threads)
        prepared = Path(PREPARED)
        titles = title_lookup(pd.read_parquet(prepared / "items.parquet"))
        windows = sample_windows(load_window_split(prepared, "train"), spec.train.max_samples, spec.seed)
        model, tokenizer = load_base(Path(LLM_BASE), spec.model, trainable=True)
        template = spec.model.template
        rows = sft_examples(windows, titles, tokenizer, template, max_length=spec.model.max_length)
        trainer_kwargs = {}
        key_parts = [method, canonical_json(spec.model.model_dump()), canonical_json(spec.train.model_dump()),
                     spec.seed, fingerprint(prepared), fingerprint(Path(LLM_BASE))]
        trainer_cls = None
        if method == "gdrt":
            from lure.train import GDRTTrainer

            groups = pd.read_parquet(Path(GDRT_GROUPS) / "token_groups.parquet")
            centers = read_json(Path(GDRT_GROUPS) / "centers.json")["centers"]
            if len(groups) != len(rows) or not np.array_equal(groups["item_id"].to_numpy(), windows["item_id"]):
                fail(f"{GDRT_GROUPS}/token_groups.parquet does not match the training windows; re-run gdrt-groups")
            for row, g in zip(rows, groups["groups"], strict=True):
                row[TOKEN_GROUPS_COLUMN] = token_groups_column(row["labels"], g)
            trainer_cls = GDRTTrainer
            trainer_kwargs = {"n_groups": len(centers), "tau": spec.method.tau}
            key_parts += [spec.method.tau, fingerprint(Path(GDRT_GROUPS))]
        from datasets import Dataset

        dataset = Dataset.from_list(rows)

        # Figs. 4/9: top-1 recommendation of a fixed validation sample at a few points of training
        course = sample_windows(load_window_split(prepared, "valid"), spec.train.course_samples, spec.seed)
        course_prompts = window_prompt_ids(course, titles, tokenizer, spec.model.max_length, template=template)
        item_ids = sorted(titles)
        trie = TokenTrie.from_titles(tokenizer, [titles[i] for i in item_ids], template, items=item_ids)

        def record(m, step):
            from lure.llm.generate import constrained_beam_search

            found = constrained_beam_search(m, tokenizer, course_prompts, trie, beam=10, top_k=1)
            return [{"step": step, "sample": n, "item_id": r.items[0] if r.items else -1} for n, r in enumerate(found)]

        callback = make_course_callback(record, spec.train.course_points)
        out = Path(llm_model_dir(method))
        result = fine_tune(
            model, tokenizer, dataset, spec.train, spec.seed, out,
            checkpoint_dir(f"train-{method}", run_key(*key_parts)),
            trainer_cls=trainer_cls, callbacks=[callback], **trainer_kwargs,
        )
        if not result["main_process"]:
            raise SystemExit(0)
        write_parquet(out / "course.parquet", pd.DataFrame(callback.rows, columns=list(COURSE_COLUMNS)))
        write_json(out / "log_history.json", result["log_history"])
        st.metrics.update(result["metrics"], threads=threads, course_seconds=round(callback.seconds, 3))
