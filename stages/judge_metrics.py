"""Stage ``judge-metrics``: the judge's labels, its accuracy, and every recommender's PairAUC_IPS (LURE Eq. 2) and
RJS against them, overall and per popularity bucket (Table 1), with bootstrap CIs.

``python -m stages.judge_metrics [method ...]``: the zoo models of ``eval.models`` and the fine-tuned LLM
recommenders named on the command line (their ``llm-pairs-<method>`` scores), all through the same pair scores."""

import sys
from pathlib import Path

import pandas as pd

from lure.io import write_text
from lure.judge.evaluate import judge_report
from lure.layout import JUDGE_ANSWERS, JUDGE_TABLE, PAIRS, llm_pair_scores, plots_dir, zoo_pair_scores
from lure.plots.judge import write_rjs_plot
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("judge-metrics") as st:
        pairs = pd.read_parquet(PAIRS)
        answers = pd.read_parquet(JUDGE_ANSWERS)
        scores = {name: pd.read_parquet(zoo_pair_scores(name)) for name in st.spec.eval.models}
        scores.update({name: pd.read_parquet(llm_pair_scores(name)) for name in sys.argv[1:]})
        metrics, table = judge_report(
            pairs, answers, scores, st.spec.judge, st.spec.eval.bootstrap, st.spec.eval.confidence, st.spec.seed
        )
        write_text(JUDGE_TABLE, table.to_csv(index=False))
        write_rjs_plot(table, Path(plots_dir("judge")))
        st.metrics.update(metrics)
