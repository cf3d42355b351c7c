"""A simulated judge for the world: it knows the true relevance r(u, i), errs in controlled ways, and writes the
reply text an LLM would (the JSON answer of ``prompts/judge_pairwise.j2``), so the whole path -- prompt, reply,
parser, evidence check, labels, metrics -- runs without a model and against a known truth.

Decision for one pair (i, j), with b the truly better item (r higher; none when r_i = r_j) and o the other. Every
pair draws seven uniforms U0..U6 from the named stream ``judge.simulated``, always all seven and in this order, so
changing one parameter changes only the decisions that depend on it (common random numbers):

1. broken output   with probability ``invalid_rate`` (U0): the answer of steps 2-4 is cut off at 20-80 % of its
                   length (U6), finish_reason "length" -- no JSON object, status ``invalid_json``;
2. tie             with probability ``tie_rate`` (U1): winner "tie", confidence 0.5;
3. position        else with probability ``position_bias`` (U2): the first shown candidate ("A"), confidence 0.5;
4. content         else b with probability

                       p_b = a e^{gamma d} / (a e^{gamma d} + 1 - a),     a = ``accuracy``, gamma = ``popularity_bias``

                   (U3 < p_b), i.e. log-odds logit(a) + gamma d, where d = +1 if b is the more popular of the two
                   (``pop``: training interactions), -1 if less, 0 if equally popular. With r_i = r_j, i plays b with
                   a = 1/2. Confidence = max(p_b, 1 - p_b) (how sure the rule is, whichever item it drew), rounded to 2
                   decimals.

So P(judge prefers b) = position_bias * 1[b shown first] + (1 - position_bias) * p_b among non-tie, non-broken
answers; averaged over the fair A/B order, position_bias / 2 + (1 - position_bias) p_b.

Rationales: the chosen candidate's title quoted from its block (a tie quotes candidate A's), then one title of the
history (U5 picks which) when there is a history. With probability ``hallucination_rate`` (U4) the first
rationale's evidence is text that is not in the block it names: the other candidate's title (a mix-up of the two
candidates) when that is not in the block, else the title with a made-up suffix. Status ``bad_evidence``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lure.judge.parse import Reply
from lure.judge.prompt import JudgeItem, JudgePrompt
from lure.judge.schema import HISTORY, LABELS, TIE
from lure.rng import generator
from lure.spec.judge import SimulatedJudgeSpec

#: Named random stream of the simulated judge.
SIMULATED_STREAM = "judge.simulated"
#: Uniforms drawn per pair (columns of the draw): broken, tie, position, content, hallucination, history pick, cut.
N_UNIFORMS = 7
#: Made-up suffixes of a hallucinated quote (the first whose text is not in the block is used).
_FABRICATIONS = (" (Director's Cut)", " - winner of three awards", " (the user's favourite)")
_CLAIM_CANDIDATE = "The candidate fits the user's taste."
_CLAIM_HISTORY = "The user interacted with this before."


@dataclass(frozen=True)
class Decisions:
    """The simulated judge's decision per pair (arrays of length n).

    ``winner``: +1 = i, -1 = j, 0 = tie (where ``broken``: the verdict of the text that was cut off);
    ``confidence`` in [0, 1]; ``kind``: 1 tie, 2 position, 3 content (whether broken or not); ``broken``: the text is
    cut off; ``hallucinated``: the first rationale cites text not in its block (never where broken); ``pick`` and
    ``cut`` in [0, 1): which history title is quoted, where a broken answer is cut off.
    """

    winner: np.ndarray
    confidence: np.ndarray
    kind: np.ndarray
    broken: np.ndarray
    hallucinated: np.ndarray
    pick: np.ndarray
    cut: np.ndarray


def preference_probability(accuracy: np.ndarray | float, popularity_bias: float, d: np.ndarray) -> np.ndarray:
    """p_b = a e^{gamma d} / (a e^{gamma d} + 1 - a): exact at a = 0 and a = 1 (no logit of 0 or 1 is taken)."""
    a = np.asarray(accuracy, dtype=np.float64)
    odds = a * np.exp(popularity_bias * np.asarray(d, dtype=np.float64))
    return odds / (odds + (1.0 - a))


def simulate_decisions(
    r_i: np.ndarray,
    r_j: np.ndarray,
    pop_i: np.ndarray,
    pop_j: np.ndarray,
    i_first: np.ndarray,
    spec: SimulatedJudgeSpec,
    seed: int,
) -> Decisions:
    """The decisions of the module docstring for n pairs, vectorised."""
    r_i, r_j = np.asarray(r_i, np.float64), np.asarray(r_j, np.float64)
    pop_i, pop_j = np.asarray(pop_i, np.float64), np.asarray(pop_j, np.float64)
    i_first = np.asarray(i_first, dtype=bool)
    n = len(r_i)
    u = generator(seed, SIMULATED_STREAM).random((n, N_UNIFORMS))
    broken = u[:, 0] < spec.invalid_rate
    tie = u[:, 1] < spec.tie_rate
    position = ~tie & (u[:, 2] < spec.position_bias)
    content = ~tie & ~position

    # b = i where r_i >= r_j (on r_i = r_j, i plays b with a = 1/2), else j; d = popularity sign of b against o
    b_is_i = r_i >= r_j
    pop_b, pop_o = np.where(b_is_i, pop_i, pop_j), np.where(b_is_i, pop_j, pop_i)
    a = np.where(r_i == r_j, 0.5, spec.accuracy)
    d = np.sign(pop_b - pop_o)
    p_b = preference_probability(a, spec.popularity_bias, d)
    picks_b = u[:, 3] < p_b
    chosen_is_i = np.where(content, picks_b == b_is_i, i_first)
    winner = np.where(tie, 0, np.where(chosen_is_i, 1, -1)).astype(np.int8)
    confidence = np.where(content, np.maximum(p_b, 1.0 - p_b), 0.5).round(2)
    kind = np.select([tie, position], [1, 2], default=3).astype(np.int8)
    hallucinated = ~broken & (u[:, 4] < spec.hallucination_rate)
    return Decisions(winner, confidence, kind, broken, hallucinated, u[:, 5], u[:, 6])


def reply_text(prompt: JudgePrompt, winner: int, confidence: float, hallucinated: bool, pick: float) -> str:
    """The JSON answer of one decision, in the candidate labels the prompt used."""
    pres = prompt.presentation
    if winner == 0:
        label, title = TIE, _shown_first(prompt).title
        source = LABELS[0]
    else:
        item = "i" if winner > 0 else "j"
        label = source = pres.label_of(item)
        title = (prompt.item_i if item == "i" else prompt.item_j).title
    evidence = title
    if hallucinated:
        evidence = _not_in(pres.blocks[pres.item_of(source)], _other_title(prompt, source), title)
    rationales = [{"claim": _CLAIM_CANDIDATE, "evidence": evidence, "source": source}]
    if prompt.history:
        seen = prompt.history[min(int(pick * len(prompt.history)), len(prompt.history) - 1)]
        rationales.append({"claim": _CLAIM_HISTORY, "evidence": seen.title, "source": HISTORY})
    answer = {"winner": label, "confidence": float(confidence), "rationales": rationales}
    return json.dumps(answer, ensure_ascii=False)


def simulate_replies(
    prompts: Sequence[JudgePrompt],
    r_i: np.ndarray,
    r_j: np.ndarray,
    pop_i: np.ndarray,
    pop_j: np.ndarray,
    spec: SimulatedJudgeSpec,
    seed: int,
) -> tuple[list[Reply], Decisions]:
    """One reply per prompt (same order) and the decisions behind them; deterministic given ``seed``."""
    i_first = np.array([p.presentation.i_first for p in prompts], dtype=bool)
    dec = simulate_decisions(r_i, r_j, pop_i, pop_j, i_first, spec, seed)
    replies = []
    for k, prompt in enumerate(prompts):
        text = reply_text(prompt, int(dec.winner[k]), float(dec.confidence[k]), bool(dec.hallucinated[k]), dec.pick[k])
        if dec.broken[k]:
            replies.append(Reply(text[: int(len(text) * (0.2 + 0.6 * dec.cut[k]))], finish_reason="length"))
        else:
            replies.append(Reply(text, finish_reason="stop"))
    return replies, dec


def _shown_first(prompt: JudgePrompt) -> JudgeItem:
    return prompt.item_i if prompt.presentation.i_first else prompt.item_j


def _other_title(prompt: JudgePrompt, source: str) -> str:
    """The title of the candidate that is not ``source`` (a label)."""
    other = prompt.presentation.item_of(LABELS[1] if source == LABELS[0] else LABELS[0])
    return (prompt.item_i if other == "i" else prompt.item_j).title


def _not_in(block: str, mix_up: str, title: str) -> str:
    """A quote that is not a substring of ``block``: the other candidate's title, else the title with a made-up
    suffix, else (never seen in practice) text longer than the block."""
    for text in (mix_up, *(title + s for s in _FABRICATIONS)):
        if text.strip() and text not in block:
            return text
    return "x" * (len(block) + 1)
