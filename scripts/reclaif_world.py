"""RecLAIF's loop (Algorithm 1) on the world of the current pipeline, outside DVC: the base model of ``llm-base``,
distillation from the simulated teacher, then ``--iterations`` DPO iterations on pairs the simulated judge prefers;
every recommender (base, teacher, SFT, DPO-Iter1..N) answers the same test prompts.

    python scripts/reclaif_world.py --out reports/reclaif-world --seed 0

Reads data/prepared and data/llm/base (run ``dvc repro llm-base`` first); writes metrics.json and per-answer
parquet files under --out. Settings are ReclaifSpec's defaults (lure/spec/reclaif.py) unless given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from lure.layout import LLM_BASE, Prepared
from lure.llm.base import load_base
from lure.llm.data import load_window_split, title_lookup
from lure.llm.model import set_torch_threads
from lure.reclaif.instances import sequential_instances
from lure.reclaif.judging import pair_counts, preference_pairs
from lure.reclaif.loop import answer_metrics, judge_samples, prompts_of, teacher_texts, world_truth
from lure.reclaif.policy import Sampling, dpo_train, generate_answers, sft_rows
from lure.spec.load import load_spec
from lure.spec.reclaif import ReclaifSpec
from lure.train.finetune import fine_tune


def summary(frame: pd.DataFrame, k: int) -> dict[str, float]:
    cols = ["valid", "hit_at_1", f"ndcg_at_{k}", "true_relevance", "true_relevance_at_1", "explainability"]
    return {("valid_ratio" if c == "valid" else c): round(float(frame[c].mean()), 4) for c in cols}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/reclaif-world"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--reference", choices=["sft", "previous"], default="sft")
    ap.add_argument("--train-prompts", type=int, default=ReclaifSpec().train_prompts)
    ap.add_argument("--sft-epochs", type=float, default=ReclaifSpec().sft_epochs)
    ap.add_argument("--decoding", choices=["free", "candidates"], default="candidates")
    args = ap.parse_args()
    set_torch_threads()
    spec = load_spec(Path("params.yaml"))
    rs = ReclaifSpec(
        iterations=args.iterations,
        reference=args.reference,
        train_prompts=args.train_prompts,
        sft_epochs=args.sft_epochs,
    )
    prepared = Prepared()
    truth = world_truth(prepared)
    titles = title_lookup(prepared.read_items(columns=["item_id", "title"]))
    train_w = load_window_split(prepared, "train")
    test_w = load_window_split(prepared, "test")
    seed = args.seed
    train = sequential_instances(
        train_w, titles, "train", rs.history, rs.candidates, seed, rs.train_prompts + rs.dpo_prompts
    )
    sft_part, dpo_part = train.iloc[: rs.train_prompts], train.iloc[rs.train_prompts :].reset_index(drop=True)
    test = sequential_instances(test_w, titles, "test", rs.history, rs.candidates, seed, rs.eval_prompts)
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    results: dict[str, dict[str, float]] = {}

    t0 = time.perf_counter()
    sft_prompts, test_prompts, dpo_prompts = prompts_of(sft_part, rs), prompts_of(test, rs), prompts_of(dpo_part, rs)
    teacher_train = teacher_texts(sft_part, sft_prompts, truth, rs, seed)
    teacher_test = teacher_texts(test, test_prompts, truth, rs, seed + 1)
    results["teacher"] = summary(answer_metrics(test, teacher_test, truth, rs), rs.k)
    timings["teacher_s"] = time.perf_counter() - t0

    constrained = args.decoding == "candidates"
    test_cands = list(test["candidate_texts"]) if constrained else None
    dpo_cands = list(dpo_part["candidate_texts"]) if constrained else None
    greedy = Sampling(0.0, 1.0, rs.max_new_tokens, rs.generation_batch)
    sampled = Sampling(rs.temperature, rs.top_p, rs.max_new_tokens, rs.generation_batch)

    def evaluate(name: str, model: object, tok: object) -> None:
        t = time.perf_counter()
        answers, stats = generate_answers(model, tok, test_prompts, 1, greedy, seed, candidates=test_cands)
        frame = answer_metrics(test, [a[0] for a in answers], truth, rs)
        frame.assign(answer=[a[0] for a in answers]).drop(columns=["ranked"]).to_parquet(args.out / f"{name}.parquet")
        results[name] = summary(frame, rs.k) | {"answers_per_s": stats["answers_per_s"]}
        timings[f"eval_{name}_s"] = time.perf_counter() - t
        print(name, results[name], flush=True)

    model, tok = load_base(Path(LLM_BASE), spec.model, trainable=True)
    evaluate("base", model, tok)
    t = time.perf_counter()
    from datasets import Dataset

    rows = sft_rows(sft_prompts, teacher_train, tok, spec.model.max_length)
    train_spec = spec.train.model_copy(update={"epochs": rs.sft_epochs, "select_best": False})
    sft_dir = args.out / "models" / "sft"
    fit = fine_tune(model, tok, Dataset.from_list(rows), train_spec, seed, sft_dir, args.out / "work" / "sft")
    timings["sft_s"] = time.perf_counter() - t
    results["sft_train"] = {"train_loss": fit["metrics"]["train_loss"], "steps": fit["metrics"]["steps"]}
    from lure.llm.model import load_causal_lm

    model, tok = load_causal_lm(str(sft_dir))
    evaluate("sft", model, tok)
    ref = None
    if rs.reference == "sft":
        ref, _ = load_causal_lm(str(sft_dir))
    for it in range(1, rs.iterations + 1):
        t = time.perf_counter()
        samples, _ = generate_answers(model, tok, dpo_prompts, 2, sampled, seed + it, candidates=dpo_cands)
        timings[f"sample_{it}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        judged = judge_samples(dpo_part, dpo_prompts, samples, truth, rs, seed, it)
        pairs = preference_pairs(judged)
        timings[f"judge_{it}_s"] = time.perf_counter() - t
        counts = pair_counts(judged["status"]) | {"identical": int(judged["identical"].sum())}
        t = time.perf_counter()
        model.train()
        fit = dpo_train(
            model, ref, tok, pairs, rs.dpo, seed, args.out / "models" / f"dpo-{it}", args.out / "work" / f"dpo-{it}"
        )
        timings[f"dpo_{it}_s"] = time.perf_counter() - t
        results[f"dpo_{it}_train"] = counts | {
            k: fit[k] for k in ("steps", "train_loss", "reward_accuracy", "step_seconds")
        }
        print(f"dpo-{it}", results[f"dpo_{it}_train"], flush=True)
        evaluate(f"dpo_{it}", model, tok)
    (args.out / "metrics.json").write_text(json.dumps({"results": results, "timings_s": timings}, indent=2))
    print(json.dumps(timings, indent=1))


if __name__ == "__main__":
    main()
