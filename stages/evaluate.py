"""Stage ``evaluate``: naive, IPS and SNIPS Recall/NDCG@K of every zoo model, with CIs, tests and the truth."""

from pathlib import Path

import pandas as pd

from lure.evaluation import evaluate_zoo, results_frame
from lure.io import write_text
from lure.layout import EVALUATE_RESULTS, PROPENSITY_MODEL, Prepared, plots_dir, zoo_topk
from lure.plots.estimates import write_estimates_plot
from lure.propensity.fitted import FittedPropensity
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("evaluate") as st:
        cfg = st.spec.eval
        prepared = Prepared()
        train = prepared.read_split("holdout", "train")
        test = prepared.read_split("holdout", "test")
        propensity = FittedPropensity.load(PROPENSITY_MODEL)
        pi = propensity.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
        relevance = prepared.read_relevance()
        mar = prepared.read_mar()
        topk = {m: pd.read_parquet(zoo_topk(m)) for m in cfg.models}
        result = evaluate_zoo(
            topk, test, pi, list(cfg.ks), train, relevance, mar, cfg.bootstrap, cfg.confidence, st.spec.seed
        )
        tidy = results_frame(result)
        write_text(EVALUATE_RESULTS, tidy.to_csv(index=False))
        write_estimates_plot(tidy, Path(plots_dir("evaluate")))
        st.metrics.update(result)
