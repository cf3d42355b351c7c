"""The ``judge`` section: RecJudge-X (LURE §2.1) -- which model judges (a backend of the request layer, or the
world's simulated judge), how it is asked (JSON answer with evidence, or the verdict token's log-probabilities), the
invalid-answer policy and how judge labels enter PairAUC_IPS (Eq. 2) and RJS. docs/judge.md explains every choice.

Stage ``judge`` reads the fields that decide what is asked and of whom; stage ``judge-metrics`` those that decide how
the answers become labels and metrics (``evidence_check``, ``aggregate``, ``invalid_policy``, ``metrics``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from lure.spec.base import Section
from lure.spec.requests import OpenAIConfig, TransformersConfig


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
    """A judge that knows the world's true relevance and errs in controlled ways (lure.judge.simulated). World only:
    a real dataset has no true relevance to answer from."""

    name: Literal["simulated"] = Field(
        "simulated", description="Backend: the world's simulated judge (answers from the true relevance)."
    )
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


#: Sources whose missing-at-random log holds ratings (Coat's test ratings), which the validity check needs.
MAR_RATING_SOURCES = ("coat",)


class ValiditySpec(Section):
    """The judge against real users' preferences: within-user pairs of differently rated items from the missing-at-
    random log and from the self-selected log (lure.judge.validity; stage judge-validity)."""

    per_user: int = Field(3, ge=1, le=100, description="Pairs drawn per user and log (items rated differently).")
    max_pairs: int | None = Field(
        200, ge=1, description="Judge at most this many pairs per log (a seeded subset; null = all)."
    )


#: ``judge.backend``: who answers -- any request-layer backend that can run a judge, or the world's simulated judge.
JudgeBackend = Annotated[OpenAIConfig | TransformersConfig | SimulatedJudgeSpec, Field(discriminator="name")]


class JudgeSpec(Section):
    """RecJudge-X (LURE §2.1): pairwise prompt, answer checking and the judge metrics."""

    backend: JudgeBackend = Field(
        default_factory=SimulatedJudgeSpec,
        description="Who judges, picked by 'name': 'simulated' (the world's judge with controlled errors; world only), "
        "'openai' (any OpenAI-compatible endpoint; the API key is read from the environment variable named by "
        "api_key_env) or 'transformers' (a Hugging Face causal LM in this process). docs/judge.md, docs/requests.md.",
    )
    mode: Literal["json", "logprob"] = Field(
        "json",
        description="'json': the judge writes the JSON answer with winner, confidence and quoted evidence; 'logprob': "
        "the probabilities of the labels A and B at the verdict token, averaged over both candidate orders (PairS; "
        "needs a backend with log-probabilities and a template asking for one letter, e.g. judge_pairwise_logprob).",
    )
    template: str = Field(
        "judge_pairwise",
        pattern=r"^judge_[A-Za-z0-9_-]+$",
        description="Prompt template prompts/<template>.j2 (blocks task, history, candidate_header, candidate, "
        "answer).",
    )
    history_items: int = Field(
        20, ge=0, le=1000, description="Most recent training items of the user shown in the history block."
    )
    order: Literal["random", "both"] = Field(
        "random",
        description="'random': each pair shown once, i first with probability 1/2 (recorded); 'both': each pair "
        "judged in both orders (MT-Bench style), position consistency reported, and the two answers aggregated "
        "(always 'both' in logprob mode, which averages the orders).",
    )
    samples: int = Field(
        1,
        ge=1,
        le=32,
        description="Answers per pair and order (several judges: draws at the given temperature, each cached on its "
        "own); aggregated by 'aggregate'.",
    )
    aggregate: Literal["majority", "mean_confidence"] = Field(
        "majority",
        description="How several answers of one pair (orders x samples) become one label: 'majority' of the valid "
        "verdicts (an even split is a tie), or 'mean_confidence' (the mean of +confidence for i, -confidence for j, "
        "0 for a tie; its sign). One answer is its own label.",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature of the judge (0 = greedy).")
    max_tokens: int = Field(
        512, ge=1, le=32768, description="Most tokens of one JSON answer (an answer cut there is invalid_json)."
    )
    response_format: Literal["none", "json_object", "json_schema"] = Field(
        "none",
        description="Constrain the JSON answer: 'none' (the prompt alone), 'json_object' with the answer schema "
        "(llama.cpp's server constrains with it), 'json_schema' (OpenAI structured outputs).",
    )
    top_logprobs: int = Field(
        20,
        ge=1,
        le=20,
        description="Logprob mode: the most likely first tokens returned, among which the labels A and B are read "
        "(20 is the most OpenAI's API gives).",
    )
    max_pairs: int | None = Field(
        None,
        ge=1,
        description="Judge at most this many pairs (a seeded random subset of data/pairs; null = all): the cost "
        "control of a paid or slow judge.",
    )
    concurrency: int = Field(
        8, ge=1, le=512, description="Requests in flight at once (a local llama.cpp server handles one at a time)."
    )
    evidence_check: bool = Field(
        True,
        description="Check that every evidence quote lies in the block its source names (false: a bad_evidence "
        "answer counts as valid; LURE's ablation (ii)).",
    )
    validity: ValiditySpec | None = Field(
        None,
        description="Also judge within-user pairs of real ratings, missing-at-random vs self-selected, and report "
        "the judge's agreement with the users (needs a source with rated MAR data: Coat). Null: no validity check.",
    )
    invalid_policy: InvalidPolicy = Field(
        default_factory=DropInvalid,
        description="What happens to a non-valid answer: 'drop' (leaves the metrics) or 'downweight' (a bad-evidence "
        "answer counts with weight factor).",
    )
    metrics: PairwiseMetricsSpec = Field(
        default_factory=PairwiseMetricsSpec, description="How labels and scores enter PairAUC_IPS and RJS."
    )

    @field_validator("template")
    @classmethod
    def _template_exists(cls, name: str) -> str:
        from lure.layout import prompts_dir, template_names

        if not (prompts_dir() / f"{name}.j2").is_file():
            raise ValueError(f"no file prompts/{name}.j2 (known templates: {', '.join(template_names())})")
        return name

    @model_validator(mode="after")
    def _mode_fits(self) -> JudgeSpec:
        if self.mode == "logprob" and isinstance(self.backend, SimulatedJudgeSpec):
            raise ValueError("mode 'logprob' needs a model's log-probabilities; the simulated judge answers JSON only")
        if self.mode == "logprob" and self.samples != 1:
            raise ValueError("mode 'logprob' reads one deterministic distribution per order: samples must be 1")
        return self
