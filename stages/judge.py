"""Stage ``judge``: RecJudge-X (LURE §2.1) judges the matched pairs; one row per answer with exactly one status."""

from pathlib import Path

import pandas as pd

from lure.io import write_parquet
from lure.judge.labels import status_counts
from lure.judge.run import position_stats, run_judge
from lure.layout import JUDGE_ANSWERS, PAIRS, REQUEST_CACHE, Prepared
from lure.requests import ResponseCache
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("judge") as st:
        spec = st.spec.judge
        prepared = Prepared()
        pairs = pd.read_parquet(PAIRS)
        items = prepared.read_items()
        train = prepared.read_split("holdout", "train")
        Path(REQUEST_CACHE).parent.mkdir(parents=True, exist_ok=True)
        with ResponseCache(REQUEST_CACHE) as cache:
            answers, result = run_judge(pairs, items, train, spec, st.spec.seed, cache)
        write_parquet(JUDGE_ANSWERS, answers)
        counts = status_counts(answers["status"])
        schema_ok = counts["valid"] + counts["bad_evidence"]
        st.metrics.update(
            answers=len(answers),
            pairs_judged=int(answers["pair"].nunique()),
            statuses=counts,
            valid_rate=counts["valid"] / len(answers) if len(answers) else None,
            evidence_pass_rate=counts["valid"] / schema_ok if schema_ok else None,
            **position_stats(answers),
            requests=result.ledger.as_dict(),
        )
