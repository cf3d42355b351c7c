"""Stage ``llm-report``: the window-protocol results of every recommender side by side (GDRT Table 2's metrics),
the method under study against each baseline with paired-bootstrap CIs, the diagnostics plots (Figs. 2-4/7-9), and
the language-bias table: the base model (before fine-tuning) next to every recommender, with the attribution ratios,
what each model's Eq. 2 follows (title prior vs popularity) and, on the world, the top-1 share of the highest
title-prior quintile against the popularity-matched true-relevance reference (docs/gdrt.md)."""

from pathlib import Path

import pandas as pd

from lure.data.sources.base import dataset_label
from lure.io import write_text
from lure.layout import (
    LLM_REPORT_LANGUAGE_BIAS,
    LLM_REPORT_RESULTS,
    llm_eval_course,
    llm_eval_per_sample,
    plots_dir,
)
from lure.metrics.language_bias import report_row
from lure.plots.llm import write_attribution_plot, write_course_plot, write_top1_groups_plot
from lure.registry import METHODS
from lure.rng import stream
from lure.stage import run_stage
from lure.stats import paired_bootstrap

REPORTED = ("ndcg_at_5", "ndcg_at_10", "hit_at_5", "hit_at_10", "mgu_at_5", "dgu_at_5")
ATTRIBUTION_RATIOS = ("ratio_task_to_history", "ratio_first_token_to_history")


if __name__ == "__main__":
    with run_stage("llm-report") as st:
        spec = st.spec
        cfg = spec.eval.llm
        names = [spec.method.name, *spec.baselines]
        deps = st.dep_metrics()
        results = {
            n: {
                k: v
                for k, v in deps[f"llm-eval-{n}"].items()
                if k in REPORTED or k.startswith(("hit", "ndcg", "true_relevance", "coverage", "history_share"))
            }
            for n in names
        }
        for n in names:  # the language-bias ratios of the fine-tuned LLMs (Fig. 2/7), next to their accuracy
            if "attribution" in deps[f"llm-eval-{n}"]:
                results[n].update({r: deps[f"llm-eval-{n}"]["attribution"][r] for r in ATTRIBUTION_RATIOS})
        per_sample = {n: pd.read_parquet(llm_eval_per_sample(n)) for n in names}
        comparison = {}
        study = spec.method.name
        for other in spec.baselines:
            comparison[f"{study}_vs_{other}"] = {
                metric: paired_bootstrap(
                    per_sample[study][metric].to_numpy(),
                    per_sample[other][metric].to_numpy(),
                    cfg.bootstrap,
                    spec.eval.confidence,
                    stream(spec.seed, "llm-report.bootstrap"),  # the same resamples for every comparison
                )
                for metric in (f"ndcg_at_{max(cfg.ks)}", f"hit_at_{max(cfg.ks)}", f"true_relevance_at_{max(cfg.ks)}")
                if metric in per_sample[study]
            }
            for metric in (f"mgu_at_{cfg.fairness_k}", f"dgu_at_{cfg.fairness_k}"):
                comparison[f"{study}_vs_{other}"][metric] = {"diff": results[study][metric] - results[other][metric]}
        table = pd.DataFrame([{"model": n, **results[n]} for n in names])
        write_text(LLM_REPORT_RESULTS, table.to_csv(index=False))
        # before (the base model) and after fine-tuning, side by side
        bias = {"base": report_row(deps["llm-base"], ATTRIBUTION_RATIOS)}
        bias.update({n: report_row(deps[f"llm-eval-{n}"], ATTRIBUTION_RATIOS) for n in names})
        bias_table = pd.DataFrame([{"model": m, **row} for m, row in bias.items()])
        write_text(LLM_REPORT_LANGUAGE_BIAS, bias_table.to_csv(index=False))

        plots = Path(plots_dir("llm"))
        attribution = [("base", deps["llm-base"]["attribution"])]
        attribution += [
            (n, deps[f"llm-eval-{n}"]["attribution"]) for n in METHODS.names() if n in names
        ]  # before→after
        write_attribution_plot(
            pd.DataFrame([{"model": m, "ratio": r, "value": a[r]} for m, a in attribution for r in ATTRIBUTION_RATIOS]),
            plots,
        )
        shares = [
            {"model": "test targets", "group": g + 1, "share": s}
            for g, s in enumerate(deps[f"llm-eval-{study}"]["target_group_share"])
        ]
        shares += [
            {"model": n, "group": g + 1, "share": s}
            for n in names
            for g, s in enumerate(deps[f"llm-eval-{n}"]["top1_group_share"])
        ]
        write_top1_groups_plot(pd.DataFrame(shares), plots)
        course_rows = []
        for n in names:
            path = Path(llm_eval_course(n))
            if path.is_file():
                c = pd.read_parquet(path)
                c = c[c["group"] >= 0]
                for step, part in c.groupby("step"):
                    counts = part["group"].value_counts(normalize=True)
                    course_rows += [
                        {"model": n, "step": int(step), "group": g + 1, "share": float(counts.get(g, 0.0))}
                        for g in range(cfg.fairness_groups)
                    ]
        write_course_plot(pd.DataFrame(course_rows, columns=["model", "step", "group", "share"]), plots)
        st.metrics[dataset_label(spec.data.source)] = results
        st.metrics["comparison"] = comparison
        st.metrics["attribution"] = {m: a for m, a in attribution}
        st.metrics["language_bias"] = bias
