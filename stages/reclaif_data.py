"""Stage ``reclaif-data``: RecLAIF's instances (distillation, DPO and test prompts from the window splits) and the
simulated teacher's answers to all of them (§5); the teacher's test answers are its row of Table 3."""

from pathlib import Path

from lure.io import write_parquet
from lure.layout import RECLAIF_INSTANCES, Prepared
from lure.reclaif.loop import answer_metrics, world_truth
from lure.reclaif.run import build_data, part
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("reclaif-data") as st:
        spec = st.spec.reclaif
        data = build_data(Prepared(), spec, st.spec.seed)
        Path(RECLAIF_INSTANCES).parent.mkdir(parents=True, exist_ok=True)
        write_parquet(RECLAIF_INSTANCES, data)
        test = part(data, "test")
        teacher = answer_metrics(test, list(test["teacher"]), world_truth(Prepared()), spec)
        st.metrics.update(
            instances={name: int((data["part"] == name).sum()) for name in ("sft", "dpo", "test")},
            teacher_valid_ratio=float(teacher["valid"].mean()),
            teacher_hit_at_1=float(teacher["hit_at_1"].mean()),
            teacher_true_relevance=float(teacher["true_relevance"].mean()),
        )
