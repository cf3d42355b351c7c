"""The judge's answer schema (LURE §2.1) and the presentation of one pair to the judge.

The model never sees which item is i (in labelled mode i is the held-out positive): it sees two candidates labelled
"A" and "B" in an order drawn per pair (:mod:`lure.judge.prompt`) and answers in those labels. The parser maps the
labels back, so everything downstream speaks of i and j only:

    {"winner": "i" | "j" | "tie", "confidence": 0..1,
     "rationales": [{"claim": str, "evidence": str, "source": "history" | "i" | "j"}, ...]}

``extra="forbid"`` and ``strict``: an answer with keys the prompt did not ask for, a confidence given as a string or
a boolean, or a claim that is not a string does not follow the schema. The parser is tolerant of the *syntax* around
one JSON object (fences, prose, trailing commas), not of its content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Winner = Literal["i", "j", "tie"]
Source = Literal["history", "i", "j"]
#: Every answer gets exactly one of these (lure.judge.parse).
Status = Literal["valid", "invalid_json", "bad_evidence", "refused", "error"]
STATUSES: tuple[Status, ...] = ("valid", "invalid_json", "bad_evidence", "refused", "error")
#: Labels of the two candidates in the prompt, in the order shown.
LABELS: tuple[str, str] = ("A", "B")
#: The answer's word for a tie and for the history block (the same in the prompt and in the schema).
TIE = "tie"
HISTORY = "history"


class Rationale(BaseModel):
    """One reason for the verdict, with a quote that must appear verbatim in the block ``source`` names."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    claim: str = Field(description="The reason, in the judge's words.")
    evidence: str = Field(description="An exact substring of the block named by source (non-empty).")
    source: Source = Field(description="Which block the evidence is quoted from: the history or a candidate.")


class JudgeAnswer(BaseModel):
    """A parsed answer in terms of i and j (after the A/B labels were mapped back)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    winner: Winner = Field(description="The preferred item, or 'tie'.")
    confidence: float = Field(ge=0.0, le=1.0, description="The judge's confidence in its verdict.")
    rationales: list[Rationale] = Field(description="Reasons with evidence quoted from the prompt's blocks.")


@dataclass(frozen=True)
class Presentation:
    """How one pair was shown: which item came first (labelled "A") and the exact text of each evidence block.

    ``blocks`` maps "history", "i" and "j" to the rendered text of that block alone (not the whole prompt: the
    instructions around the blocks are not evidence).
    """

    i_first: bool
    blocks: Mapping[str, str]

    def item_of(self, label: str) -> Literal["i", "j"]:
        """Item "i" or "j" for a candidate label ("A" = the first shown)."""
        first, second = ("i", "j") if self.i_first else ("j", "i")
        if label == LABELS[0]:
            return first
        if label == LABELS[1]:
            return second
        raise ValueError(f"unknown candidate label {label!r}; labels are {LABELS}")

    def label_of(self, item: Literal["i", "j"]) -> str:
        """The label ("A" or "B") item i or j was shown under."""
        return LABELS[0] if (item == "i") == self.i_first else LABELS[1]
