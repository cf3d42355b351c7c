"""Stage ``zoo-<model>``: fit one classic recommender; write its top-K lists and the scores of the judged pairs."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lure.io import write_parquet
from lure.models.zoo import build_model, score_pairs, top_k
from lure.pipeline.stages import PAIRS, PREPARED, zoo_dir
from lure.stage import run_stage

if __name__ == "__main__":
    name = sys.argv[1]
    with run_stage(f"zoo-{name}") as st:
        prepared = Path(PREPARED)
        items = pd.read_parquet(prepared / "items.parquet", columns=["item_id"])
        train = pd.read_parquet(prepared / "splits" / "holdout_train.parquet")
        test_users = pd.read_parquet(prepared / "splits" / "holdout_test.parquet", columns=["user_id"])["user_id"]
        mar = prepared / "truth" / "mar.parquet"
        users = test_users.to_numpy()
        if mar.exists():  # the MAR estimate ranks for the users of the missing-at-random log too
            users = np.concatenate([users, pd.read_parquet(mar, columns=["user_id"])["user_id"].to_numpy()])
        users = np.unique(users)
        n_users = int(max(train["user_id"].max(), users.max())) + 1
        model = build_model(name, st.spec.eval).fit(train, n_users, len(items), st.spec.seed)
        out = Path(zoo_dir(name))
        topk = top_k(model, users, train, st.spec.eval.topk)
        write_parquet(out / "topk.parquet", topk)
        pairs = pd.read_parquet(PAIRS, columns=["user_id", "item_i", "item_j"])
        s_i, s_j = score_pairs(model, pairs["user_id"].to_numpy(), pairs["item_i"].to_numpy(), pairs["item_j"].to_numpy())
        write_parquet(out / "pair_scores.parquet", pairs.assign(score_i=s_i, score_j=s_j))
        st.metrics.update(users=len(users), topk_rows=len(topk), pairs_scored=len(pairs))
