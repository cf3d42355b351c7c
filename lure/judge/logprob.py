"""Logprob mode of RecJudge-X (PairS-style): the verdict read from the probabilities of the two candidate labels at
the first token of the reply, averaged over both candidate orders. For backends that expose token
log-probabilities (``transformers``; ``openai`` where the server returns ``logprobs``).

What is asked (:func:`verdict_request`): ``prompts/judge_pairwise_logprob.j2``, whose answer block asks for exactly
one letter, "A" or "B", so the first generated token is the verdict. One token at temperature 0, with ``logprobs``
and ``top_logprobs`` (default 20, the most OpenAI's API returns).

How P is read (:func:`label_probabilities`), from the first position's ``top`` list: P(A) is the sum of
exp(logprob) over the tokens that read "A" once whitespace and quotes are stripped and case is folded ("A", " A",
"a", '"A'), P(B) likewise, and the two are renormalised: P(A) / (P(A) + P(B)). A label absent from the list counts
0 (its probability is at most the smallest one listed). ``mass`` = P(A) + P(B) before renormalising: how much of
the model's probability went to a label at all (a small mass is a verdict the model barely meant to give).

Both orders (:func:`logprob_verdict`): the pair is judged with i shown first and with j shown first, and
p_i = (P_1(i) + P_2(i)) / 2. A judge that adds the same b to whichever candidate is shown first has
P_1(i) = q + b and P_2(i) = q - b, so the position preference cancels in the mean. Winner i if p_i > 1/2, j if
p_i < 1/2, a tie at exactly 1/2; confidence max(p_i, 1 - p_i).

Statuses (those of ``lure.judge.schema.STATUSES``; this mode adds none):

* ``error``        the request failed, or the response has no top log-probabilities at the verdict token (a backend
                   or server that does not expose them, or a request without ``top_logprobs``);
* ``refused``      finish_reason ``content_filter``;
* ``invalid_json`` neither label is among the top tokens: the reply does not take the form asked for (one label),
                   which is what ``invalid_json`` means for a JSON answer that does not follow the schema;
* ``valid``        a distribution over the two labels.

A pair is ``valid`` only when both orders are; otherwise it takes the first of error, refused, invalid_json that
one of its orders has, and no verdict (one order alone is a position-biased verdict). There is no ``bad_evidence``:
this mode asks for no rationale, so there is no evidence to check; :func:`to_judgement` gives an answer without
rationales.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Literal

from lure.judge.parse import FILTERED, Judgement
from lure.judge.prompt import JudgePrompt
from lure.judge.requests import judge_messages
from lure.judge.schema import LABELS, JudgeAnswer, Presentation, Status, Winner
from lure.requests.models import ChatRequest, Response

#: Stripped from both ends of a token before it is compared with a label (then case is folded).
STRIPPED = string.whitespace + "\"'`"
#: The order in which a failed order's status becomes the pair's: the first that either order has.
_PRECEDENCE: tuple[Status, ...] = ("error", "refused", "invalid_json")


def verdict_request(
    prompt: JudgePrompt, template_hash: str, top_logprobs: int = 20, seed: int | None = None
) -> ChatRequest:
    """The request for one order of one pair: :func:`lure.judge.requests.judge_messages`, one token at temperature
    0, with the ``top_logprobs`` (1 to 20) most likely first tokens."""
    if not 1 <= top_logprobs <= 20:
        raise ValueError(f"top_logprobs must be 1 to 20 (the labels are read from that list), got {top_logprobs}")
    return ChatRequest(
        messages=judge_messages(prompt),
        temperature=0.0,
        max_tokens=1,
        logprobs=True,
        top_logprobs=top_logprobs,
        seed=seed,
        template_hash=template_hash,
    )


@dataclass(frozen=True)
class LabelProbabilities:
    """One order's reading: ``p_first`` = P("A") renormalised over the two labels (P("B") = 1 - p_first), ``mass``
    = P("A") + P("B") before renormalising; or a failed ``status`` with the reason in ``detail``."""

    status: Status
    p_first: float | None = None
    mass: float = 0.0
    detail: str = ""

    def p_of(self, item: Literal["i", "j"], presentation: Presentation) -> float:
        """P(``item``) in the order ``presentation`` describes (the label it was shown under)."""
        if self.p_first is None:
            raise ValueError(f"no distribution over the labels: {self.status} ({self.detail})")
        return self.p_first if presentation.label_of(item) == LABELS[0] else 1.0 - self.p_first


def label_probabilities(response: Response) -> LabelProbabilities:
    """P("A") and P("B") at the verdict token of ``response`` (module docstring), or why there is none."""
    if response.status != "ok":
        return LabelProbabilities("error", detail=response.error or "the request failed")
    if response.finish_reason in FILTERED:
        return LabelProbabilities("refused", detail=f"finish_reason {response.finish_reason}")
    top = response.logprobs[0].top if response.logprobs else ()
    if not top:
        return LabelProbabilities(
            "error",
            detail="no top log-probabilities at the verdict token (the request needs logprobs and top_logprobs >= 1, "
            "and the backend must return them)",
        )
    if any(math.isnan(t.logprob) for t in top):
        return LabelProbabilities("error", detail="a top log-probability is NaN")
    found = {label: [t.logprob for t in top if _reads(t.token) == label.casefold()] for label in LABELS}
    log_p = {label: _logsumexp(values) for label, values in found.items()}
    if all(v == -math.inf for v in log_p.values()):
        listed = ", ".join(repr(t.token) for t in top[:5])
        return LabelProbabilities(
            "invalid_json",
            detail=f"neither {LABELS[0]!r} nor {LABELS[1]!r} among the {len(top)} most likely first tokens "
            f"(first of them: {listed})",
        )
    high = max(log_p.values())
    first, second = (math.exp(log_p[label] - high) for label in LABELS)
    mass = math.exp(log_p[LABELS[0]]) + math.exp(log_p[LABELS[1]])
    return LabelProbabilities("valid", first / (first + second), mass)


def _reads(token: str) -> str:
    return token.strip(STRIPPED).casefold()


def _logsumexp(values: list[float]) -> float:
    if not values or max(values) == -math.inf:
        return -math.inf
    high = max(values)
    return high + math.log(sum(math.exp(v - high) for v in values))


@dataclass(frozen=True)
class LogprobVerdict:
    """The verdict on one pair from both orders (module docstring).

    ``winner``, ``p_i`` (P(i) averaged over the orders) and ``confidence`` (max(p_i, 1 - p_i)) are set only when
    ``status`` is valid. Diagnostics, set for every order that gave a distribution: ``p_i_orders`` (P(i) in the
    first and in the second order), ``p_shown_first`` (P of the first shown candidate, "A", averaged over the
    orders: 1/2 for a judge without position preference; only when both orders are valid) and ``mass`` (each
    order's P(A) + P(B) before renormalising).
    """

    status: Status
    winner: Winner | None = None
    p_i: float | None = None
    confidence: float | None = None
    detail: str = ""
    p_i_orders: tuple[float | None, float | None] = (None, None)
    p_shown_first: float | None = None
    mass: tuple[float, float] = (0.0, 0.0)


def logprob_verdict(
    first: Response, second: Response, pres_first: Presentation, pres_second: Presentation
) -> LogprobVerdict:
    """The verdict on a pair judged twice: ``first`` answered the prompt presented as ``pres_first``, ``second`` the
    one presented as ``pres_second``, in the other order (i shown first in one, j in the other)."""
    if pres_first.i_first == pres_second.i_first:
        raise ValueError("logprob mode needs the pair in both orders: pres_first and pres_second have the same i_first")
    one, two = label_probabilities(first), label_probabilities(second)
    p_one = one.p_of("i", pres_first) if one.status == "valid" else None
    p_two = two.p_of("i", pres_second) if two.status == "valid" else None
    mass = (one.mass, two.mass)
    if one.p_first is None or two.p_first is None or p_one is None or p_two is None:
        status = next(s for s in _PRECEDENCE if s in (one.status, two.status))
        detail = "; ".join(
            f"order with {'i' if p.i_first else 'j'} shown first: {d.status} ({d.detail})"
            for d, p in ((one, pres_first), (two, pres_second))
            if d.status != "valid"
        )
        return LogprobVerdict(status, detail=detail, p_i_orders=(p_one, p_two), mass=mass)
    p_i = (p_one + p_two) / 2.0
    winner: Winner = "i" if p_i > 0.5 else "j" if p_i < 0.5 else "tie"
    return LogprobVerdict(
        "valid",
        winner,
        p_i,
        max(p_i, 1.0 - p_i),
        p_i_orders=(p_one, p_two),
        p_shown_first=(one.p_first + two.p_first) / 2.0,
        mass=mass,
    )


def to_judgement(verdict: LogprobVerdict) -> Judgement:
    """``verdict`` as the JSON mode's :class:`~lure.judge.parse.Judgement`, for ``lure.judge.labels``: a valid
    verdict's answer has its winner and confidence and no rationales (this mode has no evidence); any other status
    has no answer, as in the JSON mode."""
    if verdict.status != "valid" or verdict.winner is None or verdict.confidence is None:
        return Judgement(verdict.status, detail=verdict.detail)
    answer = JudgeAnswer(winner=verdict.winner, confidence=float(verdict.confidence), rationales=[])
    return Judgement("valid", answer, detail=f"logprob mode: p_i {verdict.p_i:.6f}, no rationales")
