"""RecLAIF's seed study on the world (issue 16, point 7): does each DPO iteration raise Hit@1 and true relevance over
SFT? The same library calls as the ``reclaif-*`` stages (``lure.reclaif.run``), for several seeds, on the world and the
base model of the current pipeline (``dvc repro llm-base`` first), with the active spec's ``reclaif`` settings.

    PYTHONPATH=. python scripts/reclaif_world.py --seeds 0 1 2 --out reports/reclaif-seeds

A seed redraws the instances (prompts and candidates), the teacher's noise, the samples, the judge's draws and the
DPO data order; the world and the pretrained base stay those of the pipeline's ``seed``. Writes ``per_seed.csv``
(seed, model, metric, value) and ``summary.json``: per model and metric the mean over seeds with a Student-t
interval, and per DPO iteration the paired (same seed) change over SFT with its t interval.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from lure.layout import LLM_BASE, Prepared, reclaif_model_names
from lure.llm.base import load_base, load_trained
from lure.llm.data import title_lookup
from lure.llm.model import set_torch_threads
from lure.reclaif.loop import truth_of
from lure.reclaif.policy import generate_answers
from lure.reclaif.run import (
    answer_frame,
    build_data,
    constraint,
    distill,
    distill_settings,
    dpo_iteration,
    part,
    sampling,
)
from lure.spec.load import load_spec
from lure.stats import t_interval

METRICS = ("valid", "hit_at_1", "ndcg", "true_relevance", "true_relevance_at_1", "diversity", "explainability")


def one_seed(seed: int, out: Path) -> list[dict[str, object]]:
    spec = load_spec(Path("params.yaml"))
    rs = spec.reclaif
    assert rs is not None, "the active spec has no reclaif section"
    prepared = Prepared()
    titles = title_lookup(prepared.read_items(columns=["item_id", "title"]))
    truth = truth_of(prepared)
    data, _, _ = build_data(prepared, rs, seed, None)
    test = part(data, "test")
    work = out / f"seed-{seed}"
    model, tok = load_base(Path(LLM_BASE), spec.model, trainable=True)
    distill(model, tok, data, rs, distill_settings(spec.train, rs.sft_epochs), spec.model.max_length, seed,
            work / "sft", work / "sft.work")  # fmt: skip
    frames = {"teacher": answer_frame(test, list(test["teacher"]), rs, titles, truth, None)}
    for i, name in enumerate(reclaif_model_names(rs.iterations)):
        model, tok = load_trained(work / name, Path(LLM_BASE), spec.model)
        answers, _ = generate_answers(model, tok, list(test["prompt"]), 1, sampling(rs, True), seed,
                                      candidates=constraint(test, rs))  # fmt: skip
        frames[name] = answer_frame(test, [a[0] for a in answers], rs, titles, truth, None)
        print(seed, name, {m: round(float(frames[name][m].mean()), 4) for m in METRICS}, flush=True)
        if i < rs.iterations:
            ref = None
            if rs.reference == "sft" and i > 0:
                ref, _ = load_trained(work / "sft", Path(LLM_BASE), spec.model)
            model.train()
            dpo_iteration(model, ref, tok, data, rs, seed, i + 1, work / f"dpo-{i + 1}", work / "dpo.work", None)
    shutil.rmtree(work, ignore_errors=True)
    return [
        {"seed": seed, "model": name, "metric": m, "value": float(frame[m].mean())}
        for name, frame in frames.items()
        for m in METRICS
    ]


def summarise(rows: pd.DataFrame, confidence: float = 0.95) -> dict[str, object]:
    out: dict[str, object] = {"seeds": sorted(rows["seed"].unique().tolist())}
    wide = rows.pivot_table(index=["seed", "metric"], columns="model", values="value").reset_index()
    for model in [m for m in rows["model"].unique()]:
        out[model] = {
            m: dict(
                zip(
                    ("mean", "low", "high"),
                    t_interval(wide.loc[wide["metric"] == m, model].tolist(), confidence),
                    strict=True,
                )
            )
            for m in METRICS
        }
    for model in [m for m in rows["model"].unique() if m.startswith("dpo")]:
        out[f"{model}_minus_sft"] = {
            m: dict(
                zip(
                    ("mean", "low", "high"),
                    t_interval(
                        (wide.loc[wide["metric"] == m, model] - wide.loc[wide["metric"] == m, "sft"]).tolist(),
                        confidence,
                    ),
                    strict=True,
                )
            )
            for m in METRICS
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("reports/reclaif-seeds"))
    args = ap.parse_args()
    set_torch_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame([r for seed in args.seeds for r in one_seed(seed, args.out)])
    rows.to_csv(args.out / "per_seed.csv", index=False)
    (args.out / "summary.json").write_text(json.dumps(summarise(rows), indent=2))
    print((args.out / "summary.json").read_text())


if __name__ == "__main__":
    main()
