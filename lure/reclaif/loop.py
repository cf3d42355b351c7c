"""Algorithm 1's steps on a prepared dataset: instances, the teacher's answers, two sampled answers judged per
prompt, and the metrics of a recommender's answers.

The teacher and the judge are request-layer backends either way: a model (``openai`` or ``transformers``, built by
``lure.requests.build_backend`` from the spec) or, on the world, the simulated roles (``lure.reclaif.simulated``),
whose answers are computed up front from the truth and served by prompt through ``SimulatedBackend``. So one
``run_requests`` path -- concurrency, progress, statuses, ledger -- carries both, and a model's answers are cached
by content (a re-run sends nothing). Model roles answer greedily (temperature 0): the teacher's answer is the SFT
target and the judge's verdict a label, neither a sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lure.layout import Prepared
from lure.metrics.ranking import hit_at_k, ndcg_at_k, target_ranks
from lure.reclaif.answer import MatchedAnswer, read_answer, rewrite_answer
from lure.reclaif.judging import parse_explain_score, parse_verdict
from lure.reclaif.prompts import explain_prompt, judge_prompt, recommender_prompt
from lure.reclaif.simulated import WorldTruth, explain_score, judge_reply, option_scores, teacher_answer
from lure.requests import ChatRequest, Message, ResponseCache, build_backend, run_requests
from lure.requests.backends.base import Backend
from lure.requests.backends.simulated import SimulatedBackend
from lure.requests.ledger import Ledger
from lure.requests.models import Response
from lure.rng import generator
from lure.spec.reclaif import ReclaifSpec, is_simulated


def truth_of(prepared: Prepared) -> WorldTruth | None:
    """r(u, i) and the item genres of a prepared world; None for a real dataset (no truth/relevance.npy)."""
    relevance = prepared.read_relevance()
    if relevance is None:
        return None
    items = prepared.read_items(columns=["item_id", "genres"])
    genres = {
        int(i): tuple(g for g in str(s).split("|") if g) for i, s in zip(items["item_id"], items["genres"], strict=True)
    }
    return WorldTruth(np.asarray(relevance), genres)


def prompts_of(instances: pd.DataFrame, spec: ReclaifSpec, template: str | None = None) -> list[str]:
    """The recommender prompt of every instance (Eq. 3's x), from ``template`` (default: ``reclaif.template``)."""
    return [
        recommender_prompt(template or spec.template, c, t, spec.k)
        for c, t in zip(instances["context"], instances["candidate_texts"], strict=True)
    ]


def ask(
    backend: Backend,
    prompts: Sequence[str],
    spec: ReclaifSpec,
    cache: ResponseCache | None,
    description: str,
    accept: Callable[[ChatRequest, Response], bool] | None = None,
) -> tuple[list[str], Ledger]:
    """The answers of ``backend`` to ``prompts`` (greedy, ``request_max_tokens``) through the request layer; a
    failed request is an empty answer (invalid downstream, and counted there)."""
    requests = [
        ChatRequest(messages=(Message(role="user", content=p),), max_tokens=spec.request_max_tokens) for p in prompts
    ]
    result = run_requests(backend, requests, cache, spec.concurrency, description, accept=accept)
    return [r.text or "" for r in result.responses], result.ledger


def served(answers: Mapping[str, str], label: str) -> SimulatedBackend:
    """A simulated role's answers, computed up front, served by prompt (the cache key's model is ``label``)."""
    return SimulatedBackend(lambda request: answers[request.messages[-1].content], model=label)


def teacher_texts(
    instances: pd.DataFrame,
    prompts: Sequence[str],
    truth: WorldTruth | None,
    spec: ReclaifSpec,
    seed: int,
    cache: ResponseCache | None,
) -> tuple[list[str], list[str], Ledger]:
    """The teacher's answer to every prompt (§5: its valid answers are the SFT targets): the SFT target texts, the
    teacher's own texts, and the request ledger. The two differ only for a model teacher asked with its own
    ``teacher_template``: its valid answers are rewritten in ``answer_style`` (invalid ones are kept as written)."""
    t = spec.teacher
    if not is_simulated(t):
        asked = prompts if spec.teacher_template is None else prompts_of(instances, spec, spec.teacher_template)
        raw, ledger = ask(build_backend(t), asked, spec, cache, "teacher")
        if spec.teacher_template is None:
            return raw, raw, ledger
        targets = []
        for text, cands in zip(raw, instances["candidate_texts"], strict=True):
            m = read_answer(text, cands, spec.k)
            targets.append(rewrite_answer(m, cands, spec.answer_style) if m.valid else text)
        return targets, raw, ledger
    if truth is None:
        raise ValueError("reclaif.teacher simulated answers from the world's truth; this dataset has none")
    rng = generator(seed, "reclaif.teacher")
    answers = {
        p: teacher_answer(u, h, c, ct, truth, spec.k, t.noise, t.preferences, spec.answer_style, rng)
        for p, u, h, c, ct in zip(
            prompts,
            instances["user_id"],
            instances["history"],
            instances["candidates"],
            instances["candidate_texts"],
            strict=True,
        )
    }
    backend = served(answers, f"reclaif-teacher-{t.noise}-{t.preferences}-{spec.answer_style}")
    texts, ledger = ask(backend, prompts, spec, None, "teacher")
    return texts, texts, ledger


def judge_texts(instances: pd.DataFrame, options: Sequence[tuple[str, str]], spec: ReclaifSpec) -> list[str]:
    """The judge's prompt of each instance (Eq. 5) with its two options as A and B and the next item as label."""
    return [
        judge_prompt(
            spec.judge_template,
            spec.items_noun,
            row.context,
            row.candidate_texts,
            a,
            b,
            label_of(row),
        )
        for row, (a, b) in zip(instances.itertuples(index=False), options, strict=True)
    ]


def label_of(row: Any) -> str:
    """The judge's "Next Preferred" (Eq. 5's label): the instance's relevant candidates in the order shown -- the
    next item of a sequential instance (``relevant`` = [target]), the Exact products of a retrieval one."""
    relevant = {int(i) for i in row.relevant}
    return ", ".join(t for t, c in zip(row.candidate_texts, row.candidates, strict=True) if int(c) in relevant)


def _has_verdict(request: ChatRequest, response: Response) -> bool:
    """Cache a judge's reply only when it decides (a cut or rambling reply is asked again next run)."""
    return parse_verdict(response.text or "").status != "invalid"


def judge_samples(
    instances: pd.DataFrame,
    prompts: Sequence[str],
    samples: Sequence[Sequence[str]],
    truth: WorldTruth | None,
    spec: ReclaifSpec,
    seed: int,
    iteration: int,
    cache: ResponseCache | None,
) -> tuple[pd.DataFrame, Ledger]:
    """Judge the two samples of each prompt (Eq. 5) in a random A/B order; one row per prompt with the verdict."""
    rng = generator(seed, f"reclaif.judge.{iteration}")
    first = rng.integers(0, 2, size=len(prompts))
    uniforms = rng.random((len(prompts), 4))
    options = [(s[0], s[1]) if f == 0 else (s[1], s[0]) for s, f in zip(samples, first, strict=True)]
    texts = judge_texts(instances, options, spec)
    j = spec.judge
    if is_simulated(j):
        if truth is None:
            raise ValueError("reclaif.judge simulated answers from the world's truth; this dataset has none")
        weights = {
            "relevance": j.relevance_weight,
            "diversity": j.diversity_weight,
            "explainability": j.explainability_weight,
        }
        replies = {}
        for n, row in enumerate(instances.itertuples(index=False)):
            scores = [
                option_scores(
                    read_answer(x, row.candidate_texts, spec.k), row.user_id, row.history, row.candidates, truth, spec.k
                )
                for x in options[n]
            ]
            replies[texts[n]] = judge_reply(
                scores[0], scores[1], weights, j.accuracy, j.position_bias, j.invalid_rate, uniforms[n]
            )
        answered, ledger = ask(served(replies, f"reclaif-judge-{j.model_dump_json()}"), texts, spec, None, "judge")
    else:
        answered, ledger = ask(build_backend(j), texts, spec, cache, f"judge {iteration}", accept=_has_verdict)
    verdicts = [parse_verdict(t) for t in answered]
    frame = pd.DataFrame(
        {
            "instance_id": instances["instance_id"].to_numpy(),
            "prompt": list(prompts),
            "sample_0": [s[0] for s in samples],
            "sample_1": [s[1] for s in samples],
            "first": first,
            "reply": answered,
            "status": [v.status for v in verdicts],
            "chosen": [v.chosen for v in verdicts],
            "identical": [s[0].strip() == s[1].strip() for s in samples],
        }
    )
    return frame, ledger


def _has_score(request: ChatRequest, response: Response) -> bool:
    """Cache a rating only when it holds a score 1-100."""
    return not np.isnan(parse_explain_score(response.text or ""))


def explainability(
    instances: pd.DataFrame,
    answers: Sequence[str],
    matched: Sequence[MatchedAnswer],
    truth: WorldTruth | None,
    spec: ReclaifSpec,
    cache: ResponseCache | None,
) -> list[float]:
    """§5's explainability score (1-100) of each answer: 1 for an invalid one (nothing can be shown), else the
    judge's rating -- the simulated rater's from the truth, or the judge model's reply to ``explain_template``
    (NaN where the reply holds no score)."""
    if is_simulated(spec.judge):
        if truth is None:
            raise ValueError("reclaif.judge simulated rates explanations from the world's truth; this dataset has none")
        return [
            parse_explain_score(
                explain_score(m, option_scores(m, row.user_id, row.history, row.candidates, truth, spec.k))
            )
            for row, m in zip(instances.itertuples(index=False), matched, strict=True)
        ]
    scores = [1.0 if not m.valid else float("nan") for m in matched]
    rows = [n for n, m in enumerate(matched) if m.valid]
    prompts = [
        explain_prompt(spec.explain_template, spec.items_noun, instances["context"].iloc[n], answers[n]) for n in rows
    ]
    replies, _ = ask(build_backend(spec.judge), prompts, spec, cache, "explainability", accept=_has_score)
    for n, text in zip(rows, replies, strict=True):
        scores[n] = parse_explain_score(text)
    return scores


def answer_metrics(
    instances: pd.DataFrame, answers: Sequence[str], truth: WorldTruth | None, spec: ReclaifSpec
) -> pd.DataFrame:
    """Per instance: valid, why not, Hit@1 and NDCG@k of the next item (RecLAIF §5, with k = the answer's length) --
    or, for retrieval, Prec@k and NDCG@k against the Exact products -- and the mean true relevance of the ranked
    items and of the first (world only).

    An invalid answer scores 0 on Hit@1 and NDCG (strict: a list the user cannot be shown has no rank), and
    ``ValidRatio`` is the mean of ``valid``."""
    rows = []
    for row, text in zip(instances.itertuples(index=False), answers, strict=True):
        m = read_answer(text, row.candidate_texts, spec.k)
        ranked = [int(row.candidates[j]) for j in m.ranked()] if m.valid else []
        record = {"instance_id": row.instance_id, "valid": m.valid, "invalid": m.invalid or "", "ranked": ranked}
        if truth is not None:
            rel = truth.relevance[int(row.user_id), ranked] if ranked else np.array([0.0])
            record["true_relevance"] = float(np.mean(rel))
            record["true_relevance_at_1"] = float(rel[0])
        rows.append(record)
    frame = pd.DataFrame(rows)
    if spec.task == "retrieval":  # several relevant items (the Exact products): Table 2's Prec@k and NDCG@k
        from lure.reclaif.esci import retrieval_metrics

        scores = retrieval_metrics(list(frame["ranked"]), list(instances["relevant"]), spec.k)
        frame[f"prec_at_{spec.k}"] = scores[f"prec@{spec.k}"]
        frame[f"ndcg_at_{spec.k}"] = scores[f"ndcg@{spec.k}"]
        return frame
    padded = np.full((len(frame), spec.k), -1, dtype=np.int64)
    for n, r in enumerate(frame["ranked"]):
        padded[n, : len(r)] = r[: spec.k]
    ranks = target_ranks(padded, instances["target"].to_numpy())
    frame["hit_at_1"] = hit_at_k(ranks, 1)
    frame[f"ndcg_at_{spec.k}"] = ndcg_at_k(ranks, spec.k)
    return frame
