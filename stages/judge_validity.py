"""Stage ``judge-validity``: the judge's agreement with real users on within-user pairs of differently rated items,
missing-at-random ratings against self-selected ones (lure.judge.validity; Coat)."""

from pathlib import Path

import numpy as np
import pandas as pd

from lure.io import write_parquet
from lure.judge.labels import pair_labels, status_counts
from lure.judge.run import run_judge
from lure.judge.validity import LOGS, agreement, cap, gap, history_without, rating_pairs, self_selected_ratings
from lure.layout import JUDGE_VALIDITY_DIR, REQUEST_CACHE, Prepared
from lure.requests import ResponseCache
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("judge-validity") as st:
        spec, seed = st.spec.judge, st.spec.seed
        prepared = Prepared()
        mar = prepared.read_mar(columns=["user_id", "item_id", "rating"])
        logs = {"mar": mar, "self_selected": self_selected_ratings(prepared, st.spec.data.source)}
        parts = []
        for name in LOGS:
            drawn = rating_pairs(logs[name], spec.validity.per_user, seed, f"validity.pairs.{name}")
            parts.append(cap(drawn, spec.validity.max_pairs, seed, f"validity.cap.{name}").assign(log=name))
        pairs = pd.concat(parts, ignore_index=True)
        history = history_without(prepared.read_split("holdout", "train"), pairs)
        Path(REQUEST_CACHE).parent.mkdir(parents=True, exist_ok=True)
        with ResponseCache(REQUEST_CACHE) as cache:
            # every validity pair is judged: validity.max_pairs caps each log, judge.max_pairs is the main pairs' cap
            answers, result = run_judge(pairs, prepared.read_items(), history, spec, seed, cache, judge_all=True)
        y, v, _ = pair_labels(answers, len(pairs), spec.invalid_policy, spec.evidence_check, spec.aggregate)
        write_parquet(f"{JUDGE_VALIDITY_DIR}/pairs.parquet", pairs.assign(y=y, weight=v))
        write_parquet(f"{JUDGE_VALIDITY_DIR}/answers.parquet", answers)
        if (answers.groupby("pair").size().reindex(range(len(pairs))).isna()).any():
            raise RuntimeError("a validity pair has no answer")
        report = {}
        for name in LOGS:
            rows = np.flatnonzero(pairs["log"].to_numpy() == name)
            users = pairs["user_id"].to_numpy()[rows]
            report[name] = agreement(
                users, y[rows], v[rows], st.spec.eval.bootstrap, st.spec.eval.confidence, seed, name
            )
        st.metrics.update(
            **report,
            gap_self_selected_minus_mar=gap(report),
            statuses=status_counts(answers["status"]),
            requests=result.ledger.as_dict(),
        )
