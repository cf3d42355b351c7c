"""Stage ``abpo-<variant>``: successive deployments of one compared method (``lure.abpo.run.continual_rounds``;
docs/abpo.md). Round 1 updates the SFT recommender on the prior policy's log (stage ``banditlog``); every later
round's training windows are served by the policy the previous round produced, their feedback logged, and the policy
updated again. After every update the policy is evaluated on the same test windows: HR/NDCG@K, true CTR (world),
exposure bias, and the IPS and SNIPS estimates of its CTR from the prior policy's evaluation log."""

import sys

import pandas as pd

from lure.abpo.run import BanditLog, continual_rounds, load_recommender
from lure.abpo.update import method_settings
from lure.io import write_parquet
from lure.layout import BANDITLOG, BANDITLOG_CONTEXTS, BANDITLOG_EVAL, Prepared, abpo_dir
from lure.llm.model import set_torch_threads
from lure.stage import run_stage

if __name__ == "__main__":
    name = sys.argv[1]
    with run_stage(f"abpo-{name}") as st:
        cfg = st.spec.abpo
        variant = cfg.variants[name]
        set_torch_threads(st.spec.train.threads)
        prepared = Prepared()
        policy = load_recommender(prepared, st.spec.model)
        logged = BanditLog(
            pd.read_parquet(BANDITLOG_CONTEXTS), pd.read_parquet(BANDITLOG), pd.read_parquet(BANDITLOG_EVAL), {}
        )
        settings = method_settings(variant, cfg)
        rounds, logs = continual_rounds(
            prepared, policy, name, settings, cfg, st.spec.seed, st.spec.eval.llm.rank_batch, logged
        )
        out = abpo_dir(name)
        write_parquet(f"{out}/logs.parquet", logs)
        policy.model.save_pretrained(f"{out}/model")
        policy.tokenizer.save_pretrained(f"{out}/model")
        st.metrics.update(
            variant=variant.model_dump(),
            rounds=rounds,
            final={k: v for k, v in rounds[-1].items() if not isinstance(v, dict)},
        )
