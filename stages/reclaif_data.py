"""Stage ``reclaif-data``: RecLAIF's instances (distillation, DPO and test prompts from the window splits) and the
teacher's answers to all of them (§5); the teacher's test answers are its row of Table 3."""

from pathlib import Path

from lure.io import write_parquet
from lure.layout import RECLAIF_INSTANCES, REQUEST_CACHE, Prepared
from lure.reclaif.loop import answer_metrics, truth_of
from lure.reclaif.run import build_data, part
from lure.requests import ResponseCache
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("reclaif-data") as st:
        spec = st.spec.reclaif
        prepared = Prepared()
        Path(REQUEST_CACHE).parent.mkdir(parents=True, exist_ok=True)
        with ResponseCache(REQUEST_CACHE) as cache:
            data, ledger = build_data(prepared, spec, st.spec.seed, cache)
        Path(RECLAIF_INSTANCES).parent.mkdir(parents=True, exist_ok=True)
        write_parquet(RECLAIF_INSTANCES, data)
        test = part(data, "test")
        truth = truth_of(prepared)
        teacher = answer_metrics(test, list(test["teacher"]), truth, spec)
        st.metrics.update(
            instances={name: int((data["part"] == name).sum()) for name in ("sft", "dpo", "test")},
            teacher_valid_ratio=float(teacher["valid"].mean()),
            teacher_hit_at_1=float(teacher["hit_at_1"].mean()),
            requests=ledger.as_dict(),
        )
        if truth is not None:
            st.metrics["teacher_true_relevance"] = float(teacher["true_relevance"].mean())
