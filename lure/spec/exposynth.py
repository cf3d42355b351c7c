"""The ``exposynth`` section: ExpoSynth, exposure-controlled synthetic interactions under collaborative constraints
(LURE §2.2), and the augment loop that re-trains and re-evaluates on real + synthetic interactions. Read by stages
``exposynth`` and ``augment``; docs/exposynth.md documents both presets and every difference between them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lure.spec.base import Section
from lure.spec.eval import ZooModel

#: The presets of ``lure.exposynth.presets`` (registered in ``lure.registry.EXPOSYNTH_PRESETS`` by these names).
ExposynthPreset = Literal["corrected", "paper"]


class ExposynthSpec(Section):
    """ExpoSynth's parameters; the defaults of the shared ones are the public code's (8 steps, 4 anchors, T >= 0.02,
    S >= 0.05 on top-50 neighbours, 10 tries)."""

    preset: ExposynthPreset = Field(
        "corrected",
        description="'paper': the published procedure as its public code runs it (item weight 1.0 on its pop_bin "
        ">= 3, the most popular 40 %, else 0.5; anchors over the whole history; the previous item fixed at the "
        "user's last real item); 'corrected': our binning (0 = head), the target vector q, recent-history anchors, "
        "an advancing previous item, no already-seen item (docs/exposynth.md).",
    )
    steps: int = Field(8, ge=1, le=1000, description="Steps T per user (one synthetic interaction each at most).")
    anchors: int = Field(4, ge=1, le=100, description="Anchor genres k per user (top-k by frequency).")
    anchor_window: int | None = Field(
        20,
        ge=1,
        le=100_000,
        description="'corrected': the user's most recent interactions the anchors are counted on (null = the whole "
        "history). 'paper' always uses the whole history.",
    )
    transition_min: float = Field(
        0.02, ge=0.0, le=1.0, description="Accept i -> j if T[g(i) -> g(j)] >= transition_min (or by similarity)."
    )
    delta: float = Field(
        0.05, ge=0.0, le=1.0, description="Accept i -> j if the cosine similarity S(i, j) >= delta (or by transition)."
    )
    neighbours: int = Field(50, ge=1, le=100_000, description="Top-n most similar items each item keeps in S.")
    max_tries: int = Field(10, ge=1, le=10_000, description="Candidate draws per step before the step is rejected.")
    target: list[float] | None = Field(
        None,
        description="'corrected': the target exposure q per popularity bin (bin 0 = head; one non-negative weight "
        "per data.bins.n_pop_bins, normalised); null = q_b proportional to b + 1 (upweights the least popular "
        "bins). 'paper' has no q: its target is implied by its item weights.",
    )
    constraints: bool = Field(
        True, description="false = accept every candidate but the previous item (the constraints-off ablation)."
    )
    models: list[ZooModel] | None = Field(
        None,
        min_length=1,
        description="Zoo models the augment stage re-trains on real + synthetic interactions and re-evaluates "
        "(each must be in eval.models); null = every model of eval.models.",
    )

    @model_validator(mode="after")
    def _target_is_a_distribution(self) -> ExposynthSpec:
        if self.target is not None and (any(w < 0 for w in self.target) or sum(self.target) <= 0):
            raise ValueError(f"target must be non-negative weights with a positive sum, got {self.target}")
        if self.models is not None and len(set(self.models)) != len(self.models):
            raise ValueError(f"models must not repeat, got {self.models}")
        return self


def augmented_models(exposynth: ExposynthSpec, eval_models: list[str]) -> list[str]:
    """The zoo models the augment stage re-trains: ``exposynth.models``, or every model of ``eval.models``."""
    return list(exposynth.models or eval_models)
