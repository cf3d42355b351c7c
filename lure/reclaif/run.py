"""RecLAIF's stages as library calls (the ``stages/reclaif_*.py`` modules only read and write): the data (instances
and the teacher's answers), distillation (§5), one DPO iteration of Algorithm 1, and the evaluation of every
recommender's answers on the same test prompts (Table 3's metrics, Figure 3's series)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from lure.layout import RECLAIF_INSTANCES, Prepared
from lure.llm.data import load_window_split, title_lookup
from lure.reclaif.answer import read_answer
from lure.reclaif.instances import sequential_instances
from lure.reclaif.judging import pair_counts, preference_pairs
from lure.reclaif.loop import answer_metrics, explainability, judge_samples, prompts_of, teacher_texts, truth_of
from lure.reclaif.policy import Sampling, dpo_train, generate_answers, sft_rows
from lure.reclaif.simulated import WorldTruth
from lure.requests import ResponseCache
from lure.requests.ledger import Ledger
from lure.spec.reclaif import DISTILL_TRAIN_FIELDS, ReclaifSpec
from lure.stats import bootstrap_ci, paired_bootstrap

#: The parts of the instance frame: distillation prompts, DPO prompts (sampled anew every iteration), test prompts.
PARTS = ("sft", "dpo", "test")


def figure_metrics(k: int, with_truth: bool, task: str = "sequential") -> tuple[str, ...]:
    """Figure 3's panels, in the paper's order (its ValidRatio, Hit@1, NDCG@3, Diversity, Explainability; Prec@k in
    place of Hit@1 for retrieval) plus, on the world, the true relevance."""
    relevance = (f"prec_at_{k}",) if task == "retrieval" else ("hit_at_1",)
    paper = ("valid_ratio", *relevance, f"ndcg_at_{k}", "diversity", "explainability")
    return (*paper, "true_relevance") if with_truth else paper


#: Per-answer metrics summarised per recommender (means; ``valid`` is ValidRatio).
SUMMARY = (
    "valid",
    "hit_at_1",
    "prec",
    "ndcg",
    "true_relevance",
    "true_relevance_at_1",
    "explainability",
    "diversity",
)


def build_data(
    prepared: Prepared, spec: ReclaifSpec, seed: int, cache: ResponseCache | None
) -> tuple[pd.DataFrame, pd.DataFrame | None, Ledger]:
    """Instances of the three parts with their prompts and the teacher's answers (``teacher``: the SFT targets;
    ``teacher_raw``: as the teacher wrote them), the retrieval catalogue (None for a sequential task), and the
    teacher's request ledger."""
    catalogue = None
    if spec.task == "retrieval":
        train, test, catalogue = retrieval_instances(spec, seed)
    else:
        titles = title_lookup(prepared.read_items(columns=["item_id", "title"]))
        train = sequential_instances(
            load_window_split(prepared, "train"),
            titles,
            "train",
            spec.history,
            spec.candidates,
            seed,
            spec.train_prompts + spec.dpo_prompts,
        )
        test = sequential_instances(
            load_window_split(prepared, "test"), titles, "test", spec.history, spec.candidates, seed, spec.eval_prompts
        )
    part = np.where(np.arange(len(train)) < spec.train_prompts, "sft", "dpo")
    frame = pd.concat([train.assign(part=part), test.assign(part="test")], ignore_index=True)
    frame["prompt"] = prompts_of(frame, spec)
    frame["teacher"], frame["teacher_raw"], ledger = teacher_texts(
        frame, list(frame["prompt"]), task_truth(prepared, spec), spec, seed, cache
    )
    return frame, catalogue, ledger


def retrieval_instances(spec: ReclaifSpec, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """ESCI's training and test queries (the first ``train_prompts + dpo_prompts`` and ``eval_prompts`` of each
    split's seeded order) and the catalogue of their candidates (:func:`lure.reclaif.esci.esci_instances`)."""
    from lure.reclaif.esci import esci_instances, read_esci

    assert spec.esci_dir is not None  # the spec's validator requires it for task retrieval
    examples, products = read_esci(Path(spec.esci_dir))
    instances, catalogue, _ = esci_instances(examples, products, seed)
    train = instances[instances["split"] == "train"].iloc[: spec.train_prompts + spec.dpo_prompts]
    test = instances[instances["split"] == "test"].iloc[: spec.eval_prompts]
    return train.reset_index(drop=True), test.reset_index(drop=True), catalogue


def task_truth(prepared: Prepared, spec: ReclaifSpec) -> WorldTruth | None:
    """The world's truth for a sequential task on the world; None otherwise (real data, or ESCI's items, which are
    not the world's)."""
    return truth_of(prepared) if spec.task == "sequential" else None


def part(data: pd.DataFrame, name: str) -> pd.DataFrame:
    """One part of the instance frame, re-indexed."""
    return data[data["part"] == name].reset_index(drop=True)


def sampling(spec: ReclaifSpec, greedy: bool) -> Sampling:
    """Eq. 4's sampling (or greedy decoding for evaluation)."""
    if greedy:
        return Sampling(0.0, 1.0, spec.max_new_tokens, spec.generation_batch)
    return Sampling(spec.temperature, spec.top_p, spec.max_new_tokens, spec.generation_batch)


def constraint(instances: pd.DataFrame, spec: ReclaifSpec) -> list[list[str]] | None:
    """The candidate texts of each prompt when names are constrained (``reclaif.decoding: candidates``)."""
    return [list(c) for c in instances["candidate_texts"]] if spec.decoding == "candidates" else None


def distill_settings(train: Any, epochs: float) -> SimpleNamespace:
    """The optimiser settings of distillation: the ``train`` section's, with ``epochs`` and no model selection."""
    return SimpleNamespace(epochs=epochs, select_best=False, **{f: getattr(train, f) for f in DISTILL_TRAIN_FIELDS})


def distill(
    model: Any,
    tokenizer: Any,
    data: pd.DataFrame,
    spec: ReclaifSpec,
    train: Any,
    max_length: int,
    seed: int,
    out_dir: Path,
    work_dir: Path,
) -> dict[str, Any]:
    """SFT (Eq. 1) on the teacher's valid answers to the distillation prompts; its invalid answers are dropped and
    counted (a teacher's mistake is not ground truth). ``train`` is the ``train`` section with ``epochs`` replaced
    by ``reclaif.sft_epochs``."""
    from datasets import Dataset

    from lure.train.finetune import fine_tune

    sft = part(data, "sft")
    valid = np.array(
        [read_answer(t, c, spec.k).valid for t, c in zip(sft["teacher"], sft["candidate_texts"], strict=True)],
        dtype=bool,
    )
    if not valid.any():
        raise ValueError(
            f"distillation: none of the teacher's {len(sft)} answers is valid (k={spec.k} distinct candidates); "
            f"see the 'teacher_raw' column of {RECLAIF_INSTANCES} and docs/reclaif.md (a model too small to follow "
            "the prompt writes no valid answer)"
        )
    rows = sft_rows(list(sft.loc[valid, "prompt"]), list(sft.loc[valid, "teacher"]), tokenizer, max_length)
    fit = fine_tune(model, tokenizer, Dataset.from_list(rows), train, seed, out_dir, work_dir)
    return fit["metrics"] | {"teacher_answers": len(sft), "teacher_invalid": int((~valid).sum())}


def dpo_iteration(
    model: Any,
    ref_model: Any | None,
    tokenizer: Any,
    data: pd.DataFrame,
    spec: ReclaifSpec,
    seed: int,
    iteration: int,
    out_dir: Path,
    work_dir: Path,
    cache: ResponseCache | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Algorithm 1, one iteration: two samples per DPO prompt (Eq. 4), the judge's verdicts (Eq. 5), DPO (Eq. 2).
    Returns the judged pairs and the iteration's metrics (pair counts, DPO loss, throughput)."""
    import time

    from lure.rng import int_seed

    dpo = part(data, "dpo")
    truth = task_truth(Prepared(), spec)
    samples, gen = generate_answers(
        model,
        tokenizer,
        list(dpo["prompt"]),
        2,
        sampling(spec, greedy=False),
        int_seed(seed, f"reclaif.sample.{iteration}"),
        candidates=constraint(dpo, spec),
    )
    t0 = time.perf_counter()
    judged, ledger = judge_samples(dpo, list(dpo["prompt"]), samples, truth, spec, seed, iteration, cache)
    judge_s = time.perf_counter() - t0
    pairs = preference_pairs(judged)
    counts = pair_counts(judged["status"]) | {"identical": int(judged["identical"].sum())}
    if pairs.empty:
        raise ValueError(f"DPO iteration {iteration}: the judge kept no pair ({counts}); nothing to train on")
    model.train()
    fit = dpo_train(model, ref_model, tokenizer, pairs, spec.dpo, seed, out_dir, work_dir)
    fit.pop("log_history")
    metrics = {
        "pairs": counts,
        "sampling": gen,
        "judged_pairs_per_min": round(len(judged) / max(judge_s, 1e-9) * 60, 1),
        "dpo": fit,
        "requests": ledger.as_dict(),
    }
    return judged, metrics


def answer_frame(
    instances: pd.DataFrame,
    answers: Sequence[str],
    spec: ReclaifSpec,
    item_texts: Mapping[int, str] | None,
    truth: WorldTruth | None,
    cache: ResponseCache | None,
    rate: bool = True,
) -> pd.DataFrame:
    """Per-answer metrics (:func:`lure.reclaif.loop.answer_metrics`), the explainability score (§5, from the judge)
    and ``diversity``: the mean pairwise cosine distance of the recommended items' text embeddings (RecLAIF §5; NaN
    for fewer than 2 items). ``truth`` is the world's (true relevance, the simulated judge) or None; ``rate`` False
    leaves explainability NaN (an answer without reasons: the paper's '-')."""
    frame = answer_metrics(instances, answers, truth, spec).rename(
        columns={f"ndcg_at_{spec.k}": "ndcg", f"prec_at_{spec.k}": "prec"}
    )
    matched = [read_answer(a, c, spec.k) for a, c in zip(answers, instances["candidate_texts"], strict=True)]
    frame["explainability"] = (
        explainability(instances, answers, matched, truth, spec, cache) if rate else np.full(len(frame), np.nan)
    )
    if item_texts is not None:
        from lure.metrics.diversity import item_diversity

        frame["diversity"] = item_diversity(item_texts, [list(r) for r in frame["ranked"]])
    else:
        frame["diversity"] = np.nan
    frame["answer"] = list(answers)
    frame["ranked"] = [list(map(int, r)) for r in frame["ranked"]]
    return frame


def summarise(
    frames: Mapping[str, pd.DataFrame], k: int, resamples: int, confidence: float, seed: int
) -> dict[str, Any]:
    """Per recommender: each metric's mean with a bootstrap CI over test prompts; per DPO iteration: its paired
    change over SFT (the same prompts) with a CI. Keys use the paper's names (valid_ratio, hit_at_1, ndcg_at_k)."""
    names = {"valid": "valid_ratio", "ndcg": f"ndcg_at_{k}", "prec": f"prec_at_{k}"}
    out: dict[str, Any] = {}
    for model, frame in frames.items():
        entry: dict[str, Any] = {}
        for col in (c for c in SUMMARY if c in frame):
            values = frame[col].to_numpy(dtype=np.float64)
            values = values[np.isfinite(values)]
            lo, hi = bootstrap_ci(values, resamples, confidence, seed)
            entry[names.get(col, col)] = {
                "mean": float(values.mean()) if values.size else None,
                "ci_low": lo,
                "ci_high": hi,
            }
        out[model] = entry
    if "sft" in frames:
        for model, frame in frames.items():
            if not model.startswith("dpo"):
                continue
            out[model]["change_over_sft"] = {
                names.get(col, col): paired_bootstrap(
                    frame[col].to_numpy(), frames["sft"][col].to_numpy(), resamples, confidence, seed
                )
                for col in ("valid", "hit_at_1", "prec", "ndcg", "true_relevance", "true_relevance_at_1")
                if col in frame
            }
    return out
