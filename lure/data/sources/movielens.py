"""MovieLens 1M and 100K (GroupLens): explicit 1-5 star ratings with unix timestamps.

* ML-1M: ``ratings.dat`` (UserID::MovieID::Rating::Timestamp), ``movies.dat`` (MovieID::Title::Genres, latin-1,
  genres "|"-joined), ``users.dat`` (UserID::Gender::Age::Occupation::Zip-code; read only to check the ids).
* ML-100K: ``u.data`` (user, item, rating, timestamp; tab), ``u.item`` (id|title|release date|video release
  date|IMDb URL|19 genre flags; latin-1).

Choices (docs/datasets.md): the catalogue is every movie of the movie file (ML-1M: 3,883 movies, of which 3,706
are rated; unrated ones stay with popularity 0, as the world keeps never-clicked items); item_id = rank of the
MovieLens id, user_id = rank of the user id; the title is kept verbatim ("American President, The (1995)"); the
year is the "(YYYY)" at the end of the title (ML-100K: else the release-date year), -1 if neither exists; the
ML-100K "unknown" genre flag is dropped, so such items have genres "".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lure.data.sources.base import (
    SOURCES,
    Archive,
    RawDataset,
    SourceDefinition,
    SourceFormatError,
    contiguous,
    interactions_frame,
    items_frame,
    read_delimited,
    require_files,
    users_table,
    year_from_title,
)
from lure.spec.source import MovieLens1MSource, MovieLens100KSource

ML1M_FILES = ("ratings.dat", "movies.dat", "users.dat")
ML100K_FILES = ("u.data", "u.item")

#: The 19 genre flags of u.item, in file order (u.genre lists the same names).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

_RATING_TYPES = {"user": "int64", "movie": "int64", "rating": "float64", "timestamp": "int64"}


def _catalogue_index(movie_ids: np.ndarray, rated: np.ndarray, path: Path) -> np.ndarray:
    """Positions of the rated movie ids in the sorted catalogue; an id the movie file lacks is a format error."""
    if len(np.unique(movie_ids)) != len(movie_ids):
        raise SourceFormatError(f"{path}: movie ids are not unique")
    order = np.argsort(movie_ids, kind="stable")
    pos = np.searchsorted(movie_ids, rated, sorter=order)
    pos = np.minimum(pos, len(movie_ids) - 1)
    found = movie_ids[order[pos]] == rated
    if not found.all():
        raise SourceFormatError(f"{path}: movie id {int(rated[~found][0])} is rated but not in the movie file")
    # Catalogue order is the sorted movie id, so the item_id is the position in the sorted order.
    return pos.astype(np.int64)


def _ratings(path: Path, sep: str) -> tuple[pd.DataFrame, np.ndarray]:
    ratings = read_delimited(path, sep, ["user", "movie", "rating", "timestamp"], _RATING_TYPES)
    user_id, user_raw = contiguous(ratings["user"].to_numpy())
    return ratings.assign(user_id=user_id), user_raw


def load_ml1m(folder: Path) -> RawDataset:
    """MovieLens 1M from ``folder`` (ratings.dat, movies.dat, users.dat)."""
    folder = Path(folder)
    require_files(folder, ML1M_FILES)
    movies = read_delimited(
        folder / "movies.dat", "::", ["movie", "title", "genres"], {"movie": "int64"}, encoding="latin-1"
    )
    users = read_delimited(
        folder / "users.dat", "::", ["user", "gender", "age", "occupation", "zip"], {"user": "int64"}
    )
    ratings, user_raw = _ratings(folder / "ratings.dat", "::")
    unknown = np.setdiff1d(user_raw, users["user"].to_numpy())
    if len(unknown):
        raise SourceFormatError(f"{folder / 'ratings.dat'}: user {int(unknown[0])} is not in users.dat")
    movies = movies.sort_values("movie", kind="stable").reset_index(drop=True)
    ids = movies["movie"].to_numpy()
    item_id = _catalogue_index(ids, ratings["movie"].to_numpy(), folder / "movies.dat")
    titles = movies["title"].str.strip()
    items = items_frame(ids, titles.to_numpy(), movies["genres"].str.strip().to_numpy(), year_from_title(titles))
    inter = interactions_frame(ratings["user_id"].to_numpy(), item_id, ratings["timestamp"], ratings["rating"])
    return RawDataset(
        name="movielens-1m",
        items=items,
        interactions=inter,
        users=users_table(user_raw),
        time_kind="unix",
        explicit=True,
    )


def load_ml100k(folder: Path) -> RawDataset:
    """MovieLens 100K from ``folder`` (u.data, u.item)."""
    folder = Path(folder)
    require_files(folder, ML100K_FILES)
    names = ["movie", "title", "release", "video_release", "url", *(f"g{k}" for k in range(len(ML100K_GENRES)))]
    flag_types = {f"g{k}": "int64" for k in range(len(ML100K_GENRES))}
    movies = read_delimited(folder / "u.item", "|", names, {"movie": "int64", **flag_types}, encoding="latin-1")
    movies = movies.sort_values("movie", kind="stable").reset_index(drop=True)
    flags = movies[[f"g{k}" for k in range(len(ML100K_GENRES))]].to_numpy()
    if not np.isin(flags, (0, 1)).all():
        raise SourceFormatError(f"{folder / 'u.item'}: genre flags must be 0 or 1")
    genres = _join_flags(flags[:, 1:], ML100K_GENRES[1:])  # the "unknown" flag is not a genre
    titles = movies["title"].str.strip()
    year = year_from_title(titles)
    release_year = pd.to_numeric(movies["release"].str.extract(r"(\d{4})$", expand=False), errors="coerce")
    year = np.where(year >= 0, year, release_year.fillna(-1).to_numpy(dtype=np.int64))
    ratings, user_raw = _ratings(folder / "u.data", "\t")
    ids = movies["movie"].to_numpy()
    item_id = _catalogue_index(ids, ratings["movie"].to_numpy(), folder / "u.item")
    items = items_frame(ids, titles.to_numpy(), genres, year)
    inter = interactions_frame(ratings["user_id"].to_numpy(), item_id, ratings["timestamp"], ratings["rating"])
    return RawDataset(
        name="movielens-100k",
        items=items,
        interactions=inter,
        users=users_table(user_raw),
        time_kind="unix",
        explicit=True,
    )


def _join_flags(flags: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Multi-hot rows -> "A|B" strings (file order of the names), "" for a row without any flag."""
    out = np.full(len(flags), "", dtype=object)
    for k, name in enumerate(names):
        on = flags[:, k] == 1
        out[on] = np.where(out[on] == "", name, out[on] + "|" + name)
    return out


SOURCES.add(
    SourceDefinition(
        "movielens-1m",
        lambda folder, source: load_ml1m(folder),
        required=ML1M_FILES,
        archive=Archive(
            "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
            {
                "ratings.dat": "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
                "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
                "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
            },
        ),
        manual="download https://files.grouplens.org/datasets/movielens/ml-1m.zip and unzip it there (the files "
        "of its ml-1m/ folder go directly into {folder}/)",
        script_subdir="ml-1m",
        spec=MovieLens1MSource,
        reads=("data.source",),
        description="MovieLens 1M (GroupLens)",
    )
)

SOURCES.add(
    SourceDefinition(
        "movielens-100k",
        lambda folder, source: load_ml100k(folder),
        required=ML100K_FILES,
        archive=Archive(
            "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            {
                "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
                "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
            },
        ),
        manual="download https://files.grouplens.org/datasets/movielens/ml-100k.zip and unzip it there (the "
        "files of its ml-100k/ folder go directly into {folder}/)",
        script_subdir="ml-100k",
        spec=MovieLens100KSource,
        reads=("data.source",),
        description="MovieLens 100K (GroupLens)",
    )
)
