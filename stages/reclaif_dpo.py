"""Stage ``reclaif-dpo-<i>``: RecLAIF's iteration i (Algorithm 1): two sampled answers per DPO prompt from the
model of iteration i-1, the judge's verdicts, DPO against the reference (the SFT model, or iteration i-1's)."""

import sys
from pathlib import Path

import pandas as pd

from lure.io import write_parquet
from lure.layout import LLM_BASE, RECLAIF_INSTANCES, REQUEST_CACHE, reclaif_model_dir
from lure.llm.base import load_trained
from lure.llm.model import set_torch_threads
from lure.reclaif.run import dpo_iteration
from lure.requests import ResponseCache
from lure.stage import run_stage
from lure.train.finetune import checkpoint_dir, run_key

if __name__ == "__main__":
    iteration = int(sys.argv[1])
    with run_stage(f"reclaif-dpo-{iteration}") as st:
        set_torch_threads(st.spec.train.threads)
        spec = st.spec.reclaif
        previous = reclaif_model_dir("sft" if iteration == 1 else f"dpo-{iteration - 1}")
        model, tokenizer = load_trained(Path(previous), Path(LLM_BASE), st.spec.model)
        ref = None  # 'previous': the model as it enters the iteration (TRL's default reference)
        if spec.reference == "sft" and iteration > 1:
            ref, _ = load_trained(Path(reclaif_model_dir("sft")), Path(LLM_BASE), st.spec.model)
        out = Path(reclaif_model_dir(f"dpo-{iteration}"))
        work = checkpoint_dir(f"reclaif-dpo-{iteration}", run_key(st.spec.seed, previous))
        data = pd.read_parquet(RECLAIF_INSTANCES)
        Path(REQUEST_CACHE).parent.mkdir(parents=True, exist_ok=True)
        with ResponseCache(REQUEST_CACHE) as cache:
            judged, metrics = dpo_iteration(
                model, ref, tokenizer, data, spec, st.spec.seed, iteration, out, work, cache
            )
        write_parquet(str(out / "judged.parquet"), judged)
        st.metrics.update(metrics)
