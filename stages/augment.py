"""Stage ``augment``: the loop of LURE's evaluate -> synthesize -> re-evaluate. Each model of ``exposynth.models``
(null: every model of ``eval.models``) is fitted again on real + synthetic interactions and evaluated exactly as its
zoo stage's lists are (IPS, SNIPS, the truth on the world, the judge's RJS), overall and on the head and the tail,
before and after side by side on the same users (lure.exposynth.augment)."""

import sys

import pandas as pd

from lure.exposynth.augment import AFTER, SLICES, augmented_log, before_after, slice_items, sliced_evaluation, tidy
from lure.io import write_parquet, write_text
from lure.judge.evaluate import judge_report
from lure.layout import (
    AUGMENT_DIR,
    AUGMENT_RESULTS,
    EXPOSYNTH_ROWS,
    JUDGE_ANSWERS,
    PAIRS,
    PROPENSITY_MODEL,
    Prepared,
    zoo_pair_scores,
    zoo_topk,
)
from lure.models.zoo import fit_rank_score, ranked_users
from lure.propensity.fitted import FittedPropensity
from lure.rng import int_seed
from lure.spec.exposynth import augmented_models
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("augment") as st:
        spec = st.spec
        prepared = Prepared()
        items = prepared.read_items(columns=["item_id", "pop_bin"])
        train = prepared.read_split("holdout", "train")
        test = prepared.read_split("holdout", "test")
        mar = prepared.read_mar()
        relevance = prepared.read_relevance()
        synthetic = pd.read_parquet(EXPOSYNTH_ROWS)
        pairs = pd.read_parquet(PAIRS)
        users = ranked_users(test["user_id"].to_numpy(), None if mar is None else mar["user_id"].to_numpy())
        fit_on = augmented_log(train, synthetic)
        models = augmented_models(spec.exposynth, spec.eval.models)
        topk, scores = {}, {}
        for name in models:
            topk[name] = pd.read_parquet(zoo_topk(name))
            scores[name] = pd.read_parquet(zoo_pair_scores(name))
            seed = int_seed(spec.seed, f"zoo.{name}")  # the zoo stage's seed: only the data differ
            after, scored = fit_rank_score(name, spec.eval, fit_on, train, users, pairs, len(items), seed)
            topk[name + AFTER], scores[name + AFTER] = after, scored
            write_parquet(f"{AUGMENT_DIR}/{name}/topk.parquet", after)
            write_parquet(f"{AUGMENT_DIR}/{name}/pair_scores.parquet", scored)
        pi = FittedPropensity.load(PROPENSITY_MODEL).predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
        population = train["user_id"].unique()
        pop_bin = items["pop_bin"].to_numpy()
        report: dict = {name: {} for name in SLICES}
        for slice_name in SLICES:
            in_slice = slice_items(pop_bin, spec.data.bins.n_pop_bins, slice_name)
            for m in models:  # one model's before and after per evaluation: their paired comparison is always made
                result = sliced_evaluation(
                    {m: topk[m], m + AFTER: topk[m + AFTER]},
                    test,
                    pi,
                    list(spec.eval.ks),
                    train,
                    relevance,
                    mar,
                    population,
                    in_slice,
                    spec.eval.bootstrap,
                    spec.eval.confidence,
                    spec.seed,
                )
                report[slice_name].update(before_after(result, [m]))
        by_model = {m: {s: report[s][m] for s in SLICES} for m in models}
        write_text(AUGMENT_RESULTS, tidy(by_model).to_csv(index=False))
        deltas = {m: {"change": report["all"][m]["paired"], "tail_change": report["tail"][m]["paired"]} for m in models}
        metrics = {"synthetic_rows": len(synthetic), "models": deltas, "slices": report}
        if "--judged" in sys.argv[1:]:  # the pipeline passes it when the spec has a judge (lure.pipeline.stages)
            judged, _ = judge_report(
                pairs,
                pd.read_parquet(JUDGE_ANSWERS),
                scores,
                spec.judge,
                spec.eval.bootstrap,
                spec.eval.confidence,
                spec.seed,
            )
            for m in models:
                before, after = judged["models"][m]["all"]["rjs"], judged["models"][m + AFTER]["all"]["rjs"]
                change = after["mean"] - before["mean"]
                metrics["models"][m]["rjs"] = {"before": before, "after": after, "delta": change}
        st.metrics.update(metrics)
