"""Judging the matched pairs: render one prompt per (pair, order, sample), ask the judge through the request layer
(cache, bounded concurrency, ledger), and read every answer into one row with exactly one status.

Why one row per answer (not per pair): with ``judge.order: both`` or ``judge.samples`` > 1 a pair has several
answers, and how they become one label is a choice of the metrics stage (``judge.aggregate``), not of the judge
stage; keeping the answers lets ``judge-metrics`` re-aggregate without asking again.

Who answers (``judge.backend``): any backend of :mod:`lure.requests` (an OpenAI-compatible endpoint, an in-process
Hugging Face model), or the world's simulated judge (:mod:`lure.judge.simulated`), which goes through the same
runner and cache as a model would: it is a :class:`~lure.requests.backends.base.Backend` whose answers are computed
up front, vectorised, from the world's true relevance.

What is cached: every answer that follows the answer schema (``valid`` and ``bad_evidence``: the evidence is the
judge's fault, not the transport's, and asking again at temperature 0 gives the same quote). Transport errors,
refusals and unparseable or truncated answers are returned but never stored, so the next run asks again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lure.judge.logprob import logprob_verdict, to_judgement, verdict_request
from lure.judge.parse import Judgement, Reply, judge_reply
from lure.judge.prompt import JudgePrompt, JudgeTemplate, judge_prompts, presentation_orders
from lure.judge.requests import judge_messages
from lure.judge.schema import HISTORY, LABELS, TIE
from lure.judge.simulated import simulate_replies
from lure.layout import prompts_dir
from lure.requests import (
    Backend,
    ChatRequest,
    JsonObjectFormat,
    JsonSchema,
    JsonSchemaFormat,
    Response,
    ResponseCache,
    RunResult,
    Usage,
    build_backend,
    run_requests,
)
from lure.requests.ledger import Prices
from lure.rng import generator
from lure.spec.judge import JudgeSpec, SimulatedJudgeSpec

#: Version of the answer schema and of how requests are built; part of every request's template hash, so a change
#: of either never reuses old answers.
ANSWER_SCHEMA_VERSION = "judge-answer-1"
#: Named random stream of the subset of pairs judged under ``judge.max_pairs``.
SUBSET_STREAM = "judge.subset"
#: Columns of the answers frame (``data/judge/answers.parquet``).
ANSWER_COLUMNS = (
    "pair",
    "user_id",
    "item_i",
    "item_j",
    "i_first",
    "sample",
    "status",
    "winner",
    "confidence",
    "finish_reason",
    "detail",
    "cached",
    "p_i",
    "p_shown_first",
)


def answer_wire_schema() -> dict[str, Any]:
    """The JSON schema of an answer as the judge writes it (candidate labels A/B, not i/j)."""
    return {
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": [*LABELS, TIE]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "rationales": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "claim": {"type": "string"},
                        "evidence": {"type": "string"},
                        "source": {"type": "string", "enum": [HISTORY, *LABELS]},
                    },
                    "required": ["claim", "evidence", "source"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["winner", "confidence", "rationales"],
        "additionalProperties": False,
    }


def template_hash(name: str, directory: str | Path | None = None) -> str:
    """sha256 of the template file and the answer schema version: what gives an answer its meaning besides the
    rendered messages."""
    text = (Path(directory or prompts_dir()) / f"{name}.j2").read_bytes()
    return hashlib.sha256(text + ANSWER_SCHEMA_VERSION.encode()).hexdigest()


def json_request(prompt: JudgePrompt, spec: JudgeSpec, template_sha: str, sample: int, seed: int) -> ChatRequest:
    """The request for a JSON answer (mode ``json``)."""
    response_format: JsonObjectFormat | JsonSchemaFormat | None = None
    if spec.response_format == "json_object":
        response_format = JsonObjectFormat(schema=answer_wire_schema())
    elif spec.response_format == "json_schema":
        response_format = JsonSchemaFormat(json_schema=JsonSchema(name="judge_answer", schema=answer_wire_schema()))
    return ChatRequest(
        messages=judge_messages(prompt),
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        response_format=response_format,
        seed=seed,
        sample=sample,
        template_hash=template_sha,
    )


def judged_subset(pairs: pd.DataFrame, max_pairs: int | None, seed: int) -> np.ndarray:
    """Row positions of the pairs judged: all, or a seeded random subset of ``max_pairs`` (in row order)."""
    n = len(pairs)
    if max_pairs is None or max_pairs >= n:
        return np.arange(n)
    return np.sort(generator(seed, SUBSET_STREAM).choice(n, size=max_pairs, replace=False))


@dataclass(frozen=True)
class Plan:
    """What is asked: per answer, the pair's row in ``pairs``, the sample index and the rendered prompt."""

    pair: np.ndarray
    sample: np.ndarray
    prompts: list[JudgePrompt]


def plan_answers(
    pairs: pd.DataFrame, items: pd.DataFrame, train: pd.DataFrame, spec: JudgeSpec, seed: int, judge_all: bool = False
) -> Plan:
    """One prompt per (judged pair, order, sample): ``order: random`` shows each pair once in its drawn order,
    ``both`` (and the logprob mode) in both orders; ``samples`` repeats each."""
    rows = judged_subset(pairs, None if judge_all else spec.max_pairs, seed)
    drawn = presentation_orders(len(pairs), seed)[rows]
    both = spec.order == "both" or spec.mode == "logprob"
    pair = np.concatenate([rows, rows]) if both else rows
    orders = np.concatenate([drawn, ~drawn]) if both else drawn
    prompts = judge_prompts(
        pairs.iloc[pair], items, train, spec.history_items, seed, JudgeTemplate(spec.template), i_first=orders
    )
    k = spec.samples
    return Plan(np.repeat(pair, k), np.tile(np.arange(k), len(pair)), [p for p in prompts for _ in range(k)])


class SimulatedJudgeBackend(Backend):
    """The world's simulated judge behind the request-layer interface: answers computed up front and looked up by
    (prompt text, sample). Its identity carries the judge's parameters, the seed and a hash of the simulator's code
    (:func:`simulator_code_hash`): a model's answer does not depend on lure's code, but the simulated judge's does,
    so a changed parameter or a changed simulator never reuses cached answers."""

    def __init__(self, answers: dict[tuple[str, int], Reply], spec: SimulatedJudgeSpec, seed: int) -> None:
        self.answers = answers
        self.prices = Prices()
        self._identity = {
            "backend": "simulated-judge",
            "base_url": None,
            "model": "lure.judge.simulated",
            "parameters": spec.model_dump(mode="json"),
            "seed": int(seed),
            "code": simulator_code_hash(),
        }

    @property
    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    async def complete(self, request: ChatRequest) -> Response:
        reply = self.answers[(request.messages[-1].content, request.sample)]
        return Response(
            text=reply.text or "",
            finish_reason=reply.finish_reason,
            usage=Usage(prompt_tokens=0, completion_tokens=0),
            attempts=1,
        )


def simulator_code_hash() -> str:
    """sha256 of the code that writes the simulated judge's answers: the module of
    :func:`lure.judge.simulated.simulate_replies` and :func:`simulated_backend` (which assigns the seeds)."""
    import inspect

    import lure.judge.simulated

    code = inspect.getsource(lure.judge.simulated) + inspect.getsource(simulated_backend)
    return hashlib.sha256(code.encode()).hexdigest()


def simulated_backend(
    plan: Plan, pairs: pd.DataFrame, popularity: np.ndarray, spec: SimulatedJudgeSpec, seed: int
) -> SimulatedJudgeBackend:
    """The simulated judge's answers to every prompt of ``plan``; each (order, sample) draws on its own seed, so
    the two orders of a pair are two independent looks (position bias then favours a different item)."""
    r_i, r_j = pairs["r_i"].to_numpy(np.float64), pairs["r_j"].to_numpy(np.float64)
    item_i, item_j = pairs["item_i"].to_numpy(np.int64), pairs["item_j"].to_numpy(np.int64)
    i_first = np.array([p.presentation.i_first for p in plan.prompts], dtype=bool)
    drawn = presentation_orders(len(pairs), seed)
    answers: dict[tuple[str, int], Reply] = {}
    for s in np.unique(plan.sample):
        for flipped in (False, True):
            rows = np.flatnonzero((plan.sample == s) & ((i_first != drawn[plan.pair]) == flipped))
            if not len(rows):
                continue
            p = plan.pair[rows]
            replies, _ = simulate_replies(
                [plan.prompts[k] for k in rows],
                r_i[p],
                r_j[p],
                popularity[item_i[p]],
                popularity[item_j[p]],
                spec,
                seed=_sub_seed(seed, int(s), flipped),
            )
            for k, reply in zip(rows, replies, strict=True):
                answers.setdefault((plan.prompts[k].text, int(s)), reply)  # a repeated prompt: one answer
    return SimulatedJudgeBackend(answers, spec, seed)


def _sub_seed(seed: int, sample: int, flipped: bool) -> int:
    """The seed of one (sample, order) look: the first look (sample 0, drawn order) is ``seed`` itself, so a single
    answer per pair is exactly :func:`lure.judge.simulated.simulate_replies` of the pipeline's seed."""
    if sample == 0 and not flipped:
        return int(seed)
    return int(generator(seed, f"judge.look.{sample}.{int(flipped)}").integers(2**31 - 1))


def reply_of(response: Response) -> Reply:
    """The parser's view of a request-layer response."""
    if response.status != "ok":
        return Reply(None, error=response.error or "error")
    return Reply(response.text, finish_reason=response.finish_reason)


def ask_json(
    plan: Plan,
    backend: Backend,
    spec: JudgeSpec,
    seed: int,
    cache: ResponseCache | None,
    template_sha: str,
) -> tuple[list[Judgement], RunResult]:
    """Ask every prompt of ``plan`` for a JSON answer and parse it; schema-following answers are cached."""
    requests = [
        json_request(p, spec, template_sha, int(s), seed) for p, s in zip(plan.prompts, plan.sample, strict=True)
    ]
    by_request = {
        (r.messages[-1].content, r.sample): p.presentation for r, p in zip(requests, plan.prompts, strict=True)
    }

    def follows_schema(request: ChatRequest, response: Response) -> bool:
        presentation = by_request[(request.messages[-1].content, request.sample)]
        return judge_reply(reply_of(response), presentation).answer is not None

    result = run_requests(backend, requests, cache, spec.concurrency, "judge", accept=follows_schema)
    judged = [judge_reply(reply_of(r), p.presentation) for r, p in zip(result.responses, plan.prompts, strict=True)]
    return judged, result


def answers_frame(
    plan: Plan,
    pairs: pd.DataFrame,
    judged: Sequence[Judgement],
    responses: Sequence[Response],
    p_i: np.ndarray | None = None,
    p_shown_first: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per answer (:data:`ANSWER_COLUMNS`): the pair, how it was shown, the status and the verdict in
    terms of i and j (None where the answer has none); ``p_i`` and ``p_shown_first`` in logprob mode (NaN in JSON
    mode)."""
    p = plan.pair
    missing = np.full(len(p), np.nan)
    return pd.DataFrame(
        {
            "pair": p.astype(np.int64),
            "user_id": pairs["user_id"].to_numpy(np.int64)[p],
            "item_i": pairs["item_i"].to_numpy(np.int64)[p],
            "item_j": pairs["item_j"].to_numpy(np.int64)[p],
            "i_first": np.array([q.presentation.i_first for q in plan.prompts], dtype=bool),
            "sample": plan.sample.astype(np.int64),
            "status": [j.status for j in judged],
            "winner": [j.answer.winner if j.answer is not None else None for j in judged],
            "confidence": np.array(
                [j.answer.confidence if j.answer is not None else np.nan for j in judged], dtype=np.float64
            ),
            "finish_reason": [r.finish_reason for r in responses],
            "detail": [j.detail for j in judged],
            "cached": np.array([r.cached for r in responses], dtype=bool),
            "p_i": missing if p_i is None else np.asarray(p_i, dtype=np.float64),
            "p_shown_first": missing if p_shown_first is None else np.asarray(p_shown_first, dtype=np.float64),
        },
        columns=list(ANSWER_COLUMNS),
    )


def ask_logprob(
    plan: Plan,
    pairs: pd.DataFrame,
    backend: Backend,
    spec: JudgeSpec,
    seed: int,
    cache: ResponseCache | None,
    template_sha: str,
) -> tuple[pd.DataFrame, RunResult]:
    """Logprob mode (:mod:`lure.judge.logprob`): every pair asked in both orders for one label token; the two
    answers become one verdict per pair, p_i averaged over the orders. One row per pair, shown as in its drawn
    (first-planned) order; a response is cached when it holds top log-probabilities."""
    requests = [verdict_request(p, template_sha, spec.top_logprobs, seed) for p in plan.prompts]

    def has_logprobs(request: ChatRequest, response: Response) -> bool:
        return bool(response.logprobs) and bool(response.logprobs[0].top)

    result = run_requests(backend, requests, cache, spec.concurrency, "judge (logprob)", accept=has_logprobs)
    n = len(plan.prompts) // 2  # plan_answers: the drawn orders first, then the other order of the same pairs
    head = Plan(plan.pair[:n], plan.sample[:n], plan.prompts[:n])
    verdicts = [
        logprob_verdict(
            result.responses[k], result.responses[k + n], plan.prompts[k].presentation, plan.prompts[k + n].presentation
        )
        for k in range(n)
    ]
    judged = [to_judgement(v) for v in verdicts]
    answers = answers_frame(
        head,
        pairs,
        judged,
        result.responses[:n],
        p_i=np.array([np.nan if v.p_i is None else v.p_i for v in verdicts]),
        p_shown_first=np.array([np.nan if v.p_shown_first is None else v.p_shown_first for v in verdicts]),
    )
    answers["cached"] = [a.cached and b.cached for a, b in zip(result.responses[:n], result.responses[n:], strict=True)]
    return answers, result


def judge_backend(spec: JudgeSpec, plan: Plan, pairs: pd.DataFrame, items: pd.DataFrame, seed: int) -> Backend:
    """The backend ``judge.backend`` names: a request-layer backend, or the simulated judge (needs the pairs' true
    relevance r_i, r_j: the world's)."""
    if isinstance(spec.backend, SimulatedJudgeSpec):
        missing = {"r_i", "r_j"} - set(pairs.columns)
        if missing:
            raise ValueError(f"judge.backend simulated needs the true relevance r_i, r_j; pairs lack {sorted(missing)}")
        return simulated_backend(plan, pairs, items["popularity"].to_numpy(np.float64), spec.backend, seed)
    return build_backend(spec.backend)


def position_stats(answers: pd.DataFrame) -> dict[str, float | int | None]:
    """How the order of the candidates shows in the answers.

    ``first_shown_share``: among answers with an i/j verdict, the share that picked the candidate shown first (0.5
    for a judge without position bias on a fair order). In logprob mode, where a verdict averages both orders,
    ``p_shown_first_mean`` is the judge's own position preference: the mean probability it gave the first shown.
    ``position_consistency`` (pairs judged in both orders): among
    pairs with a verdict in both orders (first sample), the share whose two verdicts name the same item.
    """
    decided = answers[answers["winner"].isin(["i", "j"])]
    first = (decided["winner"] == "i") == decided["i_first"]
    out: dict[str, float | int | None] = {
        "first_shown_share": float(first.mean()) if len(decided) else None,
        "position_consistency": None,
        "pairs_in_both_orders": 0,
    }
    if "p_shown_first" in answers and answers["p_shown_first"].notna().any():  # logprob mode: P(first shown)
        out["p_shown_first_mean"] = float(answers["p_shown_first"].mean())
    looks = answers[(answers["sample"] == 0) & answers["winner"].notna()]
    wide = looks.pivot_table(index="pair", columns="i_first", values="winner", aggfunc="first")
    if True in wide.columns and False in wide.columns:
        both = wide.dropna()
        out["pairs_in_both_orders"] = len(both)
        if len(both):
            out["position_consistency"] = float((both[True] == both[False]).mean())
    return out


def run_judge(
    pairs: pd.DataFrame,
    items: pd.DataFrame,
    train: pd.DataFrame,
    spec: JudgeSpec,
    seed: int,
    cache: ResponseCache | None,
    backend_factory: Callable[[Plan], Backend] | None = None,
    judge_all: bool = False,
) -> tuple[pd.DataFrame, RunResult]:
    """The judge stage's work: plan, ask, parse. ``backend_factory`` overrides :func:`judge_backend` (tests);
    ``judge_all`` ignores ``judge.max_pairs`` (the validity check caps its pairs itself)."""
    plan = plan_answers(pairs, items, train, spec, seed, judge_all)
    backend = backend_factory(plan) if backend_factory else judge_backend(spec, plan, pairs, items, seed)
    sha = template_hash(spec.template)
    if spec.mode == "logprob":
        return ask_logprob(plan, pairs, backend, spec, seed, cache, sha)
    judged, result = ask_json(plan, backend, spec, seed, cache, sha)
    return answers_frame(plan, pairs, judged, result.responses), result
