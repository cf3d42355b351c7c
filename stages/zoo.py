"""Stage ``zoo-<model>``: fit one classic recommender; write its top-K lists and the scores of the judged pairs."""

import sys

import numpy as np
import pandas as pd

from lure.io import write_parquet
from lure.layout import PAIRS, Prepared, zoo_pair_scores, zoo_topk
from lure.models.zoo import build_model, score_pairs, top_k
from lure.rng import int_seed
from lure.stage import run_stage

if __name__ == "__main__":
    name = sys.argv[1]
    with run_stage(f"zoo-{name}") as st:
        prepared = Prepared()
        items = prepared.read_items(columns=["item_id"])
        train = prepared.read_split("holdout", "train")
        test_users = prepared.read_split("holdout", "test", columns=["user_id"])["user_id"]
        mar = prepared.read_mar(columns=["user_id"])
        users = test_users.to_numpy()
        if mar is not None:  # the MAR estimate ranks for the users of the missing-at-random log too
            users = np.concatenate([users, mar["user_id"].to_numpy()])
        users = np.unique(users)
        n_users = int(max(train["user_id"].max(), users.max())) + 1
        model = build_model(name, st.spec.eval).fit(train, n_users, len(items), int_seed(st.spec.seed, f"zoo.{name}"))
        topk = top_k(model, users, train, st.spec.eval.topk)
        write_parquet(zoo_topk(name), topk)
        pairs = pd.read_parquet(PAIRS, columns=["user_id", "item_i", "item_j"])
        s_i, s_j = score_pairs(
            model, pairs["user_id"].to_numpy(), pairs["item_i"].to_numpy(), pairs["item_j"].to_numpy()
        )
        write_parquet(zoo_pair_scores(name), pairs.assign(score_i=s_i, score_j=s_j))
        st.metrics.update(users=len(users), topk_rows=len(topk), pairs_scored=len(pairs))
