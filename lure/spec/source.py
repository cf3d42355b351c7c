"""``data.source``: which dataset, a discriminated union with one member per source of ``lure.registry.SOURCES``.

Each member carries the fields that source reads and nothing else: the world its generator (formulas in
``docs/world.md``), a real dataset the folder of its raw files, the star-rating filter where the dataset has star
ratings, and Amazon 2023 its category (``docs/datasets.md``). A field that does not apply to the chosen source is
rejected as unknown, so a spec cannot carry a setting that silently does nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, TypeAdapter, field_validator, model_validator

from lure.layout import RAW_DIR
from lure.spec.base import Section, structural

#: Genres available to the world generator (``lure.data.vocab.GENRES`` holds the names and their title words).
MAX_GENRES = 24
#: Largest n_users * n_items: the dense float32 true-relevance matrix (4 bytes a cell) must fit in memory.
MAX_RELEVANCE_CELLS = 1_000_000_000


class SourceSpec(Section):
    """Base of every member of the ``data.source`` union: the ``name`` picks the member."""

    name: str

    def catalogue_size(self) -> int | None:
        """Number of items, when the spec alone says it (the world); a real dataset's is known once it is read."""
        return None


class WorldSpec(SourceSpec):
    """The simulated world (``data.source.name: world``): catalogue, users, true relevance, logging policy, clicks."""

    name: Literal["world"] = structural(
        "world", description="Dataset: the simulated world with known true relevance and propensities (docs/world.md)."
    )

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
    eval_exposures_per_user: int = Field(
        40,
        ge=1,
        le=10_000,
        description="Expected items shown to each user in the held-out evaluation round (independent exposures "
        "with known propensities and static clicks; the test set: docs/world.md).",
    )
    eval_exploration: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Uniform share epsilon of the evaluation round's exposure probabilities: p = (1 - eps) * policy + "
        "eps * m / |candidates| (bounds IPS weights; 0 = the logging policy alone).",
    )
    title_prior_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Share of the catalogue with formulaic titles ('Return of the ...'): the items with the highest "
        "latent title prior rho_i ~ N(0, 1), which is independent of genre, popularity and relevance and weights "
        "the tiny LLM's pretraining corpus (model.pretrain.prior_strength); 0 = no formulaic title (docs/world.md, "
        "'Language prior').",
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
        if self.eval_exposures_per_user >= self.n_items:
            raise ValueError(
                f"eval_exposures_per_user must be < n_items, got {self.eval_exposures_per_user} >= {self.n_items}"
            )
        if self.mar_exposures_per_user > self.n_items:
            raise ValueError(
                f"mar_exposures_per_user must be <= n_items, got {self.mar_exposures_per_user} > {self.n_items}"
            )
        return self

    def catalogue_size(self) -> int | None:
        return self.n_items


class RealSource(SourceSpec):
    """A real dataset, read from ``<raw_dir>/<name>/`` (fetched there when missing and downloadable)."""

    raw_dir: str = Field(
        RAW_DIR,
        min_length=1,
        max_length=1024,
        description="Folder of the raw files of real datasets: this source's live in <raw_dir>/<name>/ (fetched "
        "there when missing and downloadable).",
    )

    def rating_floor(self) -> float | None:
        """Ratings below this are dropped as non-positives (None: keep all; only star-rated sources have one)."""
        return None


class RatedSource(RealSource):
    """A real dataset whose ``rating`` is an explicit 1-5 star rating, which ``min_rating`` can filter."""

    min_rating: float | None = Field(
        None,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="Explicit ratings below this are dropped as non-positives before the k-core (null = keep all).",
    )

    def rating_floor(self) -> float | None:
        return self.min_rating


class MovieLens1MSource(RatedSource):
    """MovieLens-1M (GroupLens ml-1m.zip): 6,040 users, 3,706 movies, 1-5 stars with unix times."""

    name: Literal["movielens-1m"] = structural("movielens-1m", description="Dataset: MovieLens-1M.")


class MovieLens100KSource(RatedSource):
    """MovieLens-100K (GroupLens ml-100k.zip): 943 users, 1,682 movies, 1-5 stars with unix times."""

    name: Literal["movielens-100k"] = structural("movielens-100k", description="Dataset: MovieLens-100K.")


class CoatSource(RatedSource):
    """Coat (Schnabel et al. 2016): a self-selected log plus missing-at-random ratings of the same users."""

    name: Literal["coat"] = structural("coat", description="Dataset: Coat (with its missing-at-random test ratings).")
    min_rating: float | None = Field(
        None,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="Explicit ratings below this are dropped as non-positives before the k-core (null = keep all); "
        "the MAR ratings count as clicked from this rating on (from 4 when null).",
    )


class AmazonBeautySource(RealSource):
    """Amazon Beauty as the P5 sequential files (reviews in order, no ratings: ``min_rating`` does not exist)."""

    name: Literal["amazon-beauty"] = structural("amazon-beauty", description="Dataset: Amazon Beauty (P5 files).")


class Amazon2023Source(RatedSource):
    """Amazon Reviews 2023 (McAuley-Lab), one category, through Hugging Face ``datasets``."""

    name: Literal["amazon-2023"] = structural("amazon-2023", description="Dataset: Amazon Reviews 2023.")
    category: str = Field(
        "All_Beauty",
        pattern=r"^[A-Za-z0-9_]+$",
        max_length=64,
        description="Category of Amazon Reviews 2023 (Hugging Face config suffix, e.g. All_Beauty, Video_Games).",
    )


class LastFMSource(RealSource):
    """HetRec 2011 Last.fm: user-artist play counts (implicit feedback: ``min_rating`` does not exist)."""

    name: Literal["lastfm"] = structural("lastfm", description="Dataset: HetRec 2011 Last.fm.")


_MEMBERS = (
    WorldSpec,
    MovieLens1MSource,
    MovieLens100KSource,
    CoatSource,
    AmazonBeautySource,
    Amazon2023Source,
    LastFMSource,
)
#: The ``data.source`` choice: one member per source of ``lure.registry.SOURCES``.
Source = Annotated[
    WorldSpec
    | MovieLens1MSource
    | MovieLens100KSource
    | CoatSource
    | AmazonBeautySource
    | Amazon2023Source
    | LastFMSource,
    Field(discriminator="name"),
]
#: Every value of ``data.source.name``, the world first.
SOURCE_NAMES: tuple[str, ...] = tuple(m.model_fields["name"].default for m in _MEMBERS)
assert len(get_args(get_args(Source)[0])) == len(_MEMBERS)

_ADAPTER: TypeAdapter[Any] = TypeAdapter(Source)


def shorthand(value: Any) -> Any:
    """``source: coat`` means ``source: {name: coat}`` (every other field at its default)."""
    return {"name": value} if isinstance(value, str) else value


def parse_source(value: Any) -> SourceSpec:
    """A ``data.source`` value (a name, a mapping with ``name``, or a member) validated into its member."""
    return _ADAPTER.validate_python(shorthand(value))  # type: ignore[no-any-return]
