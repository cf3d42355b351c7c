"""Across-seed comparison of the method under study with a baseline, from DVC experiments.

Run each seed as an experiment (``dvc exp run --queue -S seed=1`` ...), then ``lure study`` collects every finished
experiment's ``metrics/llm-report.json`` (and each recommender's ``metrics/llm-eval-<name>.json``) through
``dvc exp show --json --all-commits`` and reports, per metric, the
mean over seeds with a Student-t confidence interval for each recommender, and the paired difference (method −
baseline, same seed) with its t interval (:func:`lure.stats.t_interval`). Seeds, not test windows, are the unit here:
each seed redraws the world, the model initialisation, the training sample and the evaluation sample.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lure.experiments import experiments_from_exp_show, flatten_params, metrics_at
from lure.stats import t_interval

#: Metrics files of one recommender's evaluation stage (``metrics/llm-eval-<name>.json``).
EVAL_PREFIX = "llm-eval-"


def experiment_reports(exp_show: Any) -> list[dict[str, Any]]:
    """``[{"name", "rev", "seed", "report", "evals", "params"}]`` for every finished workspace/commit/experiment row
    of ``dvc exp show --json`` that has an LLM report (``evals``: each recommender's llm-eval metrics by name); rows
    with the same (seed, report) are kept once (the workspace repeats its baseline)."""
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for experiment in experiments_from_exp_show(exp_show):
        report, params = experiment.metrics.get("llm-report"), experiment.params
        if not report or "seed" not in params:
            continue
        key = json.dumps([params["seed"], report], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        found.append(
            {
                "name": experiment.name,
                "rev": experiment.rev,
                "seed": int(params["seed"]),
                "report": report,
                "evals": {
                    stage[len(EVAL_PREFIX) :]: values
                    for stage, values in experiment.metrics.items()
                    if stage.startswith(EVAL_PREFIX) and isinstance(values, dict)
                },
                "params": params,
            }
        )
    return found


def same_spec(
    reports: Sequence[Mapping[str, Any]], params: Mapping[str, Any], ignore: Sequence[str] = ("seed",)
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(kept, skipped): reports whose params equal ``params`` apart from the ``ignore`` keys (top level).

    Why: ``dvc exp show --all-commits`` also lists experiments of older commits, run with other specs (another
    template, more epochs...); averaging them with today's seeds would make a confidence interval of a mixture.
    """

    def strip(p: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k not in ignore}

    target = strip(params)
    kept = [r for r in reports if strip(r.get("params") or {}) == target]
    return kept, [r for r in reports if r not in kept]


def with_eval_files(reports: Sequence[Mapping[str, Any]], models: Sequence[str]) -> list[dict[str, Any]]:
    """The reports with each model's whole llm-eval metrics file read from the experiment's git revision
    (:func:`lure.experiments.metrics_at`), so that list entries (``top1_group_share.2``), which ``dvc exp show``
    drops, are study metrics too."""
    out = []
    for r in reports:
        evals = dict(r.get("evals") or {})
        for model in models:
            whole = metrics_at(str(r["rev"]), EVAL_PREFIX + model)
            if isinstance(whole, dict):
                evals[model] = whole
        out.append({**r, "evals": evals})
    return out


def _flat(values: Any) -> dict[str, float]:
    """The numbers of a nested metrics mapping by dotted name, list entries by index (``top1_group_share.2``)."""
    flat = flatten_params(values, index_lists=True)
    return {k: float(v) for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def model_metrics(report: Mapping[str, Any], dataset: str, model: str) -> dict[str, float]:
    """Every number one experiment holds for one recommender, by name: its llm-report row (``ndcg_at_10`` ...),
    its language-bias row (``top1_top_prior_share``, ``eq2_spearman_prior`` ...) and its llm-eval metrics file
    (``top1_group_share.0`` ... : the top-1 popularity-group distribution of GDRT Figs 3/8). The report row wins
    where a name occurs twice (the same value: the report copies it from the evaluation)."""
    evaluation = _flat((report.get("evals") or {}).get(model) or {})
    bias = _flat(((report["report"].get("language_bias") or {}).get(model)) or {})
    row = _flat(((report["report"].get(dataset) or {}).get(model)) or {})
    return {**evaluation, **bias, **row}


def seed_study(
    reports: Sequence[Mapping[str, Any]],
    study: str,
    baseline: str,
    dataset: str,
    metrics: Sequence[str],
    confidence: float,
) -> pd.DataFrame:
    """One row per (metric, what): ``what`` is a recommender (its mean over seeds) or ``study-baseline`` (the
    paired difference); columns n_seeds, mean, ci_low, ci_high, values (per seed, seed order)."""
    by_seed: dict[int, dict[str, dict[str, float]]] = {}
    for r in reports:
        results = r["report"].get(dataset)
        if results and study in results and baseline in results and r["seed"] not in by_seed:
            # first row per seed (an experiment and its baseline agree)
            by_seed[r["seed"]] = {m: model_metrics(r, dataset, m) for m in (study, baseline)}
    if not by_seed:
        raise ValueError(f"no experiment has an llm-report for dataset {dataset!r} with {study!r} and {baseline!r}")
    seeds = sorted(by_seed)
    rows = []
    for metric in metrics:
        for s in seeds:
            for m in (study, baseline):
                if metric not in by_seed[s][m]:
                    raise ValueError(
                        f"metric {metric!r}: not reported for {m!r} at seed {s}; it has "
                        + ", ".join(sorted(by_seed[s][m]))
                    )
        series = {
            study: [by_seed[s][study][metric] for s in seeds],
            baseline: [by_seed[s][baseline][metric] for s in seeds],
        }
        series[f"{study}-{baseline}"] = list(np.subtract(series[study], series[baseline]))
        for what, values in series.items():
            mean, lo, hi = t_interval(values, confidence)
            rows.append(
                {
                    "metric": metric,
                    "what": what,
                    "n_seeds": len(seeds),
                    "mean": mean,
                    "ci_low": lo,
                    "ci_high": hi,
                    "values": [round(float(v), 5) for v in values],
                    "seeds": seeds,
                }
            )
    return pd.DataFrame(rows)
