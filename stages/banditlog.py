"""Stage ``banditlog``: the prior policy serves round 1's training windows one item each, drawn from its
distribution over the catalogue at ``abpo.serving_temperature``, with the exact mu(a|x) and the feedback recorded
(``lure.abpo.logs``); it also serves the evaluation windows (the log the off-policy estimates read) and evaluates
the SFT recommender, every method's starting point, as round 0 (``lure.abpo.run.bandit_log``; docs/abpo.md)."""

from pathlib import Path

from lure.abpo.run import bandit_log, load_recommender, log_summary
from lure.io import write_parquet
from lure.layout import BANDITLOG, BANDITLOG_CONTEXTS, BANDITLOG_EVAL, Prepared, window_model_dir
from lure.llm.data import load_window_model
from lure.llm.model import set_torch_threads
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("banditlog") as st:
        cfg = st.spec.abpo
        set_torch_threads(st.spec.train.threads)
        prepared = Prepared()
        policy = load_recommender(prepared, st.spec.model)
        zoo = None if cfg.prior == "sft" else load_window_model(Path(window_model_dir(cfg.prior)))
        logged = bandit_log(prepared, policy, zoo, cfg, st.spec.seed, st.spec.eval.llm.rank_batch)
        write_parquet(BANDITLOG_CONTEXTS, logged.contexts)
        write_parquet(BANDITLOG, logged.log)
        write_parquet(BANDITLOG_EVAL, logged.eval_log)
        st.metrics.update(log=log_summary(logged.log), eval_log=log_summary(logged.eval_log), round_0=logged.round_0)
