"""Stage ``evaluate``: naive, IPS and SNIPS Recall/NDCG@K of every zoo model, with CIs, tests and the truth."""

from pathlib import Path

import numpy as np
import pandas as pd

from lure.estimators import evaluate_zoo, results_frame
from lure.io import write_text
from lure.pipeline.stages import EVALUATE_DIR, PREPARED, PROPENSITY_MODEL, zoo_dir
from lure.plots.estimates import write_estimates_plot
from lure.propensity.fitted import FittedPropensity
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("evaluate") as st:
        cfg = st.spec.eval
        prepared = Path(PREPARED)
        train = pd.read_parquet(prepared / "splits" / "holdout_train.parquet")
        test = pd.read_parquet(prepared / "splits" / "holdout_test.parquet")
        propensity = FittedPropensity.load(PROPENSITY_MODEL)
        pi = propensity.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
        truth = prepared / "truth"
        relevance = np.load(truth / "relevance.npy", mmap_mode="r") if (truth / "relevance.npy").exists() else None
        mar = pd.read_parquet(truth / "mar.parquet") if (truth / "mar.parquet").exists() else None
        topk = {m: pd.read_parquet(Path(zoo_dir(m)) / "topk.parquet") for m in cfg.models}
        result = evaluate_zoo(
            topk, test, pi, list(cfg.ks), train, relevance, mar, cfg.bootstrap, cfg.confidence, st.spec.seed
        )
        tidy = results_frame(result)
        write_text(Path(EVALUATE_DIR) / "results.csv", tidy.to_csv(index=False))
        write_estimates_plot(tidy, Path("plots/evaluate"))
        st.metrics.update(result)
