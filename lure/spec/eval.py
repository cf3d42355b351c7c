"""The ``eval`` section: the classic model zoo and offline evaluation with naive, IPS and SNIPS estimates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lure.spec.base import STRUCTURAL_KEY, Section

ZooModel = Literal["random", "popularity", "itemknn", "als", "bpr", "sasrec"]


class EvalSpec(Section):
    """Offline evaluation: cut-offs, the classic model zoo and uncertainty."""

    ks: list[int] = Field(
        default_factory=lambda: [5, 10, 20], min_length=1, description="Cut-offs K of Recall@K and NDCG@K."
    )
    models: list[ZooModel] = Field(
        default_factory=lambda: ["random", "popularity"],
        description="Classic recommenders of the baseline zoo (one stage each).",
        json_schema_extra={STRUCTURAL_KEY: True},
    )
    bootstrap: int = Field(1000, ge=0, le=100_000, description="Bootstrap resamples over users for CIs (0 = none).")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence level of the intervals.")

    @model_validator(mode="after")
    def _ks(self) -> EvalSpec:
        if any(k < 1 for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks must be distinct positive integers, got {self.ks}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models must not repeat, got {self.models}")
        return self
