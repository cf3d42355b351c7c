"""Stage ``evaluate``: naive, IPS, SNIPS and global-SN Recall/DCG@K of every zoo model, with CIs, tests, the truth
and the bias summary per propensity model."""

from pathlib import Path

import pandas as pd

from lure.evaluation import evaluate_zoo, results_frame, summary_by_propensity
from lure.io import write_text
from lure.layout import EVALUATE_RESULTS, PREPARED, PROPENSITY_MODEL, Prepared, plots_dir, zoo_topk
from lure.plots.estimates import write_estimates_plot
from lure.propensity.fitted import FittedPropensity, fit_alternatives
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("evaluate") as st:
        cfg = st.spec.eval
        prepared = Prepared()
        train = prepared.read_split("holdout", "train")
        test = prepared.read_split("holdout", "test")
        propensity = FittedPropensity.load(PROPENSITY_MODEL)
        users, items = test["user_id"].to_numpy(), test["item_id"].to_numpy()
        pi = propensity.predict(users, items)
        relevance = prepared.read_relevance()
        mar = prepared.read_mar()
        topk = {m: pd.read_parquet(zoo_topk(m)) for m in cfg.models}
        # The population of plain IPS and the truth (world only): every training user had an evaluation round,
        # positives or not (docs/world.md).
        population = train["user_id"].unique()
        result = evaluate_zoo(
            topk,
            test,
            pi,
            list(cfg.ks),
            train,
            relevance,
            mar,
            cfg.bootstrap,
            cfg.confidence,
            st.spec.seed,
            population=population,
        )
        if cfg.compare_propensities:
            # The configured model's summary is the one just computed; only the alternatives are evaluated again.
            others = fit_alternatives(st.spec.propensity, Path(PREPARED), st.spec.seed)
            pis = {name: model.predict(users, items) for name, model in others.items()}
            result["summary"]["by_propensity"] = {
                propensity.name: dict(result["summary"]),
                **summary_by_propensity(topk, test, pis, list(cfg.ks), train, relevance, mar, population),
            }
        tidy = results_frame(result)
        write_text(EVALUATE_RESULTS, tidy.to_csv(index=False))
        write_estimates_plot(tidy, Path(plots_dir("evaluate")))
        st.metrics.update(result)
