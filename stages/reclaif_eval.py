"""Stage ``reclaif-eval``: every RecLAIF recommender -- the base model, the teacher, SFT, each DPO iteration and the
classic baselines -- answers the same test prompts (greedy); ValidRatio, Hit@1 (or Prec@k for retrieval), NDCG@k,
true relevance (world), diversity and explainability with bootstrap intervals, each iteration's paired change over
SFT, and Figure 3."""

from pathlib import Path

import pandas as pd

from lure.data.sources.base import dataset_label
from lure.io import write_parquet
from lure.layout import (
    LLM_BASE,
    RECLAIF_CATALOGUE,
    RECLAIF_INSTANCES,
    RECLAIF_REPORT_DIR,
    REQUEST_CACHE,
    Prepared,
    plots_dir,
    reclaif_model_dir,
    reclaif_model_names,
)
from lure.llm.base import load_base, load_trained
from lure.llm.data import title_lookup
from lure.llm.model import set_torch_threads
from lure.plots.reclaif import iterations_frame, write_iterations_plot
from lure.reclaif.baselines import baseline_answers
from lure.reclaif.instances import report_key
from lure.reclaif.policy import generate_answers
from lure.reclaif.run import answer_frame, constraint, figure_metrics, part, sampling, summarise, task_truth
from lure.requests import ResponseCache
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("reclaif-eval") as st:
        set_torch_threads(st.spec.train.threads)
        spec = st.spec.reclaif
        test = part(pd.read_parquet(RECLAIF_INSTANCES), "test")
        prepared = Prepared()
        catalogue = pd.read_parquet(RECLAIF_CATALOGUE) if spec.task == "retrieval" else None
        titles = title_lookup(catalogue if catalogue is not None else prepared.read_items(columns=["item_id", "title"]))
        truth = task_truth(prepared, spec)
        trained = reclaif_model_names(spec.iterations)
        answers = {"teacher": list(test["teacher"])}
        speed = {}
        for name in ["base", *trained]:
            if name == "base":
                model, tokenizer = load_base(Path(LLM_BASE), st.spec.model)
            else:
                model, tokenizer = load_trained(Path(reclaif_model_dir(name)), Path(LLM_BASE), st.spec.model)
            out, stats = generate_answers(
                model,
                tokenizer,
                list(test["prompt"]),
                1,
                sampling(spec, greedy=True),
                st.spec.seed,
                candidates=constraint(test, spec),
            )
            answers[name] = [a[0] for a in out]
            speed[name] = stats["answers_per_s"]
        answers |= baseline_answers(spec, test, catalogue)
        Path(REQUEST_CACHE).parent.mkdir(parents=True, exist_ok=True)
        with ResponseCache(REQUEST_CACHE) as cache:
            frames = {
                name: answer_frame(test, texts, spec, titles, truth, cache, rate=name not in spec.baselines)
                for name, texts in answers.items()
            }
        Path(RECLAIF_REPORT_DIR).mkdir(parents=True, exist_ok=True)
        for name, frame in frames.items():
            write_parquet(f"{RECLAIF_REPORT_DIR}/answers-{name}.parquet", frame)
        summary = summarise(frames, spec.k, st.spec.eval.bootstrap, st.spec.eval.confidence, st.spec.seed)
        panels = figure_metrics(spec.k, truth is not None, spec.task)
        write_iterations_plot(iterations_frame(summary, trained, panels), Path(plots_dir("reclaif-eval")))
        st.metrics[report_key(dataset_label(st.spec.data.source), spec.task)] = {
            "models": summary,
            "answers_per_s": speed,
            "test_prompts": len(test),
        }
