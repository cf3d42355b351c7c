"""Options of RecJudge-X (LURE §2.1): the judge prompt, the invalid-answer policy, the simulated judge, and how judge
labels enter PairAUC_IPS (Eq. 2) and RJS. docs/judge.md explains every choice.

Not yet a member of :class:`lure.spec.model.Spec`: a later step adds the ``judge`` section together with the stage
that reads it (no spec field may exist that no stage reads). Until then :mod:`lure.judge` and
:mod:`lure.metrics.pairwise` take these objects directly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from lure.spec.base import Section


class DropInvalid(Section):
    """A pair whose answer is not ``valid`` leaves the metrics (weight 0)."""

    name: Literal["drop"] = Field("drop", description="Invalid-answer policy: non-valid pairs leave the metrics.")


class DownweightInvalid(Section):
    """A ``bad_evidence`` answer keeps its winner with weight ``factor``; an answer without a winner (invalid_json,
    refused, error) still leaves the metrics, since there is no label to down-weight."""

    name: Literal["downweight"] = Field(
        "downweight", description="Invalid-answer policy: bad-evidence answers count with a reduced weight."
    )
    factor: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Weight of a bad-evidence answer relative to a valid one (multiplies its Eq. 1 weight).",
    )


#: ``judge.invalid_policy``: what happens to a pair whose answer is not valid (LURE §2.1: "down-weighted or discarded").
InvalidPolicy = Annotated[DropInvalid | DownweightInvalid, Field(discriminator="name")]


class PairwiseMetricsSpec(Section):
    """How judge labels and recommender scores enter PairAUC_IPS (Eq. 2) and RJS (tau_w)."""

    ips: bool = Field(
        True,
        description="Weight each pair by Eq. 1 (true) or give every pair weight 1 (false: the paper's ablation (i)).",
    )
    label_ties: Literal["non_match", "exclude", "half"] = Field(
        "non_match",
        description="A judge tie (y = 0): 'non_match' counts it in the denominator and never as a match (Eq. 2 as "
        "written); 'exclude' drops the pair; 'half' counts half a match.",
    )
    score_ties: Literal["first", "half"] = Field(
        "first",
        description="Equal scores s(i) = s(j): 'first' predicts i (Eq. 2's rule Pr[i > j] >= 1/2, with Pr = 1/2 at a "
        "tie); 'half' counts half a match whatever the label.",
    )


class SimulatedJudgeSpec(Section):
    """A judge that knows the world's true relevance and errs in controlled ways (lure.judge.simulated)."""

    accuracy: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Probability of preferring the truly better item when it decides on content, the items are "
        "equally popular and there is no position effect.",
    )
    position_bias: float = Field(
        0.1, ge=0.0, le=1.0, description="Probability of picking the first shown candidate (A) without looking."
    )
    popularity_bias: float = Field(
        0.0,
        ge=-20.0,
        le=20.0,
        description="Extra log-odds toward the more popular item of the pair (training interactions) in a content "
        "decision; negative favours the less popular.",
    )
    tie_rate: float = Field(0.0, ge=0.0, le=1.0, description="Probability of answering 'tie'.")
    invalid_rate: float = Field(
        0.05, ge=0.0, le=1.0, description="Probability of emitting broken JSON (a truncated answer)."
    )
    hallucination_rate: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Probability that one rationale cites text that is not in the block its source names.",
    )


class JudgeSpec(Section):
    """RecJudge-X (LURE §2.1): pairwise prompt, answer checking and the judge metrics."""

    template: str = Field(
        "judge_pairwise",
        pattern=r"^judge_[A-Za-z0-9_-]+$",
        description="Prompt template prompts/<template>.j2 (blocks task, history, candidate_header, candidate, "
        "answer).",
    )
    history_items: int = Field(
        20, ge=0, le=1000, description="Most recent training items of the user shown in the history block."
    )
    invalid_policy: InvalidPolicy = Field(
        default_factory=DropInvalid,
        description="What happens to a non-valid answer: 'drop' (leaves the metrics) or 'downweight' (a bad-evidence "
        "answer counts with weight factor).",
    )
    metrics: PairwiseMetricsSpec = Field(
        default_factory=PairwiseMetricsSpec, description="How labels and scores enter PairAUC_IPS and RJS."
    )
    simulated: SimulatedJudgeSpec = Field(
        default_factory=SimulatedJudgeSpec, description="Parameters of the simulated judge (world only)."
    )

    @field_validator("template")
    @classmethod
    def _template_exists(cls, name: str) -> str:
        from lure.layout import prompts_dir, template_names

        if not (prompts_dir() / f"{name}.j2").is_file():
            raise ValueError(f"no file prompts/{name}.j2 (known templates: {', '.join(template_names())})")
        return name
