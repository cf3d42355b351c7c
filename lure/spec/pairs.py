"""The ``pairs`` section: popularity/age-matched item pairs (LURE §3); docs/propensity.md."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lure.spec.base import Section


class PairsSpec(Section):
    """Popularity/age-matched item pairs for pairwise evaluation and judging (LURE §3)."""

    mode: Literal["labeled", "unlabeled"] = Field(
        "labeled",
        description="'labeled': a held-out positive vs a matched never-interacted item; 'unlabeled': LURE's "
        "original two never-interacted items from one matched cell.",
    )
    per_user: int = Field(10, ge=1, le=1000, description="Pairs sampled per evaluation user.")
    match_on: list[Literal["pop_bin", "age_bin", "genre"]] = Field(
        default_factory=lambda: ["pop_bin", "age_bin"],
        min_length=1,
        description="Item columns the two items of a pair must share exactly ('genre' = the first listed genre).",
    )
    max_users: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Evaluate at most this many users (a seeded random subset of the test users); null = all.",
    )

    @model_validator(mode="after")
    def _distinct_keys(self) -> PairsSpec:
        if len(set(self.match_on)) != len(self.match_on):
            raise ValueError(f"match_on must not repeat a column, got {self.match_on}")
        return self
