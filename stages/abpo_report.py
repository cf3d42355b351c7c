"""Stage ``abpo-report``: every compared method after its last round in one table (the ablation switches beside
the metrics, the SFT recommender as round 0), the per-round chart of true CTR, accuracy and exposure bias, and
whether the off-policy estimates from the prior policy's log rank the methods as the world's true CTR does
(docs/abpo.md)."""

from pathlib import Path

from lure.abpo.report import ablation_table, ope_agreement, round_metric_names
from lure.data.sources.base import dataset_label
from lure.io import write_text
from lure.layout import ABPO_REPORT_DIR, plots_dir
from lure.plots.abpo import rounds_frame, write_rounds_plot
from lure.stage import run_stage

if __name__ == "__main__":
    with run_stage("abpo-report") as st:
        cfg = st.spec.abpo
        deps = st.dep_metrics()
        variants = cfg.variants
        round_0 = deps["banditlog"]["round_0"]
        rounds = {n: deps[f"abpo-{n}"]["rounds"] for n in variants}
        table = ablation_table(round_0, rounds, {n: v.model_dump() for n, v in variants.items()}, cfg.ks)
        write_text(f"{ABPO_REPORT_DIR}/ablation.csv", table.to_csv(index=False))
        write_text(f"{ABPO_REPORT_DIR}/ablation.md", table.to_markdown(index=False, floatfmt=".4f") + "\n")
        write_rounds_plot(
            rounds_frame(round_0, rounds, round_metric_names(round_0, cfg.ks)), Path(plots_dir("abpo-report"))
        )
        label = dataset_label(st.spec.data.source)
        final = {n: {k: v for k, v in r[-1].items() if not isinstance(v, dict)} for n, r in rounds.items()}
        st.metrics[label] = {"round_0": round_0, "methods": final, "rounds": cfg.rounds}
        st.metrics["ope"] = ope_agreement(rounds)
