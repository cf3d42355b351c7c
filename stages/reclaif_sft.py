"""Stage ``reclaif-sft``: distil the teacher into the base model (RecLAIF §5, Eq. 1 on the teacher's answers)."""

from pathlib import Path

import pandas as pd

from lure.layout import LLM_BASE, RECLAIF_INSTANCES, reclaif_model_dir
from lure.llm.base import load_base
from lure.llm.model import set_torch_threads
from lure.reclaif.run import distill, distill_settings
from lure.stage import run_stage
from lure.train.finetune import checkpoint_dir, run_key

if __name__ == "__main__":
    with run_stage("reclaif-sft") as st:
        set_torch_threads(st.spec.train.threads)
        spec = st.spec.reclaif
        model, tokenizer = load_base(Path(LLM_BASE), st.spec.model, trainable=True)
        train = distill_settings(st.spec.train, spec.sft_epochs)
        work = checkpoint_dir("reclaif-sft", run_key(st.spec.seed, spec.k, sorted(vars(train).items())))
        data = pd.read_parquet(RECLAIF_INSTANCES)
        out = Path(reclaif_model_dir("sft"))
        st.metrics.update(
            distill(model, tokenizer, data, spec, train, st.spec.model.max_length, st.spec.seed, out, work)
        )
