"""Reading the RecLAIF judge's replies (§4.2, Eq. 5) and turning them into DPO preference pairs (Algorithm 1, step 2).

A reply in the paper's format has, per option, "Relevance Score: s", "Diversity Score: s", "Explainability Score: s"
(integers 0-5) and "Chosen Option: A|B". The parser reads the decision and the six scores; a reply without a decision,
or with a score outside 0-5, is ``invalid``; "Chosen Option: Tie" (or "both"/"neither") is a ``tie``. Options are
shown in a random order per pair, so the decision is mapped back to the sample it names. Ties and invalid replies
are dropped from the DPO data and counted (``pair_counts``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pandas as pd

CRITERIA = ("relevance", "diversity", "explainability")
JUDGE_STATUSES = ("ok", "tie", "invalid")

_OPTION = re.compile(r"option\s+([ab])\s+evaluation", re.IGNORECASE)
_SCORE = re.compile(r"(relevance|diversity|explainability)\s+score\s*:\s*\[?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_CHOSEN = re.compile(r"chosen\s+option\s*:\s*\[?\s*\**\s*(option\s+)?([a-z]+)", re.IGNORECASE)
_EXPLAIN = re.compile(r"score\s*:\s*(\d{1,3})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """One judged pair: ``status`` (ok | tie | invalid), the chosen option ('A' | 'B' | None) and the scores per
    option and criterion (NaN where the reply gave none)."""

    status: str
    chosen: str | None
    scores: dict[str, dict[str, float]]


def parse_verdict(text: str) -> Verdict:
    """The decision and the scores of one reply (see the module docstring)."""
    scores: dict[str, dict[str, float]] = {"A": {}, "B": {}}
    option = None
    for line in text.splitlines():
        head = _OPTION.search(line)
        if head:
            option = head.group(1).upper()
            continue
        score = _SCORE.search(line)
        if score and option is not None:
            scores[option].setdefault(score.group(1).lower(), float(score.group(2)))
    full = {o: {c: scores[o].get(c, float("nan")) for c in CRITERIA} for o in scores}
    in_range = all(0 <= v <= 5 for o in scores.values() for v in o.values())
    chosen = _CHOSEN.search(text)
    if chosen is None or not in_range:
        return Verdict("invalid", None, full)
    word = chosen.group(2).upper()
    if word in ("A", "B"):
        return Verdict("ok", word, full)
    if word in ("TIE", "BOTH", "NEITHER", "EQUAL"):
        return Verdict("tie", None, full)
    return Verdict("invalid", None, full)


def parse_explain_score(text: str) -> float:
    """The explainability rater's 1-100 score, NaN when the reply has none in range."""
    found = _EXPLAIN.search(text)
    if found is None:
        return float("nan")
    value = int(found.group(1))
    return float(value) if 1 <= value <= 100 else float("nan")


def preference_pairs(judged: pd.DataFrame) -> pd.DataFrame:
    """DPO rows (instance_id, prompt, chosen, rejected) from judged pairs.

    ``judged`` has instance_id, prompt, sample_0, sample_1 (the two answers), first (which sample was shown as
    option A: 0 or 1), status and chosen (the verdict's 'A'/'B'). Only ``ok`` verdicts become rows."""
    ok = judged[judged["status"] == "ok"]
    picked_first = (ok["chosen"] == "A").to_numpy()
    shown_a = ok["first"].to_numpy()
    winner = [a if p else 1 - a for a, p in zip(shown_a, picked_first, strict=True)]
    s0, s1 = ok["sample_0"].to_numpy(), ok["sample_1"].to_numpy()
    chosen = [s0[i] if w == 0 else s1[i] for i, w in enumerate(winner)]
    rejected = [s1[i] if w == 0 else s0[i] for i, w in enumerate(winner)]
    return pd.DataFrame(
        {
            "instance_id": ok["instance_id"].to_numpy(),
            "prompt": ok["prompt"].to_numpy(),
            "chosen": chosen,
            "rejected": rejected,
        }
    )


def pair_counts(statuses: pd.Series) -> dict[str, int]:
    """How many pairs were judged, kept (ok) and dropped (tie, invalid)."""
    unknown = set(statuses) - set(JUDGE_STATUSES)
    if unknown:
        raise ValueError(f"unknown judge statuses {sorted(unknown)}; expected {JUDGE_STATUSES}")
    counts = Counter(statuses)
    return {"judged": int(len(statuses)), **{s: int(counts.get(s, 0)) for s in JUDGE_STATUSES}}
