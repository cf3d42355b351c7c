"""The ``data`` section: which dataset (``data.source``, ``lure.spec.source``), how items are binned and split.

The descriptions here are the short form users see in ``lure spec`` output and in validation errors; the splits
are documented in ``docs/evaluation.md`` and the datasets in ``docs/world.md`` and ``docs/datasets.md``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator, model_validator

from lure.spec.base import Section
from lure.spec.source import Source, WorldSpec, shorthand


class BinsSpec(Section):
    """Quantile bins of item popularity and age (pairs are matched within a bin; tail = highest bins)."""

    n_pop_bins: int = Field(5, ge=2, le=20, description="Popularity bins (0 = most popular).")
    n_age_bins: int = Field(5, ge=2, le=20, description="Age bins by first appearance (0 = oldest).")


class SplitsSpec(Section):
    """Leave-last-out, chronological sliding-window and per-user holdout splits."""

    history_max: int = Field(10, ge=1, le=200, description="Most recent items kept in a sliding-window history.")
    ratios: list[float] = Field(
        default_factory=lambda: [0.8, 0.1, 0.1],
        description="Train/valid/test shares of the window samples, cut by target time (3 positive, sum 1).",
    )
    holdout_fraction: float = Field(
        0.2,
        gt=0.0,
        le=0.9,
        allow_inf_nan=False,
        description="Share of each user's interactions held out by the holdout split of a real dataset: the last "
        "ceil(fraction * n_u), at least 1, leaving at least 1 in train (random order for sources without time). "
        "The world holds out its evaluation round instead (docs/world.md).",
    )

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, value: list[float]) -> list[float]:
        if len(value) != 3 or any(not math.isfinite(r) or r <= 0 for r in value):
            raise ValueError(f"ratios must be 3 positive numbers (train, valid, test), got {value}")
        if abs(sum(value) - 1.0) > 1e-9:
            raise ValueError(f"ratios must sum to 1 (within 1e-9), got sum {sum(value)!r}")
        return value


class DataSpec(Section):
    """Dataset source and preparation (``prepare`` stage)."""

    source: Source = Field(
        default_factory=WorldSpec,
        description="Dataset and its parameters, picked by 'name': 'world' (the simulated world, docs/world.md) or "
        "a real one (docs/datasets.md): 'movielens-1m', 'movielens-100k', 'coat', 'amazon-beauty', 'amazon-2023', "
        "'lastfm'. A bare name means that source with its defaults.",
    )
    bins: BinsSpec = Field(default_factory=BinsSpec, description="Popularity and age bins.")
    splits: SplitsSpec = Field(default_factory=SplitsSpec, description="Evaluation splits.")
    min_interactions_per_user: int = Field(
        5, ge=1, le=1000, description="Users with fewer interactions are dropped (k-core on users only)."
    )

    @field_validator("source", mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return shorthand(value)

    @model_validator(mode="after")
    def _bins_fit(self) -> DataSpec:
        # The catalogue size of a real dataset is only known once it is read; prepare then uses min(bins, items).
        items = self.source.catalogue_size()
        most = max(self.bins.n_pop_bins, self.bins.n_age_bins)
        if items is not None and most > items:
            raise ValueError(f"bins ({most}) must not exceed the catalogue size ({items} items)")
        return self
