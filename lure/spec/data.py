"""The ``data`` section: which dataset, how the simulated world is generated, how items are binned and split.

The world knobs are documented with their formulas in ``docs/world.md``, the real datasets and every choice made
when reading them in ``docs/datasets.md``; the descriptions here are the short form users see in ``lure spec``
output and in validation errors.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from lure.layout import RAW_DIR
from lure.spec.base import Section, structural

#: Genres available to the world generator (``lure.data.vocab.GENRES`` holds the names and their title words).
MAX_GENRES = 24
#: Largest n_users * n_items: the dense float32 true-relevance matrix (4 bytes a cell) must fit in memory.
MAX_RELEVANCE_CELLS = 1_000_000_000

#: Every value of ``data.source``: the simulated world and the real datasets of ``lure.data.sources``.
Source = Literal["world", "movielens-1m", "movielens-100k", "coat", "amazon-beauty", "amazon-2023", "lastfm"]
SOURCES: tuple[str, ...] = get_args(Source)
#: Sources whose ``rating`` is an explicit 1-5 star rating, the only ones ``min_rating`` can filter. The world's
#: interactions are clicks (rating 1.0), Amazon Beauty (P5 files) has no ratings, LastFM has play counts.
EXPLICIT_RATING_SOURCES = frozenset({"movielens-1m", "movielens-100k", "coat", "amazon-2023"})


class WorldSpec(Section):
    """Generator of the simulated world: catalogue, users, true relevance, logging policy and clicks."""

    n_users: int = Field(1000, ge=10, le=1_000_000, description="Number of users.")
    n_items: int = Field(800, ge=10, le=200_000, description="Number of items in the catalogue.")
    n_genres: int = Field(12, ge=2, le=MAX_GENRES, description="Number of genres (the first n_genres of the list).")
    genres_per_item_min: int = Field(1, ge=1, le=3, description="Fewest genres an item has.")
    genres_per_item_max: int = Field(3, ge=1, le=3, description="Most genres an item has (uniform in [min, max]).")
    year_min: int = Field(1970, ge=1900, le=2100, description="Earliest release year.")
    year_max: int = Field(2024, ge=1900, le=2100, description="Latest release year (recent years are likelier).")
    zipf_exponent: float = Field(
        1.0, gt=0.0, le=5.0, description="Exponent s of the Zipf popularity prior pi_i ∝ rank_i^-s."
    )
    user_genres: int = Field(
        3, ge=1, le=MAX_GENRES, description="Preferred genres per user (Dirichlet-weighted taste over them)."
    )
    taste_strength: float = Field(
        4.0, ge=0.0, le=20.0, description="Logit weight of genre affinity A(u,i) in the true relevance."
    )
    quality_std: float = Field(0.5, ge=0.0, le=5.0, description="Std of item quality q_i (a logit offset).")
    latent_strength: float = Field(
        0.75, ge=0.0, le=5.0, description="Std of the low-rank user x item logit term (collaborative signal)."
    )
    relevance_intercept: float = Field(
        -4.0, ge=-20.0, le=20.0, description="Logit intercept b of the true relevance (sets the base click rate)."
    )
    sequential_strength: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="How strongly the click probability at a step follows the genres of recent clicks (0 = none).",
    )
    activity_mean: float = Field(
        25.0, gt=0.0, le=1000.0, description="Mean number of exposure steps per user (lognormal activity)."
    )
    activity_sigma: float = Field(0.8, ge=0.0, le=3.0, description="Log-scale std of the lognormal user activity.")
    exposures_per_step: int = Field(10, ge=1, le=1000, description="Items k the platform exposes at each step.")
    exposure_bias: float = Field(
        1.0, ge=0.0, le=10.0, description="Weight of log popularity prior in the logging softmax (popularity bias)."
    )
    personalization: float = Field(
        1.0, ge=0.0, le=10.0, description="Weight of the personal score in the logging softmax."
    )
    personal_noise: float = Field(
        1.5, ge=0.0, le=10.0, description="Std of the noise of the platform's estimate of the user's relevance logit."
    )
    mar_fraction: float = Field(
        0.2, ge=0.0, le=1.0, description="Fraction of users who also get a missing-at-random (uniform) log."
    )
    mar_exposures_per_user: int = Field(
        20, ge=1, le=10_000, description="Uniformly random items shown to each missing-at-random user."
    )
    start_date: str = Field(
        "2023-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$", description="First day of the interaction log (YYYY-MM-DD, UTC)."
    )
    days: int = Field(365, ge=1, le=36_500, description="Length of the interaction log in days.")

    @field_validator("start_date")
    @classmethod
    def _date(cls, value: str) -> str:
        try:
            dt.date.fromisoformat(value)
        except ValueError as err:
            raise ValueError(f"start_date must be a valid YYYY-MM-DD date, got {value!r}") from err
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WorldSpec:
        if self.year_min >= self.year_max:
            raise ValueError(f"year_min must be < year_max, got {self.year_min} >= {self.year_max}")
        if self.genres_per_item_min > self.genres_per_item_max:
            raise ValueError(
                f"genres_per_item_min must be <= genres_per_item_max, "
                f"got {self.genres_per_item_min} > {self.genres_per_item_max}"
            )
        if self.genres_per_item_max > self.n_genres:
            raise ValueError(
                f"genres_per_item_max must be <= n_genres, got {self.genres_per_item_max} > {self.n_genres}"
            )
        if self.user_genres > self.n_genres:
            raise ValueError(f"user_genres must be <= n_genres, got {self.user_genres} > {self.n_genres}")
        if self.n_users * self.n_items > MAX_RELEVANCE_CELLS:
            raise ValueError(
                f"n_users * n_items must be <= {MAX_RELEVANCE_CELLS:_}: the dense float32 relevance matrix must "
                f"fit in memory, got {self.n_users * self.n_items:_}"
            )
        if self.exposures_per_step >= self.n_items:
            raise ValueError(f"exposures_per_step must be < n_items, got {self.exposures_per_step} >= {self.n_items}")
        if self.mar_exposures_per_user > self.n_items:
            raise ValueError(
                f"mar_exposures_per_user must be <= n_items, got {self.mar_exposures_per_user} > {self.n_items}"
            )
        return self


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
        description="Share of each user's interactions held out by the holdout split: the last "
        "ceil(fraction * n_u), at least 1, leaving at least 1 in train (random order for sources without time).",
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

    source: Source = structural(
        "world",
        description="Dataset: 'world' (the simulated world) or a real one, see docs/datasets.md: "
        "'movielens-1m', 'movielens-100k', 'coat', 'amazon-beauty', 'amazon-2023', 'lastfm'.",
    )
    raw_dir: str = Field(
        RAW_DIR,
        min_length=1,
        max_length=1024,
        description="Folder of the raw files of real datasets: those of source X live in <raw_dir>/X/ (fetched "
        "there when missing and downloadable).",
    )
    min_rating: float | None = Field(
        None,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="Explicit ratings below this are dropped as non-positives before the k-core (null = keep all; "
        "only for sources with star ratings: movielens-*, coat, amazon-2023). Coat's MAR 'clicked' uses it too.",
    )
    amazon_category: str = Field(
        "All_Beauty",
        pattern=r"^[A-Za-z0-9_]+$",
        max_length=64,
        description="Category of Amazon Reviews 2023 (Hugging Face config suffix, e.g. All_Beauty, Video_Games); "
        "used when source is 'amazon-2023'.",
    )
    world: WorldSpec = Field(default_factory=WorldSpec, description="Simulated world (used when source is 'world').")
    bins: BinsSpec = Field(default_factory=BinsSpec, description="Popularity and age bins.")
    splits: SplitsSpec = Field(default_factory=SplitsSpec, description="Evaluation splits.")
    min_interactions_per_user: int = Field(
        5, ge=1, le=1000, description="Users with fewer interactions are dropped (k-core on users only)."
    )

    @model_validator(mode="after")
    def _bins_fit(self) -> DataSpec:
        # The catalogue size of a real dataset is only known once it is read; prepare then uses min(bins, items).
        if self.source == "world":
            most = max(self.bins.n_pop_bins, self.bins.n_age_bins)
            if most > self.world.n_items:
                raise ValueError(f"bins ({most}) must not exceed world.n_items ({self.world.n_items})")
        return self

    @model_validator(mode="after")
    def _min_rating_needs_ratings(self) -> DataSpec:
        if self.min_rating is not None and self.source not in EXPLICIT_RATING_SOURCES:
            raise ValueError(
                f"min_rating applies only to sources with explicit star ratings "
                f"({', '.join(sorted(EXPLICIT_RATING_SOURCES))}); source {self.source!r} has none: leave it null"
            )
        return self
