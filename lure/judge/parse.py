"""Reading a judge's reply: one status per answer, never a silent tie (LURE §2.1 "We parse the output, tolerate minor
formatting errors, and verify that every evidence span is a substring ...").

Statuses, checked in this order (the first that applies):

* ``error``        the request failed (the transport's error is passed in; there is no text to read);
* ``refused``      finish_reason ``content_filter``, empty content, or no JSON object and the text reads like a
                   refusal ("I'm sorry", "I can't", ... :data:`REFUSAL`);
* ``invalid_json`` no single JSON object could be read, or the object does not follow the schema (unknown keys,
                   a winner or source other than the candidate labels / "tie" / "history", confidence outside
                   [0, 1], duplicate keys, NaN);
* ``bad_evidence`` the answer follows the schema but has no rationale, or a rationale's evidence is empty or not an
                   exact substring of the block its source names (the block alone, not the whole prompt: a quote of
                   the instructions is not evidence; a quote from candidate A's block cited as B's is rejected);
* ``valid``        everything holds.

Tolerated syntax: code fences and any prose before or after the object, trailing commas before ``}`` or ``]``, and
surrounding whitespace / letter case of the labels ("a", " B "). Not tolerated: two JSON objects (which one would
be the answer?), single quotes, comments. A failure is a status with a reason in ``detail``; it never becomes a tie.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from lure.judge.schema import HISTORY, LABELS, TIE, JudgeAnswer, Presentation, Status

#: How a refusal reads when the reply holds no JSON object (checked case-insensitively).
REFUSAL = re.compile(
    r"\b(I['’]?m sorry|I am sorry|I can(?:not|['’]t| not)|I won['’]t|I will not|I['’]?m (?:not )?(?:un)?able to|"
    r"I am unable to|I must decline|as an AI)\b",
    re.IGNORECASE,
)
#: finish_reason values that mean the provider withheld the content.
FILTERED = frozenset({"content_filter"})


@dataclass(frozen=True)
class Reply:
    """What the request layer returned for one prompt: the text, why generation stopped, or a transport error."""

    text: str | None
    finish_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Judgement:
    """The status of one reply; ``answer`` is set when the reply followed the schema (valid or bad_evidence)."""

    status: Status
    answer: JudgeAnswer | None = None
    detail: str = ""


class AnswerFormatError(ValueError):
    """The reply holds no single JSON object that follows the schema."""


def judge_reply(reply: Reply, presentation: Presentation) -> Judgement:
    """The status (and, where there is one, the answer in terms of i and j) of one reply; see the module docstring."""
    if reply.error is not None:
        return Judgement("error", detail=reply.error)
    if reply.finish_reason in FILTERED:
        return Judgement("refused", detail=f"finish_reason {reply.finish_reason}")
    text = reply.text or ""
    if not text.strip():
        return Judgement("refused", detail="empty content")
    try:
        raw = extract_object(text)
    except AnswerFormatError as exc:
        if REFUSAL.search(text):
            return Judgement("refused", detail="the reply declines and holds no JSON object")
        return Judgement("invalid_json", detail=str(exc))
    try:
        answer = to_answer(raw, presentation)
    except AnswerFormatError as exc:
        return Judgement("invalid_json", detail=str(exc))
    problems = evidence_problems(answer, presentation)
    if problems:
        return Judgement("bad_evidence", answer, "; ".join(problems))
    return Judgement("valid", answer)


# ------------------------------------------------------------------------------------------------ JSON extraction


def extract_object(text: str) -> dict[str, Any]:
    """The one JSON object in ``text`` (prose and fences around it ignored, trailing commas repaired).

    Candidates are the balanced ``{...}`` spans that start outside any other span; those that decode to an object
    count. Exactly one must: none or several is an :class:`AnswerFormatError`.
    """
    found, errors = [], []
    for span in _top_level_spans(text):
        try:
            value = _loads(span)
        except ValueError:
            try:
                value = _loads(_drop_trailing_commas(span))
            except ValueError as exc:
                errors.append(str(exc))
                continue
        if isinstance(value, dict):
            found.append(value)
    if not found:
        raise AnswerFormatError("no JSON object in the reply" + (f" ({errors[-1]})" if errors else ""))
    if len(found) > 1:
        raise AnswerFormatError(f"{len(found)} JSON objects in the reply; expected one")
    return found[0]


def _top_level_spans(text: str) -> Iterator[str]:
    """Balanced ``{...}`` spans not nested in another; quotes are JSON strings only inside a span (prose outside may
    hold a stray double quote)."""
    depth, start, in_string, escaped = 0, -1, False, False
    for pos, ch in enumerate(text):
        if depth and in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif depth and ch == '"':
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = pos
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start : pos + 1]


def _drop_trailing_commas(span: str) -> str:
    """``span`` without the commas (outside strings) that are followed only by whitespace and ``}`` or ``]``."""
    out, in_string, escaped = [], False, False
    for pos, ch in enumerate(span):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "," and span[pos + 1 :].lstrip()[:1] in ("}", "]"):
            continue
        out.append(ch)
    return "".join(out)


def _loads(span: str) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate key in {keys}")
        return dict(pairs)

    return json.loads(span, parse_constant=no_constants, object_pairs_hook=no_duplicates)


# ----------------------------------------------------------------------------------------------- schema, evidence


def to_answer(raw: dict[str, Any], presentation: Presentation) -> JudgeAnswer:
    """Map the candidate labels back to i and j and validate the schema (:class:`AnswerFormatError` if it fails)."""
    data = dict(raw)
    if "winner" in data:
        data["winner"] = _map_label(data["winner"], presentation, TIE, "winner")
    rationales = data.get("rationales")
    if isinstance(rationales, list):
        data["rationales"] = [
            {**r, "source": _map_label(r["source"], presentation, HISTORY, "source")}
            if isinstance(r, dict) and "source" in r
            else r
            for r in rationales
        ]
    try:
        return JudgeAnswer.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors())
        raise AnswerFormatError(f"the answer does not follow the schema: {reasons}") from None


def _map_label(value: Any, presentation: Presentation, word: str, field: str) -> str:
    """A candidate label -> "i"/"j"; ``word`` ("tie" or "history") as itself; anything else is an error (the model
    never saw i or j, so an "i" is a schema violation, not a verdict)."""
    if isinstance(value, str):
        key = value.strip()
        if key.upper() in LABELS:
            return presentation.item_of(key.upper())
        if key.lower() == word:
            return word
    allowed = ", ".join(f'"{v}"' for v in (*LABELS, word))
    raise AnswerFormatError(f"{field} must be one of {allowed}, got {value!r}")


def evidence_problems(answer: JudgeAnswer, presentation: Presentation) -> list[str]:
    """Why the evidence fails (empty list: it holds): no rationale, an empty quote, or a quote that is not an exact
    substring of the block its source names."""
    if not answer.rationales:
        return ["no rationale"]
    problems = []
    for k, rationale in enumerate(answer.rationales):
        if not rationale.evidence.strip():
            problems.append(f"rationale {k}: empty evidence")
        elif rationale.evidence not in presentation.blocks[rationale.source]:
            where = (
                "the history block"
                if rationale.source == HISTORY
                else f"the block of candidate {presentation.label_of(rationale.source)}"
            )
            problems.append(f"rationale {k}: evidence {rationale.evidence!r} is not in {where}")
    return problems
