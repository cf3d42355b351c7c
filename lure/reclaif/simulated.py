"""The world's simulated RecLAIF teacher, judge and explainability rater: they know the true relevance r(u, i) and
the genres, err in controlled ways, and write the text an LLM would, so the whole loop -- prompts, answers, parser,
judge replies, DPO pairs, metrics -- runs without a model and against a known truth (docs/reclaif.md).

**Teacher** (§5's "ground truth" answers for SFT): key preferences = the ``preferences`` commonest genres of the
history (ties by genre name); ranking = the top k candidates by log r(u, i) + ``noise`` * G with G ~ Gumbel(0, 1)
(``noise`` 0 = the true order; the Gumbel-max trick makes it a draw from the softmax of log r / noise); the reason
of an item is "fits <genre>" for its first genre among the preferences, else "adds <its first genre>".

**Judge** (Eq. 5), per option o with ranked picks i_1..i_m (named candidates, each once, at most k):

* relevance   s_Rel = 5 * sum_r D(r) r(u, i_r) / sum_{r<=k} D(r) r*_r   (r* = the candidates' true relevance sorted
  descending, D(r) = 1/log2(r+1): the option's true DCG against the best possible; "how closely the recommendations
  match the user's preferences", with the truth standing in for the single next item);
* diversity   s_Div = 5 * (1 - mean pairwise Jaccard similarity of the picks' genre sets) (0 for fewer than 2);
* explainability s_Exp = 5 * (share of stated preferences that are among the history's 3 commonest genres + share
  of reasons that name one of their item's genres) / 2.

An option that is not a valid answer (not exactly k distinct candidates: ``lure.reclaif.answer``) scores 0 on all
three, as a judge that is shown a malformed list would rate it. It prefers the option with the higher w . s
(``weights``); equal totals are a tie. Each pair draws four uniforms in
this order from the named stream (common random numbers, as the LURE judge): U0 < ``invalid_rate`` cuts the reply
before its decision (invalid); U1 < ``position_bias`` picks option A whatever the scores; U2 >= ``accuracy`` picks
the worse option; U3 sets where a broken reply is cut.

**Explainability rater** (§5's 1-100 score): 1 + round(99 * s_Exp / 5) for a valid answer, 1 for an invalid one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lure.metrics.ranking import discount
from lure.reclaif.answer import MatchedAnswer, write_answer

N_UNIFORMS = 4


@dataclass(frozen=True)
class WorldTruth:
    """What the simulated roles know: r(u, i) (users x items) and each item's genres."""

    relevance: np.ndarray
    genres: Mapping[int, tuple[str, ...]]


def history_genres(history: Sequence[int], genres: Mapping[int, tuple[str, ...]], n: int) -> list[str]:
    """The ``n`` commonest genres of the history items (count descending, then name)."""
    counts = Counter(g for i in history for g in genres[int(i)])
    return [g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def reason_for(item: int, preferences: Sequence[str], genres: Mapping[int, tuple[str, ...]]) -> str:
    """'fits <genre>' for the item's first genre among the preferences, else 'adds <its first genre>'."""
    own = genres[int(item)]
    shared = [g for g in own if g in preferences]
    return f"fits {shared[0]}" if shared else f"adds {own[0] if own else 'variety'}"


def teacher_answer(
    user: int,
    history: Sequence[int],
    candidates: Sequence[int],
    titles: Sequence[str],
    truth: WorldTruth,
    k: int,
    noise: float,
    preferences: int,
    style: str,
    rng: np.random.Generator,
) -> str:
    """The simulated teacher's answer for one instance (see the module docstring)."""
    cands = np.asarray(candidates, dtype=np.int64)
    score = np.log(np.maximum(truth.relevance[int(user), cands], 1e-12)) + noise * rng.gumbel(size=len(cands))
    top = np.argsort(-score, kind="stable")[:k]
    prefs = history_genres(history, truth.genres, preferences)
    reasons = [reason_for(int(cands[j]), prefs, truth.genres) for j in top]
    return write_answer(prefs, [titles[j] for j in top], reasons, style)


def _jaccard_diversity(items: Sequence[int], genres: Mapping[int, tuple[str, ...]]) -> float:
    sets = [set(genres[int(i)]) for i in items]
    if len(sets) < 2:
        return 0.0
    sims = [len(a & b) / max(len(a | b), 1) for n, a in enumerate(sets) for b in sets[n + 1 :]]
    return float(1.0 - np.mean(sims))


def option_scores(
    answer: MatchedAnswer, user: int, history: Sequence[int], candidates: Sequence[int], truth: WorldTruth, k: int
) -> dict[str, float]:
    """s_Rel, s_Div, s_Exp (0-5, unrounded) of one answer (see the module docstring); all 0 for an invalid one."""
    if not answer.valid:
        return {"relevance": 0.0, "diversity": 0.0, "explainability": 0.0}
    cands = np.asarray(candidates, dtype=np.int64)
    picks = [int(cands[j]) for j in answer.ranked()[:k]]
    rel_all = np.sort(truth.relevance[int(user), cands])[::-1][:k]
    ideal = float((discount(np.arange(1, len(rel_all) + 1)) * rel_all).sum())
    gain = float((discount(np.arange(1, len(picks) + 1)) * truth.relevance[int(user), picks]).sum()) if picks else 0.0
    relevance = 5.0 * gain / ideal if ideal > 0 else 0.0
    diversity = 5.0 * _jaccard_diversity(picks, truth.genres)
    top3 = {g.casefold() for g in history_genres(history, truth.genres, 3)}
    prefs = answer.preferences
    pref_share = float(np.mean([p.strip().casefold() in top3 for p in prefs])) if prefs else 0.0
    named = [
        any(g.casefold() in why.casefold() for g in truth.genres[int(cands[j])])
        for j, why in zip(answer.picks, answer.reasons, strict=True)
        if j >= 0
    ]
    reason_share = float(np.mean(named)) if named else 0.0
    return {"relevance": relevance, "diversity": diversity, "explainability": 5.0 * (pref_share + reason_share) / 2}


def judge_reply(
    scores_a: Mapping[str, float],
    scores_b: Mapping[str, float],
    weights: Mapping[str, float],
    accuracy: float,
    position_bias: float,
    invalid_rate: float,
    uniforms: Sequence[float],
) -> str:
    """The simulated judge's reply in the paper's format for options A and B (see the module docstring)."""
    total_a = sum(weights[c] * scores_a[c] for c in weights)
    total_b = sum(weights[c] * scores_b[c] for c in weights)
    if uniforms[1] < position_bias:
        chosen = "A"
    elif abs(total_a - total_b) < 1e-9:
        chosen = "Tie"
    else:
        better, worse = ("A", "B") if total_a > total_b else ("B", "A")
        chosen = better if uniforms[2] < accuracy else worse
    lines = []
    for name, scores in (("A", scores_a), ("B", scores_b)):
        lines.append(f"Option {name} Evaluation:")
        for criterion in ("relevance", "diversity", "explainability"):
            lines.append(f"- {criterion.capitalize()} Score: {round(scores[criterion])} - from the history and label")
    lines += ["Decision:", f"- Chosen Option: {chosen}", "- Reasoning: the chosen option scores higher overall."]
    text = "\n".join(lines)
    if uniforms[0] < invalid_rate:  # a broken reply: cut before the decision
        cut = text.index("Decision:")
        return text[: int(cut * (0.2 + 0.6 * uniforms[3]))]
    return text


def explain_score(answer: MatchedAnswer, scores: Mapping[str, float]) -> str:
    """The simulated rater's reply: 'Score: N', N = 1 + round(99 * s_Exp / 5), 1 for an invalid answer."""
    value = 1 + round(99 * scores["explainability"] / 5) if answer.valid else 1
    return f"Score: {value}"
