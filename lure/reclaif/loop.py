"""Algorithm 1's steps on a prepared dataset with the world's simulated roles: instances, the teacher's answers
(through the request layer), two sampled answers judged per prompt, and the metrics of a recommender's answers.

The teacher and the judge are request-layer backends (``lure.requests.backends.simulated``): their answers are
computed up front from the truth and served by prompt, so the same ``run_requests`` path -- concurrency, progress,
statuses, ledger -- carries a real model's answers when a backend of the judge issue stands in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lure.layout import Prepared
from lure.metrics.ranking import hit_at_k, ndcg_at_k, target_ranks
from lure.reclaif.answer import read_answer
from lure.reclaif.judging import parse_explain_score, parse_verdict
from lure.reclaif.prompts import judge_prompt, recommender_prompt
from lure.reclaif.simulated import WorldTruth, explain_score, judge_reply, option_scores, teacher_answer
from lure.requests import ChatRequest, Message, run_requests
from lure.requests.backends.simulated import SimulatedBackend
from lure.rng import generator
from lure.spec.reclaif import ReclaifSpec


def world_truth(prepared: Prepared) -> WorldTruth:
    """r(u, i) and the item genres of a prepared world (an error on a dataset without truth)."""
    relevance = prepared.read_relevance()
    if relevance is None:
        raise ValueError(f"{prepared}: no truth/relevance.npy; the simulated teacher and judge need the world")
    items = prepared.read_items(columns=["item_id", "genres"])
    genres = {
        int(i): tuple(g for g in str(s).split("|") if g) for i, s in zip(items["item_id"], items["genres"], strict=True)
    }
    return WorldTruth(np.asarray(relevance), genres)


def prompts_of(instances: pd.DataFrame, spec: ReclaifSpec) -> list[str]:
    """The recommender prompt of every instance (Eq. 3's x)."""
    return [
        recommender_prompt(spec.template, c, t, spec.k)
        for c, t in zip(instances["context"], instances["candidate_texts"], strict=True)
    ]


def ask(answers: dict[str, str], prompts: Sequence[str], label: str, description: str) -> list[str]:
    """The simulated role's answers to ``prompts`` through the request layer (``run_requests``)."""
    backend = SimulatedBackend(lambda request: answers[request.messages[-1].content], model=label)
    requests = [ChatRequest(messages=(Message(role="user", content=p),), max_tokens=1024) for p in prompts]
    result = run_requests(backend, requests, description=description)
    return [r.text or "" for r in result.responses]


def teacher_texts(
    instances: pd.DataFrame, prompts: Sequence[str], truth: WorldTruth, spec: ReclaifSpec, seed: int
) -> list[str]:
    """The simulated teacher's answer to every prompt (§5: its answers are the SFT targets)."""
    rng = generator(seed, "reclaif.teacher")
    t = spec.teacher
    answers = {
        p: teacher_answer(u, h, c, ct, truth, spec.k, t.noise, t.preferences, t.style, rng)
        for p, u, h, c, ct in zip(
            prompts,
            instances["user_id"],
            instances["history"],
            instances["candidates"],
            instances["candidate_texts"],
            strict=True,
        )
    }
    return ask(answers, prompts, f"reclaif-teacher-{t.noise}-{t.preferences}-{t.style}", "teacher")


def judge_samples(
    instances: pd.DataFrame,
    prompts: Sequence[str],
    samples: Sequence[Sequence[str]],
    truth: WorldTruth,
    spec: ReclaifSpec,
    seed: int,
    iteration: int,
) -> pd.DataFrame:
    """Judge the two samples of each prompt (Eq. 5) in a random A/B order; one row per prompt with the verdict."""
    j = spec.judge
    weights = {
        "relevance": j.relevance_weight,
        "diversity": j.diversity_weight,
        "explainability": j.explainability_weight,
    }
    rng = generator(seed, f"reclaif.judge.{iteration}")
    first = rng.integers(0, 2, size=len(prompts))
    uniforms = rng.random((len(prompts), 4))
    texts, replies = [], {}
    for n, row in enumerate(instances.itertuples(index=False)):
        a, b = (samples[n][0], samples[n][1]) if first[n] == 0 else (samples[n][1], samples[n][0])
        scores = [
            option_scores(
                read_answer(x, row.candidate_texts, spec.k), row.user_id, row.history, row.candidates, truth, spec.k
            )
            for x in (a, b)
        ]
        text = judge_prompt(
            spec.judge_template,
            spec.items_noun,
            row.context,
            row.candidate_texts,
            a,
            b,
            row.candidate_texts[list(row.candidates).index(row.target)],
        )
        replies[text] = judge_reply(
            scores[0], scores[1], weights, j.accuracy, j.position_bias, j.invalid_rate, uniforms[n]
        )
        texts.append(text)
    answered = ask(replies, texts, f"reclaif-judge-{j.model_dump_json()}", f"judge {iteration}")
    verdicts = [parse_verdict(t) for t in answered]
    return pd.DataFrame(
        {
            "instance_id": instances["instance_id"].to_numpy(),
            "prompt": list(prompts),
            "sample_0": [s[0] for s in samples],
            "sample_1": [s[1] for s in samples],
            "first": first,
            "status": [v.status for v in verdicts],
            "chosen": [v.chosen for v in verdicts],
            "identical": [s[0].strip() == s[1].strip() for s in samples],
        }
    )


def answer_metrics(
    instances: pd.DataFrame, answers: Sequence[str], truth: WorldTruth | None, spec: ReclaifSpec
) -> pd.DataFrame:
    """Per instance: valid, why not, Hit@1, NDCG@k of the next item (RecLAIF §5, with k = the answer's length), the
    mean true relevance of the ranked items and the explainability score (world only).

    An invalid answer scores 0 on Hit@1 and NDCG (strict: a list the user cannot be shown has no rank), and
    ``ValidRatio`` is the mean of ``valid``."""
    rows = []
    for row, text in zip(instances.itertuples(index=False), answers, strict=True):
        m = read_answer(text, row.candidate_texts, spec.k)
        ranked = [int(row.candidates[j]) for j in m.ranked()] if m.valid else []
        record = {"instance_id": row.instance_id, "valid": m.valid, "invalid": m.invalid or "", "ranked": ranked}
        if truth is not None:
            s = option_scores(m, row.user_id, row.history, row.candidates, truth, spec.k)
            rel = truth.relevance[int(row.user_id), ranked] if ranked else np.array([0.0])
            record["true_relevance"] = float(np.mean(rel))
            record["true_relevance_at_1"] = float(rel[0])
            record["explainability"] = parse_explain_score(explain_score(m, s))
        rows.append(record)
    frame = pd.DataFrame(rows)
    padded = np.full((len(frame), spec.k), -1, dtype=np.int64)
    for n, r in enumerate(frame["ranked"]):
        padded[n, : len(r)] = r[: spec.k]
    ranks = target_ranks(padded, instances["target"].to_numpy())
    frame["hit_at_1"] = hit_at_k(ranks, 1)
    frame[f"ndcg_at_{spec.k}"] = ndcg_at_k(ranks, spec.k)
    return frame
