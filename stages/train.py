"""Stage ``train-<method>``: fine-tune the base model on the training windows with TRL, the loss on the title only.

What differs between methods (trainer class, extra row columns, extra inputs) comes from the method's definition in
``lure.train.methods.METHODS``. A crashed run resumes from its newest checkpoint (``lure.train.finetune``). With
``train.select_best`` the saved model is the epoch with the best validation ``train.select_metric`` (GDRT §4.1.3;
``lure.train.select``), ranked here by the same constrained beam search as the training course.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lure.io import fingerprint, write_json, write_parquet
from lure.layout import LLM_BASE, Prepared, llm_model_course, llm_model_dir, llm_model_log_history
from lure.llm.base import load_base
from lure.llm.data import TRAIN_WINDOWS, load_window_split, sample_windows, sft_examples, title_lookup
from lure.llm.evaluate import accuracy, window_prompt_ids
from lure.llm.model import set_torch_threads
from lure.llm.trie import TokenTrie
from lure.registry import METHODS
from lure.rng import int_seed
from lure.spec.load import canonical_json
from lure.stage import fail, run_stage
from lure.train.finetune import (
    COURSE_COLUMNS,
    checkpoint_dir,
    fine_tune,
    make_course_callback,
    run_key,
)
from lure.train.select import metric_k

if __name__ == "__main__":
    method = sys.argv[1]
    with run_stage(f"train-{method}") as st:
        spec = st.spec
        threads = set_torch_threads(spec.train.threads)
        prepared = Prepared()
        titles = title_lookup(prepared.read_items())
        windows = sample_windows(load_window_split(prepared, "train"), spec.train.max_samples, spec.seed, TRAIN_WINDOWS)
        model, tokenizer = load_base(Path(LLM_BASE), spec.model, trainable=True)
        template = spec.model.template
        rows = sft_examples(windows, titles, tokenizer, template, max_length=spec.model.max_length)
        key_parts = [
            method,
            canonical_json(spec.model.model_dump()),
            canonical_json(spec.train.model_dump()),
            spec.seed,
            fingerprint(prepared),
            fingerprint(Path(LLM_BASE)),
        ]
        try:
            setup = METHODS.get(method).build(spec, rows, windows)
        except ValueError as exc:
            fail(str(exc))
        key_parts += setup.key_parts
        from datasets import Dataset

        dataset = Dataset.from_list(rows)

        # Figs. 4/9: top-1 recommendation of a fixed validation sample at a few points of training
        course = sample_windows(
            load_window_split(prepared, "valid"), spec.train.course_samples, spec.seed, "windows.valid.course"
        )
        course_prompts = window_prompt_ids(course, titles, tokenizer, spec.model.max_length, template=template)
        item_ids = sorted(titles)
        trie = TokenTrie.from_titles(tokenizer, [titles[i] for i in item_ids], template, items=item_ids)

        def record(m, step):
            from lure.llm.generate import constrained_beam_search

            found = constrained_beam_search(m, tokenizer, course_prompts, trie, beam=10, top_k=1)
            return [{"step": step, "sample": n, "item_id": r.items[0] if r.items else -1} for n, r in enumerate(found)]

        callback = make_course_callback(record, spec.train.course_points)

        # GDRT §4.1.3: the checkpoint with the best validation NDCG@5 over the epochs (train.select_best); the same
        # seeded stream as the course, so with equal sizes both rank the same windows
        validate = None
        if spec.train.select_best:
            k = metric_k(spec.train.select_metric)
            if spec.train.select_samples == spec.train.course_samples:
                chosen, chosen_prompts = course, course_prompts
            else:
                chosen = sample_windows(
                    load_window_split(prepared, "valid"), spec.train.select_samples, spec.seed, "windows.valid.course"
                )
                chosen_prompts = window_prompt_ids(chosen, titles, tokenizer, spec.model.max_length, template=template)
            targets = chosen["item_id"].to_numpy(dtype=np.int64)

            def validate(m):
                from lure.llm.generate import constrained_beam_search

                found = constrained_beam_search(m, tokenizer, chosen_prompts, trie, beam=10, top_k=k)
                ranked = np.full((len(found), k), -1, dtype=np.int64)
                for n, r in enumerate(found):
                    ranked[n, : len(r.items)] = r.items
                return {name: float(v.mean()) for name, v in accuracy(ranked, targets, [k]).items()}

        out = Path(llm_model_dir(method))
        result = fine_tune(
            model,
            tokenizer,
            dataset,
            spec.train,
            int_seed(spec.seed, "train"),  # every method: the same initial data order and dropout draws
            out,
            checkpoint_dir(f"train-{method}", run_key(*key_parts)),
            trainer_cls=setup.trainer_cls,
            callbacks=[callback],
            validate=validate,
            **setup.trainer_kwargs,
        )
        if not result["main_process"]:
            raise SystemExit(0)
        write_parquet(llm_model_course(method), pd.DataFrame(callback.rows, columns=list(COURSE_COLUMNS)))
        write_json(llm_model_log_history(method), result["log_history"])
        st.metrics.update(result["metrics"], threads=threads, course_seconds=round(callback.seconds, 3))
