"""Stage ``reclaif-data``: RecLAIF's instances (distillation, DPO and test prompts from the window splits) and the
teacher's answers to all of them (§5); the teacher's test answers are its row of Table 3."""

from pathlib import Path

from lure.io import write_parquet
from lure.layout import RECLAIF_CATALOGUE, RECLAIF_INSTANCES, REQUEST_CACHE, Prepared
from lure.reclaif.loop import answer_metrics
from lure.reclaif.run import build_data, part, task_truth
from lure.requests import ResponseCache
from lure.stage import run_stage

RELEVANCE = ("hit_at_", "prec_at_", "ndcg_at_")  # the teacher's relevance metrics, whichever the task

if __name__ == "__main__":
    with run_stage("reclaif-data") as st:
        spec = st.spec.reclaif
        prepared = Prepared()
        Path(REQUEST_CACHE).parent.mkdir(parents=True, exist_ok=True)
        with ResponseCache(REQUEST_CACHE) as cache:
            data, catalogue, ledger = build_data(prepared, spec, st.spec.seed, cache)
        Path(RECLAIF_INSTANCES).parent.mkdir(parents=True, exist_ok=True)
        write_parquet(RECLAIF_INSTANCES, data)
        if catalogue is not None:
            write_parquet(RECLAIF_CATALOGUE, catalogue)
        test = part(data, "test")
        truth = task_truth(prepared, spec)
        teacher = answer_metrics(test, list(test["teacher"]), truth, spec)
        st.metrics.update(
            instances={name: int((data["part"] == name).sum()) for name in ("sft", "dpo", "test")},
            teacher_valid_ratio=float(teacher["valid"].mean()),
            **{
                f"teacher_{m}": float(teacher[m].mean())
                for m in teacher.columns
                if m.startswith(("hit", "prec", "ndcg"))
            },
            requests=ledger.as_dict(),
        )
        if truth is not None:
            st.metrics["teacher_true_relevance"] = float(teacher["true_relevance"].mean())
