"""Stage ``zoo-<model>``: fit one classic recommender; write its top-K lists and the scores of the judged pairs."""

import sys

import pandas as pd

from lure.io import write_parquet
from lure.layout import PAIRS, Prepared, zoo_pair_scores, zoo_topk
from lure.models.zoo import fit_rank_score, ranked_users
from lure.rng import int_seed
from lure.stage import run_stage

if __name__ == "__main__":
    name = sys.argv[1]
    with run_stage(f"zoo-{name}") as st:
        prepared = Prepared()
        n_items = len(prepared.read_items(columns=["item_id"]))
        train = prepared.read_split("holdout", "train")
        test_users = prepared.read_split("holdout", "test", columns=["user_id"])["user_id"].to_numpy()
        mar = prepared.read_mar(columns=["user_id"])
        users = ranked_users(test_users, None if mar is None else mar["user_id"].to_numpy())
        pairs = pd.read_parquet(PAIRS, columns=["user_id", "item_i", "item_j"])
        seed = int_seed(st.spec.seed, f"zoo.{name}")
        topk, scored = fit_rank_score(name, st.spec.eval, train, train, users, pairs, n_items, seed)
        write_parquet(zoo_topk(name), topk)
        write_parquet(zoo_pair_scores(name), scored)
        st.metrics.update(users=len(users), topk_rows=len(topk), pairs_scored=len(scored))
